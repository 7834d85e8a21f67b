package ext2fs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// newFS formats a fresh image and opens it read-write.
func newFS(t *testing.T) (*FS, string) {
	t.Helper()
	image := emptyImage(t, 16<<20, 1024)
	return mustOpen(t, image, Options{}), image
}

func writeFile(t *testing.T, fsys *FS, name string, data []byte) {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func nlink(t *testing.T, fsys *FS, name string) uint32 {
	t.Helper()
	fi, err := fsys.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*InodeInfo).Nlink
}

func freeBlocks(t *testing.T, fsys *FS) uint64 {
	t.Helper()
	u, err := fsys.Statfs()
	if err != nil {
		t.Fatal(err)
	}
	return u.FreeBlocks
}

func TestUnlinkOpenFile(t *testing.T) {
	fsys, image := newFS(t)
	before := freeBlocks(t, fsys)
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	writeFile(t, fsys, "f", data)
	f, err := fsys.OpenFile("f", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("f"); err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Stat("f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Remove: got %v, want fs.ErrNotExist", err)
	}
	open := freeBlocks(t, fsys)
	if before-open < uint64(len(data)/1024) {
		t.Errorf("free blocks while the unlinked file is open: %d, %d before it was written; want the file's blocks still in use", open, before)
	}
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadAt of the unlinked open file: %v, equal %v", err, bytes.Equal(got, data))
	}
	if _, err := f.WriteAt([]byte("more"), int64(len(data))); err != nil {
		t.Errorf("WriteAt to the unlinked open file: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if after := freeBlocks(t, fsys); after != before {
		t.Errorf("free blocks after the last close: %d, want %d as before the file", after, before)
	}
	closeAndCheck(t, fsys, image)
}

func TestRenameCases(t *testing.T) {
	fsys, image := newFS(t)
	writeFile(t, fsys, "a", []byte("A"))
	writeFile(t, fsys, "b", []byte("B"))
	if err := fsys.Rename("a", "/b"); err != nil {
		t.Fatalf("rename over a file: %v", err)
	}
	if got, err := fsys.ReadFile("b"); err != nil || string(got) != "A" {
		t.Errorf("b after rename = %q, %v; want %q", got, err, "A")
	}
	if _, err := fsys.Lstat("a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a after rename: %v, want fs.ErrNotExist", err)
	}
	for _, d := range []string{"d1", "d2", "d3", "d1/sub"} {
		if err := fsys.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, fsys, "d3/x", nil)
	tests := []struct {
		name     string
		old, new string
		want     []error // nil: success
	}{
		{"directory over an empty directory", "d1", "d2", nil},
		{"directory over a non-empty one", "d2", "d3", []error{syscall.ENOTEMPTY, fs.ErrExist}},
		{"directory into its own subtree", "d2", "d2/sub/inner", []error{syscall.EINVAL, fs.ErrInvalid}},
		{"file over a directory", "b", "d3", []error{syscall.EISDIR}},
		{"directory over a file", "d2", "b", []error{syscall.ENOTDIR}},
		{"missing source", "nope", "x", []error{fs.ErrNotExist}},
		{"into a missing directory", "b", "nodir/b", []error{fs.ErrNotExist}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := fsys.Rename(tc.old, tc.new)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var le *os.LinkError
			if !errors.As(err, &le) {
				t.Fatalf("got %T %v, want *os.LinkError", err, err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("got %v, want errors.Is(err, %v)", err, w)
				}
			}
		})
	}
	if fi, err := fsys.Stat("d2/sub"); err != nil || !fi.IsDir() {
		t.Errorf("d2/sub after moving d1 over d2: %v", err)
	}
	closeAndCheck(t, fsys, image)
}

func TestHardLinkCounts(t *testing.T) {
	fsys, image := newFS(t)
	writeFile(t, fsys, "a", []byte("data"))
	if err := fsys.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Link("a", "d/b"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Link("/a", "c"); err != nil {
		t.Fatal(err)
	}
	if got := nlink(t, fsys, "a"); got != 3 {
		t.Errorf("links of a = %d, want 3", got)
	}
	if err := fsys.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if got := nlink(t, fsys, "d/b"); got != 2 {
		t.Errorf("links of d/b after removing a = %d, want 2", got)
	}
	root := nlink(t, fsys, ".")
	if err := fsys.Mkdir("e", 0o755); err != nil {
		t.Fatal(err)
	}
	if got := nlink(t, fsys, "/"); got != root+1 {
		t.Errorf("links of the root after a Mkdir = %d, want %d", got, root+1)
	}
	if err := fsys.Link("d", "dlink"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Link of a directory: %v, want fs.ErrPermission", err)
	}
	if err := fsys.Link("c", "d/b"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Link onto an existing name: %v, want fs.ErrExist", err)
	}
	closeAndCheck(t, fsys, image)
}

func TestErrorCases(t *testing.T) {
	fsys, image := newFS(t)
	writeFile(t, fsys, "file", []byte("x"))
	if err := fsys.MkdirAll("dir/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Symlink("loop2", "loop1"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Symlink("loop1", "loop2"); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", 256)
	tests := []struct {
		name string
		op   func() error
		want []error
	}{
		{"O_EXCL on an existing file", func() error {
			_, err := fsys.OpenFile("file", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			return err
		}, []error{fs.ErrExist, syscall.EEXIST}},
		{"O_EXCL on a symlink", func() error {
			_, err := fsys.OpenFile("loop1", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			return err
		}, []error{fs.ErrExist}},
		{"Mkdir of an existing name", func() error { return fsys.Mkdir("file", 0o755) }, []error{fs.ErrExist}},
		{"Mkdir under a file", func() error { return fsys.Mkdir("file/x", 0o755) }, []error{syscall.ENOTDIR}},
		{"MkdirAll through a file", func() error { return fsys.MkdirAll("file/x/y", 0o755) }, []error{syscall.ENOTDIR}},
		{"Open a directory for writing", func() error {
			_, err := fsys.OpenFile("dir", os.O_WRONLY, 0)
			return err
		}, []error{syscall.EISDIR}},
		{"Remove a non-empty directory", func() error { return fsys.Remove("dir") }, []error{syscall.ENOTEMPTY, fs.ErrExist}},
		{"Remove a missing name", func() error { return fsys.Remove("nope") }, []error{fs.ErrNotExist, syscall.ENOENT}},
		{"Create a long name", func() error { _, err := fsys.Create(long); return err }, []error{syscall.ENAMETOOLONG}},
		{"Stat a long name", func() error { _, err := fsys.Stat("dir/" + long); return err }, []error{syscall.ENAMETOOLONG}},
		{"Stat through a symlink loop", func() error { _, err := fsys.Stat("loop1"); return err }, []error{syscall.ELOOP}},
		{"Create through a symlink loop", func() error { _, err := fsys.Create("loop1"); return err }, []error{syscall.ELOOP}},
		{"Truncate a directory", func() error { return fsys.Truncate("dir", 0) }, []error{syscall.EISDIR}},
		{"Readlink of a file", func() error { _, err := fsys.Readlink("file"); return err }, []error{fs.ErrInvalid}},
		{"Symlink onto an existing name", func() error { return fsys.Symlink("x", "file") }, []error{fs.ErrExist}},
		{"Remove the root", func() error { return fsys.Remove("/") }, []error{syscall.EBUSY}},
		{"RemoveAll of a missing name", func() error { return fsys.RemoveAll("nope/deeper") }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var pe *fs.PathError
			var le *os.LinkError
			if !errors.As(err, &pe) && !errors.As(err, &le) {
				t.Fatalf("got %T %v, want *fs.PathError or *os.LinkError", err, err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("got %v, want errors.Is(err, %v)", err, w)
				}
			}
		})
	}
	if err := fsys.RemoveAll("dir"); err != nil {
		t.Errorf("RemoveAll: %v", err)
	}
	closeAndCheck(t, fsys, image)
}

func TestReadOnlyRefusesChanges(t *testing.T) {
	fsys, image := newFS(t)
	writeFile(t, fsys, "file", []byte("x"))
	if err := fsys.Mkdir("dir", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	fsys = mustOpen(t, image, Options{ReadOnly: true})
	host := t.TempDir()
	changes := map[string]func() error{
		"Create":          func() error { _, err := fsys.Create("new"); return err },
		"OpenFile O_RDWR": func() error { _, err := fsys.OpenFile("file", os.O_RDWR, 0); return err },
		"OpenFile O_TRUNC": func() error {
			_, err := fsys.OpenFile("file", os.O_RDONLY|os.O_TRUNC, 0)
			return err
		},
		"Mkdir":     func() error { return fsys.Mkdir("d2", 0o755) },
		"MkdirAll":  func() error { return fsys.MkdirAll("a/b", 0o755) },
		"Remove":    func() error { return fsys.Remove("file") },
		"RemoveAll": func() error { return fsys.RemoveAll("dir") },
		"Rename":    func() error { return fsys.Rename("file", "f2") },
		"Symlink":   func() error { return fsys.Symlink("file", "l") },
		"Link":      func() error { return fsys.Link("file", "l") },
		"Chmod":     func() error { return fsys.Chmod("file", 0o600) },
		"Chown":     func() error { return fsys.Chown("file", 1, 1) },
		"Chtimes":   func() error { return fsys.Chtimes("file", time.Now(), time.Now()) },
		"Truncate":  func() error { return fsys.Truncate("file", 0) },
		"Mknod":     func() error { return fsys.Mknod("fifo", fs.ModeNamedPipe|0o644, 0) },
		"CopyIn":    func() error { return CopyIn(fsys, host, "/in", CopyOptions{}) },
		"Write on a read handle": func() error {
			f, err := fsys.OpenFile("file", os.O_RDONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte("x"))
			if errors.Is(err, syscall.EBADF) {
				return syscall.EROFS // refused, as it should be, for the handle's mode
			}
			return err
		},
	}
	for name, op := range changes {
		t.Run(name, func(t *testing.T) {
			if err := op(); !errors.Is(err, syscall.EROFS) {
				t.Errorf("got %v, want errors.Is(err, syscall.EROFS)", err)
			}
		})
	}
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("the image changed under a read-only FS")
	}
}

func TestConcurrentAppend(t *testing.T) {
	fsys, image := newFS(t)
	const writers, records = 4, 150
	f, err := fsys.Create("log")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	var wg sync.WaitGroup
	var total int64
	var mu sync.Mutex
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := fsys.OpenFile("log", os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer h.Close()
			for i := range records {
				// Records of 20 to ~2100 bytes cross block and page
				// boundaries.
				rec := fmt.Sprintf("w%d-%04d:%s\n", w, i, strings.Repeat(string(rune('a'+w)), 10+(i*137)%2100))
				n, err := h.WriteString(rec)
				if err != nil || n != len(rec) {
					t.Errorf("append: %d, %v", n, err)
					return
				}
				mu.Lock()
				total += int64(n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	data, err := fsys.ReadFile("log")
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != total {
		t.Fatalf("log has %d bytes, %d were appended", len(data), total)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var w, i int
		var body string
		if _, err := fmt.Sscanf(line, "w%d-%04d:%s", &w, &i, &body); err != nil {
			t.Fatalf("torn record %.40q: %v", line, err)
		}
		if want := strings.Repeat(string(rune('a'+w)), 10+(i*137)%2100); body != want {
			t.Fatalf("record w%d-%04d is torn or mixed", w, i)
		}
		seen[line[:8]] = true
	}
	if len(seen) != writers*records {
		t.Errorf("found %d distinct records, want %d", len(seen), writers*records)
	}
	closeAndCheck(t, fsys, image)
}
