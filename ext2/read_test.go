package ext2

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mpagefs/mpage/ext2/layout"
)

// sourceTree writes the files the read tests compare against and returns
// their contents by path. Sizes sit around the block map thresholds of 1
// KiB blocks: 12 direct blocks, 256 single indirect, then double indirect.
func sourceTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	const k = 1024
	files := map[string][]byte{
		"empty":          nil,
		"small":          pattern(1, 100),
		"direct12":       pattern(2, 12*k),
		"direct12plus1":  pattern(3, 12*k+1),
		"ind13":          pattern(4, 13*k),
		"ind268":         pattern(5, (12+256)*k),
		"dind269":        pattern(6, (12+256+1)*k),
		"dind600k":       pattern(7, 600*k+123),
		"sub/dir/nested": pattern(8, 5000),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}
	// A sparse file: data, a hole of 300 KiB, data, and a hole at the end.
	sparse := make([]byte, 700*k)
	copy(sparse[0:], pattern(9, 3*k))
	copy(sparse[303*k:], pattern(10, 5*k+17))
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(sparse[:3*k], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(sparse[303*k:308*k+17], 303*k); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(700 * k); err != nil {
		t.Fatal(err)
	}
	f.Close()
	files["sparse"] = sparse
	return files
}

func TestReadBack(t *testing.T) {
	src := t.TempDir()
	files := sourceTree(t, src)
	short := "short/target"
	long := "/" + string(bytes.Repeat([]byte("long-symlink-target/"), 8))
	if err := os.Symlink(short, filepath.Join(src, "fastlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(long, filepath.Join(src, "slowlink")); err != nil {
		t.Fatal(err)
	}
	for _, bs := range []int{1024, 2048, 4096} {
		for _, isz := range []int{128, 256} {
			t.Run(fmt.Sprintf("b%d_I%d", bs, isz), func(t *testing.T) {
				img := makeImage(t, bs, isz, 8<<20, src)
				fs := mountImage(t, img, Options{ReadOnly: true})
				for name, want := range files {
					for _, chunk := range []int{4096, 1000} {
						got := readPath(t, fs, name, chunk)
						if !bytes.Equal(got, want) {
							t.Errorf("%s read in %d-byte chunks: got %d bytes, want %d (first difference at %d)",
								name, chunk, len(got), len(want), firstDiff(got, want))
						}
					}
				}
				for name, want := range map[string]string{"fastlink": short, "slowlink": long} {
					ino, err := fs.Lookup(name)
					if err != nil {
						t.Fatalf("Lookup(%s): %v", name, err)
					}
					got, err := fs.ReadLink(ino)
					fs.Iput(ino)
					if err != nil || got != want {
						t.Errorf("ReadLink(%s) = %q, %v; want %q", name, got, err, want)
					}
				}
				root, err := fs.Root()
				if err != nil {
					t.Fatal(err)
				}
				ents, err := fs.ReadDir(root)
				fs.Iput(root)
				if err != nil {
					t.Fatalf("ReadDir(/): %v", err)
				}
				names := map[string]bool{}
				for _, e := range ents {
					names[e.Name] = true
				}
				for _, want := range []string{".", "..", "lost+found", "sparse", "sub", "fastlink"} {
					if !names[want] {
						t.Errorf("ReadDir(/) lacks %q; got %v", want, ents)
					}
				}
			})
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSeekDataHole(t *testing.T) {
	src := t.TempDir()
	files := sourceTree(t, src)
	img := makeImage(t, 1024, 128, 8<<20, src)
	fs := mountImage(t, img, Options{ReadOnly: true})
	ino, err := fs.Lookup("sparse")
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.Open(ino, false)
	fs.Iput(ino)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const k = 1024
	size := int64(len(files["sparse"]))
	tests := []struct {
		name    string
		off     int64
		whence  int
		want    int64
		wantErr error
	}{
		{"data at 0", 0, SeekData, 0, nil},
		{"hole after first data", 0, SeekHole, 3 * k, nil},
		{"data after hole", 3 * k, SeekData, 303 * k, nil},
		{"inside data", 304*k + 5, SeekData, 304*k + 5, nil},
		{"hole after second data", 303 * k, SeekHole, 309 * k, nil},
		{"no data at the end", 400 * k, SeekData, 0, ErrNoData},
		{"hole at the end", 400 * k, SeekHole, 400 * k, nil},
		{"past end", size, SeekHole, 0, ErrNoData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.Seek(tc.off, tc.whence)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Seek(%d, %d) = %d, %v; want error %v", tc.off, tc.whence, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Seek(%d, %d) = %d, %v; want %d", tc.off, tc.whence, got, err, tc.want)
			}
		})
	}
}

// TestColdSequentialRead reads a 600 KiB file of 1 KiB blocks, which
// mke2fs lays out contiguously (data, indirect, data, double indirect,
// indirect, data), from a cold cache and checks the device saw large
// requests in ascending on-disk order, each indirect block read before
// the data after it.
func TestColdSequentialRead(t *testing.T) {
	src := t.TempDir()
	want := pattern(11, 600*1024)
	writeFile(t, filepath.Join(src, "big"), want)
	img := makeImage(t, 1024, 128, 8<<20, src)
	fs, td := mountImageTraced(t, img, Options{ReadOnly: true})

	ino, err := fs.Lookup("big")
	if err != nil {
		t.Fatal(err)
	}
	// Where the file's blocks are: its indirect blocks, data range.
	d := ino.Disk()
	ind, dind := int64(d.Block[layout.IndBlock]), int64(d.Block[layout.DIndBlock])
	f, err := fs.Open(ino, false)
	fs.Iput(ino)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	td.record(true)
	got := make([]byte, len(want))
	for off := 0; off < len(got); off += 16 << 10 {
		if _, err := f.ReadAt(got[off:min(off+16<<10, len(got))], int64(off)); err != nil {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
	}
	td.record(false)
	if !bytes.Equal(got, want) {
		t.Fatalf("contents differ at %d", firstDiff(got, want))
	}
	reads := td.taken()
	bs := int64(1024)
	first := int64(d.Block[0]) * bs
	var largest int64
	var sawInd, sawDind bool
	prevEnd := int64(-1)
	for i, r := range reads {
		if r.off < first {
			continue // not the file's area (e.g. the inode table)
		}
		if r.off < prevEnd {
			t.Errorf("read %d at byte %d (%d bytes) goes back before the previous read's end %d; reads: %v", i, r.off, r.n, prevEnd, reads)
		}
		prevEnd = r.off + r.n
		largest = max(largest, r.n)
		if r.off <= ind*bs && ind*bs < r.off+r.n {
			sawInd = true
		}
		if r.off <= dind*bs && dind*bs < r.off+r.n {
			sawDind = true
		}
	}
	if !sawInd || !sawDind {
		t.Errorf("indirect block %d read: %v, double indirect %d read: %v; reads %v", ind, sawInd, dind, sawDind, reads)
	}
	if largest < 64<<10 {
		t.Errorf("largest read %d bytes, want at least 64 KiB; reads %v", largest, reads)
	}
	t.Logf("%d device reads, largest %d bytes", len(reads), largest)
}

func TestMountRefusals(t *testing.T) {
	tests := []struct {
		name     string
		features string
		readOnly bool
		want     string
	}{
		{"meta_bg", "meta_bg,^resize_inode", false, "meta_bg"},
		{"extents", "extent", true, "extent"},
		{"64bit", "64bit,extent", true, "64bit"},
		{"flex_bg", "flex_bg", false, "flex_bg"},
		{"inline_data", "inline_data,ext_attr", true, "inline_data"},
		{"ro_compat rw", "huge_file", false, "huge_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := makeImageOpts(t, 1024, tc.features)
			dev := openDev(t, img, tc.readOnly)
			_, err := Mount(dev, Options{ReadOnly: tc.readOnly, Name: img})
			if !errors.Is(err, ErrUnsupported) || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("Mount with %s: got %v, want ErrUnsupported naming %q", tc.features, err, tc.want)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(img)) {
				t.Errorf("Mount with %s: error %q does not name the image %s", tc.features, err, img)
			}
		})
	}
	t.Run("ro_compat read-only", func(t *testing.T) {
		img := makeImageOpts(t, 1024, "huge_file")
		fs := mountImage(t, img, Options{ReadOnly: true})
		if !fs.ReadOnly() {
			t.Fatal("ReadOnly() = false")
		}
	})
	t.Run("block size above page size", func(t *testing.T) {
		img := makeImageOpts(t, 8192, "")
		dev := openDev(t, img, true)
		_, err := Mount(dev, Options{ReadOnly: true})
		if !errors.Is(err, ErrUnsupported) || !bytes.Contains([]byte(err.Error()), []byte("8192")) {
			t.Fatalf("Mount of 8 KiB blocks: got %v, want ErrUnsupported naming the block size", err)
		}
	})
	t.Run("backup superblock", func(t *testing.T) {
		src := t.TempDir()
		want := pattern(12, 50000)
		writeFile(t, filepath.Join(src, "f"), want)
		img := makeImage(t, 1024, 128, 16<<20, src)
		fs := mountImage(t, img, Options{ReadOnly: true, SuperblockAt: 8193})
		if got := readPath(t, fs, "f", 4096); !bytes.Equal(got, want) {
			t.Fatalf("reading through the backup superblock: contents differ at %d", firstDiff(got, want))
		}
	})
}
