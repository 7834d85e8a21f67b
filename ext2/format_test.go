package ext2

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// formatImage formats a new image file of size bytes with opts and
// returns its path.
func formatImage(t *testing.T, size int64, opts FormatOptions) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "format.img")
	dev, err := block.CreateFile(path, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := Format(dev, opts); err != nil {
		dev.Close()
		t.Fatalf("Format(%d bytes, %+v): %v", size, opts, err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// mke2fsTwin makes the image mke2fs -t ext2 makes with the same
// parameters as a Format call.
func mke2fsTwin(t *testing.T, size int64, opts FormatOptions) string {
	t.Helper()
	mo := oracle.MkfsOptions{
		SizeBytes:      size,
		BlockSize:      opts.BlockSize,
		InodeSize:      opts.InodeSize,
		Inodes:         int(opts.Inodes),
		BlocksPerGroup: int(opts.BlocksPerGroup),
		Rev0:           opts.Rev0,
	}
	if !opts.Rev0 {
		f := DefaultFeatures
		if opts.Features != nil {
			f = *opts.Features
		}
		names := []string{"none"}
		for _, n := range strings.Fields(f.String()) {
			if n != "(none)" {
				names = append(names, n)
			}
		}
		mo.Features = strings.Join(names, ",")
	}
	return oracle.MkfsImage(t, mo)
}

// volatileSuperKeys are dumpe2fs -h fields that differ between any two
// runs of mke2fs.
var volatileSuperKeys = map[string]bool{
	"Filesystem UUID": true, "Directory Hash Seed": true, "Filesystem created": true,
	"Last mount time": true, "Last write time": true, "Last checked": true, "Lifetime writes": true,
}

func TestFormatMatchesMke2fs(t *testing.T) {
	noFiletype, err := ParseFeatures(DefaultFeatures, "^filetype,^dir_index,^ext_attr")
	if err != nil {
		t.Fatal(err)
	}
	noSparse, err := ParseFeatures(DefaultFeatures, "^sparse_super")
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	tests := []struct {
		name string
		size int64
		opts FormatOptions
	}{
		{"floppy-defaults", 2 * mib, FormatOptions{}},
		{"1k-128-one-group", 4 * mib, FormatOptions{BlockSize: 1024, InodeSize: 128}},
		{"1k-defaults", 8 * mib, FormatOptions{}},
		{"1k-256-short-last-group", 20 * mib, FormatOptions{BlockSize: 1024, InodeSize: 256}},
		{"1k-last-group-dropped", (2*8192 + 1 + 40) * 1024, FormatOptions{BlockSize: 1024}},
		{"1k-17-groups", 16*mib + 512*1024, FormatOptions{BlockSize: 1024, BlocksPerGroup: 1024}},
		{"1k-no-filetype", 6 * mib, FormatOptions{BlockSize: 1024, Features: &noFiletype}},
		{"1k-no-sparse-super", 12 * mib, FormatOptions{BlockSize: 1024, BlocksPerGroup: 2048, Features: &noSparse}},
		{"1k-few-inodes", 3 * mib, FormatOptions{Inodes: 40}},
		{"2k-128-two-groups", 48 * mib, FormatOptions{BlockSize: 2048, InodeSize: 128}},
		{"4k-one-group", 16 * mib, FormatOptions{BlockSize: 4096}},
		{"4k-two-groups", 160 * mib, FormatOptions{BlockSize: 4096, InodeSize: 128}},
		{"4k-9-groups", 36*mib + 100*4096, FormatOptions{BlockSize: 4096, BlocksPerGroup: 1024, Inodes: 2000}},
		{"rev0-one-group", 4 * mib, FormatOptions{Rev0: true}},
		{"rev0-three-groups", 20 * mib, FormatOptions{Rev0: true}},
		{"rev0-4k", 40 * mib, FormatOptions{Rev0: true, BlockSize: 4096, BlocksPerGroup: 4096}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ours := formatImage(t, tc.size, tc.opts)
			oracle.RequireClean(t, ours)
			theirs := mke2fsTwin(t, tc.size, tc.opts)

			got, want := oracle.DumpSuper(t, ours), oracle.DumpSuper(t, theirs)
			for k, w := range want {
				if volatileSuperKeys[k] {
					continue
				}
				if g, ok := got[k]; !ok || g != w {
					t.Errorf("dumpe2fs -h %q: got %q, want %q (mke2fs)", k, g, w)
				}
			}
			for k, g := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("dumpe2fs -h %q: got %q, mke2fs has no such field", k, g)
				}
			}

			gg, wg := oracle.DumpGroups(t, ours), oracle.DumpGroups(t, theirs)
			if len(gg) != len(wg) {
				t.Fatalf("got %d groups, want %d (mke2fs)", len(gg), len(wg))
			}
			for i := range gg {
				if gg[i] != wg[i] {
					t.Errorf("group %d:\n got %+v\nwant %+v (mke2fs)", i, gg[i], wg[i])
				}
			}

			for _, path := range []string{"/", "/lost+found"} {
				g, w := oracle.DebugfsStat(t, ours, path), oracle.DebugfsStat(t, theirs, path)
				if g.Ino != w.Ino || g.Mode != w.Mode || g.Links != w.Links || g.Size != w.Size ||
					g.Blockcount != w.Blockcount || g.Blocks != w.Blocks || g.UID != w.UID || g.GID != w.GID ||
					g.Fields["fields"] != w.Fields["fields"] {
					t.Errorf("stat %s:\n got ino %d mode %o links %d size %d blockcount %d uid %d gid %d blocks %q extra %q\nwant ino %d mode %o links %d size %d blockcount %d uid %d gid %d blocks %q extra %q",
						path, g.Ino, g.Mode, g.Links, g.Size, g.Blockcount, g.UID, g.GID, g.Blocks, g.Fields["fields"],
						w.Ino, w.Mode, w.Links, w.Size, w.Blockcount, w.UID, w.GID, w.Blocks, w.Fields["fields"])
				}
			}
			if g, w := oracle.Debugfs(t, ours, "ls -l /"), oracle.Debugfs(t, theirs, "ls -l /"); stripLsTimes(g) != stripLsTimes(w) {
				t.Errorf("ls -l /:\n got %s\nwant %s", g, w)
			}
		})
	}
}

// stripLsTimes drops the date columns of debugfs "ls -l" output.
func stripLsTimes(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(l)
		if len(f) > 6 {
			f = append(f[:5], f[len(f)-1])
		}
		out = append(out, strings.Join(f, " "))
	}
	return strings.Join(out, "\n")
}

func TestFormatFixedFields(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	uuid := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	img := formatImage(t, 8<<20, FormatOptions{Label: "mpage-test", UUID: uuid, HashSeed: uuid, Time: ts, ReservedPercent: 10})
	sb := oracle.DumpSuper(t, img)
	want := map[string]string{
		"Filesystem volume name": "mpage-test",
		"Filesystem UUID":        "12345678-9abc-4def-8123-456789abcdef",
		"Directory Hash Seed":    "12345678-9abc-4def-8123-456789abcdef",
		"Filesystem created":     "Mon May  6 07:08:09 2024",
		"Reserved block count":   "819",
		"Maximum mount count":    "-1",
		"Check interval":         "0 (<none>)",
		"Default directory hash": "half_md4",
		"Filesystem state":       "clean",
		"Filesystem OS type":     "Linux",
	}
	if os.Getenv("TZ") != "UTC" {
		delete(want, "Filesystem created") // dumpe2fs prints local time
	}
	for k, w := range want {
		if g := sb[k]; g != w {
			t.Errorf("dumpe2fs -h %q: got %q, want %q", k, g, w)
		}
	}
	if st := oracle.DebugfsStat(t, img, "/lost+found"); st.Mtime != ts.Unix() || st.Crtime != ts.Unix() {
		t.Errorf("lost+found times: got mtime %d crtime %d, want %d", st.Mtime, st.Crtime, ts.Unix())
	}
}

func TestFormatReproducible(t *testing.T) {
	opts := FormatOptions{Time: time.Unix(1700000000, 0), UUID: [16]byte{1}, HashSeed: [16]byte{2}}
	a, b := block.NewMemory(6<<20), block.NewMemory(6<<20)
	// The boot sector before the superblock is not Format's: it stays.
	for i := range b.Bytes() {
		b.Bytes()[i] = 0xa5
	}
	if err := Format(a, opts); err != nil {
		t.Fatal(err)
	}
	if err := Format(b, opts); err != nil {
		t.Fatal(err)
	}
	if got := b.Bytes()[:1024]; !bytes.Equal(got, bytes.Repeat([]byte{0xa5}, 1024)) {
		t.Errorf("Format changed the boot sector")
	}
	// Every metadata block is the same; only unused data blocks differ.
	sb, err := layout.DecodeSuperblock(a.Bytes()[1024:2048])
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Validate(); err != nil {
		t.Fatalf("Format wrote a superblock layout rejects: %v", err)
	}
	meta := int(sb.OverheadClusters) + 1 + 12 // metadata, root, lost+found
	if !bytes.Equal(a.Bytes()[1024:meta*1024], b.Bytes()[1024:meta*1024]) {
		t.Errorf("two Format runs with the same options wrote different metadata")
	}
}

func TestFormatBadOptions(t *testing.T) {
	tests := []struct {
		name string
		size int64
		opts FormatOptions
		want string
	}{
		{"block size 512", 8 << 20, FormatOptions{BlockSize: 512}, "block size 512"},
		{"block size 8192", 8 << 20, FormatOptions{BlockSize: 8192}, "block size 8192"},
		{"inode size 100", 8 << 20, FormatOptions{InodeSize: 100}, "inode size 100"},
		{"inode size above block", 8 << 20, FormatOptions{BlockSize: 1024, InodeSize: 2048}, "inode size 2048"},
		{"rev0 256-byte inodes", 8 << 20, FormatOptions{Rev0: true, InodeSize: 256}, "revision 0"},
		{"too small", 40 << 10, FormatOptions{}, "too small"},
		{"no blocks", 1024, FormatOptions{}, "too small"},
		{"too few inodes", 20 << 10, FormatOptions{BlockSize: 1024, InodeSize: 1024}, "too small"},
		{"bigger than device", 8 << 20, FormatOptions{Size: 9 << 20}, "device holds"},
		{"too many inodes", 4 << 20, FormatOptions{Inodes: 1 << 20}, "inodes"},
		{"blocks per group", 8 << 20, FormatOptions{BlocksPerGroup: 100}, "blocks per group"},
		{"resize_inode", 8 << 20, FormatOptions{Features: &Features{Compat: layout.CompatResizeInode}}, "resize_inode"},
		{"label", 8 << 20, FormatOptions{Label: strings.Repeat("x", 17)}, "label"},
		{"reserved", 8 << 20, FormatOptions{ReservedPercent: 60}, "reserved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev := block.NewMemory(tc.size)
			err := Format(dev, tc.opts)
			if !errors.Is(err, ErrFormatOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrFormatOptions error mentioning %q", err, tc.want)
			}
			if !bytes.Equal(dev.Bytes(), make([]byte, tc.size)) {
				t.Errorf("Format wrote to the device before failing")
			}
		})
	}
	if _, err := ParseFeatures(DefaultFeatures, "dir_index,^no_such"); !errors.Is(err, ErrFormatOptions) {
		t.Errorf("ParseFeatures of an unknown name: got %v, want ErrFormatOptions", err)
	}
}

// TestFormatKernelMount mounts Format's output with the kernel's ext2
// driver, makes a directory and a file, and checks e2fsck still finds the
// image clean.
func TestFormatKernelMount(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			img := formatImage(t, 24<<20, FormatOptions{BlockSize: bs})
			dir := oracle.LoopMount(t, img, false)
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte("mpage format "), 40000) // spans indirect blocks
			if err := os.WriteFile(filepath.Join(dir, "sub", "file"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			oracle.Umount(t, dir)
			oracle.RequireClean(t, img)
			if got := oracle.DebugfsDump(t, img, "/sub/file"); !bytes.Equal(got, data) {
				t.Errorf("file written by the kernel: got %d bytes, want %d equal bytes", len(got), len(data))
			}
		})
	}
}
