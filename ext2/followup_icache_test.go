package ext2

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// icacheContent is the initial content of file d/f of the icache tree.
func icacheContent(d, f int) []byte {
	return []byte(fmt.Sprintf("dir %03d file %03d\n", d, f))
}

// TestFollowupInodeCacheBound walks 10,000 files with the default inode
// cache limit: unused inodes are evicted, so the cache stays within its
// bound, while changes made on the way (writes, truncations, chmods,
// creates, unlinks) survive their inodes leaving the cache and coming
// back, and e2fsck finds the result clean.
func TestFollowupInodeCacheBound(t *testing.T) {
	const dirs, files = 100, 100
	src := t.TempDir()
	for d := 0; d < dirs; d++ {
		for f := 0; f < files; f++ {
			writeFile(t, filepath.Join(src, fmt.Sprintf("d%03d", d), fmt.Sprintf("f%03d", f)), icacheContent(d, f))
		}
	}
	img := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 24 << 20, BlockSize: 1024, Inodes: 10400, FromDir: src})
	fs := mountImage(t, img, Options{})
	limit := DefaultInodeCacheLimit

	model := map[string][]byte{}
	modes := map[string]uint16{}
	for d := 0; d < dirs; d++ {
		for f := 0; f < files; f++ {
			model[fmt.Sprintf("/d%03d/f%03d", d, f)] = icacheContent(d, f)
		}
	}
	check := func(path string) {
		t.Helper()
		if got := readPath(t, fs, path, 4096); !bytes.Equal(got, model[path]) {
			t.Fatalf("%s holds %q, want %q", path, got, model[path])
		}
		if m, ok := modes[path]; ok {
			ino, err := fs.Lookup(path)
			if err != nil {
				t.Fatal(err)
			}
			got := ino.Mode() & 0o7777
			fs.Iput(ino)
			if got != m {
				t.Fatalf("%s has mode %#o, want %#o", path, got, m)
			}
		}
	}

	// Walk one: read every file, changing some on the way. Files written
	// have dirty pages and may stay cached beyond the limit until they
	// are written back; nothing else may.
	written, peak := 0, 0
	for d := 0; d < dirs; d++ {
		dirPath := fmt.Sprintf("/d%03d", d)
		for f := 0; f < files; f++ {
			path := fmt.Sprintf("%s/f%03d", dirPath, f)
			check(path)
			i := d*files + f
			switch {
			case i%10 == 3: // overwrite and extend
				fl := openPath(t, fs, path)
				data := []byte(fmt.Sprintf("rewritten %d, longer than before\n", i))
				if n, err := fl.WriteAt(data, 0); err != nil || n != len(data) {
					t.Fatalf("WriteAt(%s) = %d, %v", path, n, err)
				}
				fl.Close()
				model[path] = data
				written++
			case i%50 == 7: // truncate: a dirty inode without dirty pages
				fl := openPath(t, fs, path)
				if err := fl.Truncate(3); err != nil {
					t.Fatal(err)
				}
				fl.Close()
				model[path] = model[path][:3]
			case i%100 == 11: // chmod: only the inode is dirty
				ino, err := fs.Lookup(path)
				if err != nil {
					t.Fatal(err)
				}
				ino.Lock()
				ino.UpdateLocked(func(di *layout.Inode) { di.Mode = di.Mode&^0o7777 | 0o600 })
				ino.Unlock()
				fs.Iput(ino)
				modes[path] = 0o600
			case i%97 == 5: // unlink
				dir, err := fs.Lookup(dirPath)
				if err != nil {
					t.Fatal(err)
				}
				if err := fs.Unlink(dir, fmt.Sprintf("f%03d", f)); err != nil {
					t.Fatal(err)
				}
				fs.Iput(dir)
				delete(model, path)
			case i%100 == 21: // create
				dir, err := fs.Lookup(dirPath)
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("new%03d", f)
				ino, err := fs.Create(dir, name, 0o644, 0, 0)
				fs.Iput(dir)
				if err != nil {
					t.Fatal(err)
				}
				fl, err := fs.Open(ino, true)
				fs.Iput(ino)
				if err != nil {
					t.Fatal(err)
				}
				data := []byte("new " + path)
				if _, err := fl.WriteAt(data, 0); err != nil {
					t.Fatal(err)
				}
				fl.Close()
				model[dirPath+"/"+name] = data
				written++
			}
			n := fs.CachedInodes()
			peak = max(peak, n)
			if n > limit+written {
				t.Fatalf("after %d files the inode cache holds %d inodes, want at most %d (+%d with written data)", i+1, n, limit, written)
			}
		}
	}
	t.Logf("walk one: peak %d cached inodes (limit %d, %d files written)", peak, limit, written)
	if peak < limit {
		t.Errorf("the inode cache peaked at %d inodes, below its limit %d: the walk did not fill it", peak, limit)
	}

	// Walk two, after a sync: everything is clean, so the bound holds
	// strictly, and every file reads back as changed (most of them from
	// inodes evicted and read again).
	if err := fs.Sync(); err != nil {
		t.Fatal(err)
	}
	for path := range model {
		check(path)
		if n := fs.CachedInodes(); n > limit {
			t.Fatalf("after a sync, reading %s leaves %d cached inodes, want at most %d", path, n, limit)
		}
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
	for _, path := range []string{"/d000/f003", "/d000/f007", "/d000/f013", "/d000/new021", "/d050/f057", "/d099/f093"} {
		if got := oracle.DebugfsDump(t, img, path); !bytes.Equal(got, model[path]) {
			t.Errorf("debugfs dump %s: %q, want %q", path, got, model[path])
		}
	}
	if st := oracle.DebugfsStat(t, img, "/d000/f011"); st.Mode&0o7777 != 0o600 {
		t.Errorf("debugfs stat /d000/f011: mode %#o, want 0600", st.Mode&0o7777)
	}
}

// TestFollowupInodeCacheConcurrent has four goroutines read, rewrite and
// stat files of a 400-file tree through an inode cache of 32, so that
// inodes are evicted and read again while others use them, written back
// and truncated: every file must read back as its last writer left it,
// and e2fsck must find the image clean.
func TestFollowupInodeCacheConcurrent(t *testing.T) {
	const files, workers, rounds = 400, 4, 3
	src := t.TempDir()
	for f := 0; f < files; f++ {
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%d", f%4), fmt.Sprintf("f%03d", f)), icacheContent(f%4, f))
	}
	img := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, BlockSize: 1024, FromDir: src})
	const limit = 32
	fs := mountImage(t, img, Options{InodeCacheLimit: limit})
	path := func(f int) string { return fmt.Sprintf("/d%d/f%03d", f%4, f) }
	// Worker w owns the files f with f%workers == w: it alone writes
	// them, everyone reads them.
	want := make([][]byte, files)
	for f := range want {
		want[f] = icacheContent(f%4, f)
	}
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			errc <- func() error {
				for r := 0; r < rounds; r++ {
					for f := 0; f < files; f++ {
						ino, err := fs.Lookup(path(f))
						if err != nil {
							return err
						}
						st := ino.Stat()
						if f%workers != w {
							fs.Iput(ino)
							if st.Nlink != 1 || st.Ino != ino.Ino() {
								return fmt.Errorf("%s: stat %+v", path(f), st)
							}
							continue
						}
						fl, err := fs.Open(ino, true)
						fs.Iput(ino)
						if err != nil {
							return err
						}
						got := make([]byte, 8192)
						n, _ := fl.ReadAt(got, 0)
						if !bytes.Equal(got[:n], want[f]) {
							fl.Close()
							return fmt.Errorf("round %d: %s holds %q, want %q", r, path(f), got[:n], want[f])
						}
						data := pattern(uint64(r*files+f), 1000+(r*f)%5000)
						if r%2 == 1 {
							if err := fl.Truncate(0); err != nil {
								fl.Close()
								return err
							}
						}
						if _, err := fl.WriteAt(data, 0); err != nil {
							fl.Close()
							return err
						}
						if int64(len(want[f])) > int64(len(data)) && r%2 == 0 {
							data = append(data, want[f][len(data):]...)
						}
						want[f] = data
						if err := fl.Close(); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Sync(); err != nil {
		t.Fatal(err)
	}
	for f := 0; f < files; f++ {
		if got := readPath(t, fs, path(f), 4096); !bytes.Equal(got, want[f]) {
			t.Errorf("%s: %d bytes, want %d (first difference at %d)", path(f), len(got), len(want[f]), firstDiff(got, want[f]))
		}
	}
	if n := fs.CachedInodes(); n > limit {
		t.Errorf("after a sync and a read of every file the inode cache holds %d inodes, want at most %d", n, limit)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
	for _, f := range []int{0, 1, 2, 3, 399} {
		if got := oracle.DebugfsDump(t, img, path(f)); !bytes.Equal(got, want[f]) {
			t.Errorf("debugfs dump %s: %d bytes, want %d (first difference at %d)", path(f), len(got), len(want[f]), firstDiff(got, want[f]))
		}
	}
}
