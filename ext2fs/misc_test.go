package ext2fs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"testing"
)

func TestOptionsAndStats(t *testing.T) {
	image := emptyImage(t, 16<<20, 1024)
	fsys := mustOpen(t, image, Options{CacheLimit: 1 << 20})
	writeFile(t, fsys, "f", bytes.Repeat([]byte("x"), 300<<10))
	if err := fsys.Sync(); err != nil {
		t.Fatal(err)
	}
	st := fsys.Stats()
	if st.Queue.BytesWritten < 300<<10 {
		t.Errorf("Stats().Queue.BytesWritten = %d after writing 300 KiB and Sync", st.Queue.BytesWritten)
	}
	if st.Buffers.Writes == 0 {
		t.Errorf("Stats().Buffers.Writes = 0 after Sync of new metadata")
	}
	if st.PageCache.PeakPages == 0 {
		t.Errorf("Stats().PageCache.PeakPages = 0 after a buffered write")
	}
	closeAndCheck(t, fsys, image)

	// The backup superblock of group 1 (block 8193 with 1 KiB blocks).
	fsys = mustOpen(t, image, Options{ReadOnly: true, SuperblockAt: 8193})
	if data, err := fsys.ReadFile("f"); err != nil || len(data) != 300<<10 {
		t.Errorf("ReadFile from a backup-superblock mount: %d bytes, %v", len(data), err)
	}
	if !fsys.ReadOnly() {
		t.Errorf("ReadOnly() = false for a read-only open")
	}
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(image, Options{SuperblockAt: 8000}); err == nil {
		t.Errorf("Open with a superblock at block 8000: got success, want an error")
	}
}

func TestClosedFS(t *testing.T) {
	fsys, _ := newFS(t)
	writeFile(t, fsys, "f", []byte("data"))
	f, err := fsys.OpenFile("f", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close: %v, want fs.ErrClosed", err)
	}
	if _, err := fsys.Stat("f"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Stat after Close: %v, want fs.ErrClosed", err)
	}
	if _, err := f.ReadAt(make([]byte, 4), 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("ReadAt of a file after the FS closed: %v, want fs.ErrClosed", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close of a file after the FS closed: %v", err)
	}
	if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close of a file: %v, want fs.ErrClosed", err)
	}
}

// TestConcurrentUse runs creators, writers, readers, listers and
// removers at once (for -race), then checks the image.
func TestConcurrentUse(t *testing.T) {
	fsys, image := newFS(t)
	const workers, files = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := fmt.Sprintf("/w%d", w)
			if err := fsys.MkdirAll(dir+"/sub", 0o755); err != nil {
				t.Error(err)
				return
			}
			for i := range files {
				name := fmt.Sprintf("%s/sub/f%d", dir, i)
				data := bytes.Repeat([]byte{byte(w*files + i)}, 1000+i*300)
				f, err := fsys.Create(name)
				if err != nil {
					t.Error(err)
					return
				}
				f.Write(data)
				f.Close()
				if got, err := fsys.ReadFile(name[1:]); err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s: read back %d bytes, %v", name, len(got), err)
				}
				if _, err := fsys.ReadDir("."); err != nil {
					t.Error(err)
				}
				if i%3 == 0 {
					if err := fsys.Rename(name, name+".old"); err != nil {
						t.Error(err)
					}
				}
				if i%5 == 0 {
					if err := fsys.Remove(name + ".old"); err != nil && !errors.Is(err, fs.ErrNotExist) {
						t.Error(err)
					}
				}
			}
			if w%2 == 0 {
				if err := fsys.RemoveAll(dir); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	closeAndCheck(t, fsys, image)
}
