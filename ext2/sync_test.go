package ext2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// TestSyncWithoutUnmount syncs a mounted filesystem and checks the image
// is consistent and holds the data while still mounted.
func TestSyncWithoutUnmount(t *testing.T) {
	img := emptyFilesImage(t, 2048, 128, 8<<20, "f")
	fs := mountImage(t, img, Options{})
	f := openPath(t, fs, "f")
	want := pattern(21, 333333)
	if _, err := f.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if err := fs.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	oracle.RequireClean(t, img)
	if got := oracle.DebugfsDump(t, img, "/f"); !bytes.Equal(got, want) {
		t.Errorf("after Sync the image holds %d bytes of f, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
	if st := oracle.DumpSuper(t, img)["Filesystem state"]; st != "not clean" {
		t.Errorf("Filesystem state %q while mounted, want \"not clean\"", st)
	}
	f.Close()
}

// TestSyncReportsWriteErrorOncePerHandle fails the writes of a file's data
// and checks each open handle's Sync reports the error once.
func TestSyncReportsWriteErrorOncePerHandle(t *testing.T) {
	img := emptyFilesImage(t, 1024, 128, 4<<20, "f")
	dev := openDev(t, img, false)
	fd := block.NewFaulty(dev)
	fs, err := Mount(fd, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	h1 := openPath(t, fs, "f")
	h2 := openPath(t, fs, "f")
	defer h1.Close()
	defer h2.Close()
	if _, err := h1.WriteAt(pattern(1, 64*1024), 0); err != nil {
		t.Fatal(err)
	}
	blk, n, err := h1.Inode().MapBlocks(0, 12)
	if err != nil || n == 0 {
		t.Fatalf("MapBlocks: %d, %d, %v", blk, n, err)
	}
	sector := blk * 1024 / block.SectorSize
	fd.Inject(block.Fault{Op: block.Write, FromSector: sector, ToSector: sector + 2})
	if err := h1.Sync(); err == nil {
		t.Fatal("first Sync of h1 after a failed data write: nil error")
	}
	if err := h1.Sync(); err != nil {
		t.Errorf("second Sync of h1: %v, want nil (error already reported)", err)
	}
	if err := h2.Sync(); err == nil {
		t.Error("first Sync of h2: nil, want the writeback error")
	}
	if err := h2.Sync(); err != nil {
		t.Errorf("second Sync of h2: %v, want nil", err)
	}
	fd.ClearFaults()
}

// TestLargeFileFeature writes past 2 GiB on a filesystem made without
// large_file and checks the feature gets set and e2fsck is content.
func TestLargeFileFeature(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), nil)
	img := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, BlockSize: 4096, FromDir: src})
	// Recent mke2fs always sets large_file; clear it in s_feature_ro_compat.
	sb := make([]byte, 4)
	if f, err := os.Open(img); err != nil {
		t.Fatal(err)
	} else {
		_, err = f.ReadAt(sb, 1024+100)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	patchImage(t, img, 1024+100, le32(binary.LittleEndian.Uint32(sb)&^uint32(layout.ROCompatLargeFile)))
	if feats := oracle.DumpSuper(t, img)["Filesystem features"]; strings.Contains(feats, "large_file") {
		t.Fatalf("could not clear large_file: %q", feats)
	}
	fs := mountImage(t, img, Options{})
	f := openPath(t, fs, "f")
	const off = 3 << 30
	if _, err := f.WriteAt([]byte("tail"), off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
	if feats := oracle.DumpSuper(t, img)["Filesystem features"]; !strings.Contains(feats, "large_file") {
		t.Errorf("features %q lack large_file after a 3 GiB file", feats)
	}
	st := oracle.DebugfsStat(t, img, "/f")
	if st.Size != off+4 {
		t.Errorf("size %d, want %d", st.Size, off+4)
	}
}

// TestConcurrentUse runs writers, readers, truncation and syncs at once
// on one filesystem (meant for -race), then checks the image.
func TestConcurrentUse(t *testing.T) {
	src := t.TempDir()
	ro := pattern(31, 400*1024)
	writeFile(t, filepath.Join(src, "ro"), ro)
	for _, n := range []string{"w1", "w2", "tr"} {
		writeFile(t, filepath.Join(src, n), nil)
	}
	img := makeImage(t, 1024, 256, 16<<20, src)
	fs := mountImage(t, img, Options{})
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- err
			}
		}()
	}
	for i, name := range []string{"w1", "w2"} {
		f := openPath(t, fs, name)
		run(func() error {
			defer f.Close()
			data := pattern(uint64(40+i), 300*1024)
			for off := 0; off < len(data); off += 5000 {
				if _, err := f.WriteAt(data[off:min(off+5000, len(data))], int64(off)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	tr := openPath(t, fs, "tr")
	run(func() error {
		defer tr.Close()
		for i := 0; i < 20; i++ {
			if _, err := tr.WriteAt(pattern(uint64(i), 50*1024), 0); err != nil {
				return err
			}
			if err := tr.Truncate(int64(i * 1000)); err != nil {
				return err
			}
		}
		return nil
	})
	for r := 0; r < 2; r++ {
		run(func() error {
			for i := 0; i < 5; i++ {
				ino, err := fs.Lookup("ro")
				if err != nil {
					return err
				}
				f, err := fs.Open(ino, false)
				fs.Iput(ino)
				if err != nil {
					return err
				}
				got := make([]byte, len(ro))
				_, err = f.ReadAt(got, 0)
				f.Close()
				if err != nil {
					return err
				}
				if !bytes.Equal(got, ro) {
					return errors.New("read of ro differs")
				}
			}
			return nil
		})
	}
	run(func() error {
		for i := 0; i < 5; i++ {
			if err := fs.Sync(); err != nil {
				return err
			}
		}
		return nil
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
	for i, name := range []string{"w1", "w2"} {
		if got := oracle.DebugfsDump(t, img, "/"+name); !bytes.Equal(got, pattern(uint64(40+i), 300*1024)) {
			t.Errorf("%s: contents differ at %d", name, firstDiff(got, pattern(uint64(40+i), 300*1024)))
		}
	}
	want := make([]byte, 19*1000)
	copy(want, pattern(19, 50*1024))
	if got := oracle.DebugfsDump(t, img, "/tr"); !bytes.Equal(got, want) {
		t.Errorf("tr: %d bytes, want %d, first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}
