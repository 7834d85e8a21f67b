package ext2

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// slowTarget is the target of the slow symlink "sl" of atimeImage: longer
// than the 60 bytes a fast symlink holds in i_block.
var slowTarget = strings.Repeat("long/", 20) + "f"

// atimeImage makes an image (inodes of isz bytes) holding a file f of
// 1000 bytes, an empty file g, a directory d with one file, a fast
// symlink fl and a slow symlink sl, and returns its path.
func atimeImage(t *testing.T, isz int) string {
	t.Helper()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), pattern(7, 1000))
	writeFile(t, filepath.Join(src, "g"), nil)
	writeFile(t, filepath.Join(src, "d", "x"), []byte("x"))
	if err := os.Symlink("f", filepath.Join(src, "fl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(slowTarget, filepath.Join(src, "sl")); err != nil {
		t.Fatal(err)
	}
	return makeImage(t, 1024, isz, 4<<20, src)
}

// copyImage copies the image at src to a new file and returns its path.
func copyImage(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// setInodeTimes sets ino's atime, mtime and ctime as a test's starting
// point.
func setInodeTimes(ino *Inode, a, m, c time.Time) {
	ino.Lock()
	ino.UpdateLocked(func(d *layout.Inode) {
		setTimes(d, a, "a")
		setTimes(d, m, "m")
		setTimes(d, c, "c")
	})
	ino.Unlock()
}

// atimeOp is something a user does that may read an inode.
type atimeOp func(t *testing.T, fs *FS, ino *Inode)

func opRead(n int, off int64) atimeOp {
	return func(t *testing.T, fs *FS, ino *Inode) {
		t.Helper()
		f, err := fs.Open(ino, false)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.ReadAt(make([]byte, n), off); err != nil && !strings.Contains(err.Error(), "EOF") {
			t.Fatalf("ReadAt(%d bytes at %d): %v", n, off, err)
		}
	}
}

func opReadDir(t *testing.T, fs *FS, ino *Inode) {
	t.Helper()
	if _, err := fs.ReadDir(ino); err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
}

func opReadDirFrom(t *testing.T, fs *FS, ino *Inode) {
	t.Helper()
	if _, _, err := fs.ReadDirFrom(ino, 0, 1); err != nil {
		t.Fatalf("ReadDirFrom: %v", err)
	}
}

func opReadLink(t *testing.T, fs *FS, ino *Inode) {
	t.Helper()
	if _, err := fs.ReadLink(ino); err != nil {
		t.Fatalf("ReadLink: %v", err)
	}
}

// opFollow resolves a path through the link (the link is "fl").
func opFollow(t *testing.T, fs *FS, _ *Inode) {
	t.Helper()
	ino, err := fs.LookupPath("fl", true)
	if err != nil {
		t.Fatalf("LookupPath(fl, follow): %v", err)
	}
	fs.Iput(ino)
}

// TestAtime reads files, lists directories and reads links under each
// atime mode, from chosen starting times, and checks whether atime
// changed, that the change reaches the disk with the next write-out, and
// that e2fsck finds the image clean.
func TestAtime(t *testing.T) {
	const day = 24 * time.Hour
	// times gives atime, mtime and ctime relative to now.
	type times struct{ a, m, c time.Duration }
	fresh := times{-time.Second, -time.Second, -time.Second} // as just written: all equal
	cases := []struct {
		name   string
		opts   Options
		path   string
		start  times
		before atimeOp // done first, then the start times are not reset
		op     atimeOp
		want   bool // atime changed by op
	}{
		{"relatime/fresh file read", Options{}, "f", fresh, nil, opRead(100, 0), true},
		{"relatime/read again", Options{}, "f", fresh, opRead(100, 0), opRead(100, 0), false},
		{"relatime/atime a day old", Options{Atime: Relatime}, "f", times{-day - time.Second, -2 * day, -2 * day}, nil, opRead(100, 0), true},
		{"relatime/atime 23h old, after mtime and ctime", Options{}, "f", times{-23 * time.Hour, -2 * day, -2 * day}, nil, opRead(100, 0), false},
		{"relatime/atime recent, after mtime and ctime", Options{}, "f", times{-time.Minute, -time.Hour, -time.Hour}, nil, opRead(100, 0), false},
		{"relatime/mtime after atime", Options{}, "f", times{-time.Hour, -time.Minute, -time.Hour}, nil, opRead(100, 0), true},
		{"relatime/ctime after atime", Options{}, "f", times{-time.Hour, -2 * time.Hour, -time.Minute}, nil, opRead(100, 0), true},
		{"relatime/read of 0 bytes", Options{}, "f", fresh, nil, opRead(0, 0), false},
		{"relatime/read at end of file", Options{}, "f", fresh, nil, opRead(100, 1000), true},
		{"relatime/empty file", Options{}, "g", fresh, nil, opRead(100, 0), true},
		{"relatime/ReadDir", Options{}, "d", fresh, nil, opReadDir, true},
		{"relatime/ReadDirFrom", Options{}, "d", fresh, nil, opReadDirFrom, true},
		{"relatime/ReadDir again", Options{}, "d", fresh, opReadDir, opReadDir, false},
		{"relatime/fast symlink", Options{}, "fl", fresh, nil, opReadLink, true},
		{"relatime/slow symlink", Options{}, "sl", fresh, nil, opReadLink, true},
		{"relatime/symlink followed", Options{}, "fl", fresh, nil, opFollow, true},
		{"strictatime/recent atime", Options{Atime: Strictatime}, "f", times{-time.Minute, -time.Hour, -time.Hour}, nil, opRead(100, 0), true},
		{"strictatime/read again", Options{Atime: Strictatime}, "f", fresh, opRead(100, 0), opRead(100, 0), true},
		{"strictatime/ReadDir", Options{Atime: Strictatime}, "d", times{-time.Minute, -time.Hour, -time.Hour}, nil, opReadDir, true},
		{"strictatime/read of 0 bytes", Options{Atime: Strictatime}, "f", fresh, nil, opRead(0, 0), false},
		{"noatime/fresh file read", Options{Atime: Noatime}, "f", fresh, nil, opRead(100, 0), false},
		{"noatime/atime a day old", Options{Atime: Noatime}, "f", times{-2 * day, -3 * day, -3 * day}, nil, opRead(100, 0), false},
		{"noatime/ReadDir", Options{Atime: Noatime}, "d", fresh, nil, opReadDir, false},
		{"noatime/symlink", Options{Atime: Noatime}, "sl", fresh, nil, opReadLink, false},
		{"nodiratime/ReadDir", Options{NoDirAtime: true}, "d", fresh, nil, opReadDir, false},
		{"nodiratime/file read", Options{NoDirAtime: true}, "f", fresh, nil, opRead(100, 0), true},
	}
	for _, isz := range []int{256, 128} {
		tmpl := atimeImage(t, isz)
		for _, tc := range cases {
			t.Run(tc.name+"/inode"+strconv.Itoa(isz), func(t *testing.T) {
				t.Parallel()
				img := copyImage(t, tmpl)
				fs := mountImage(t, img, tc.opts)
				ino, err := fs.Lookup(tc.path)
				if err != nil {
					t.Fatal(err)
				}
				now := time.Now()
				setInodeTimes(ino, now.Add(tc.start.a), now.Add(tc.start.m), now.Add(tc.start.c))
				if tc.before != nil {
					tc.before(t, fs, ino)
				}
				if isz == 128 && tc.want {
					// Seconds only: make sure the second changes.
					time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
				}
				before := ino.Stat().Atime
				tc.op(t, fs, ino)
				after := ino.Stat().Atime
				if got := !after.Equal(before); got != tc.want {
					t.Errorf("atime %v -> %v: changed %v, want %v", before, after, got, tc.want)
				}
				if tc.want {
					if after.Before(now) || after.After(time.Now()) {
						t.Errorf("atime %v, want the time of the read (%v or later)", after, now)
					}
					if isz == 128 && after.Nanosecond() != 0 {
						t.Errorf("atime %v on a 128-byte inode, want whole seconds", after)
					}
				}
				fs.Iput(ino)
				if err := fs.Close(); err != nil {
					t.Fatal(err)
				}
				oracle.RequireClean(t, img)
				// The in-memory atime is what was written back.
				ro := mountImage(t, img, Options{ReadOnly: true})
				ino, err = ro.Lookup(tc.path)
				if err != nil {
					t.Fatal(err)
				}
				defer ro.Iput(ino)
				if isz == 128 {
					after = after.Truncate(time.Second) // what the inode stores
				}
				if got := ino.Stat().Atime; !got.Equal(after) {
					t.Errorf("atime on disk %v, want %v", got, after)
				}
			})
		}
	}
}

// TestAtimeReadOnly checks that reads change nothing on a filesystem
// mounted read-only or remounted read-only after an error, whatever the
// mode.
func TestAtimeReadOnly(t *testing.T) {
	tmpl := atimeImage(t, 256)
	// Starting times that every mode would update: atime older than a
	// day and before mtime.
	old := time.Now().Add(-72 * time.Hour)
	prep := copyImage(t, tmpl)
	fs := mountImage(t, prep, Options{})
	for _, p := range []string{"f", "d", "sl"} {
		ino, err := fs.Lookup(p)
		if err != nil {
			t.Fatal(err)
		}
		setInodeTimes(ino, old, old.Add(time.Hour), old.Add(time.Hour))
		fs.Iput(ino)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	_, gOff, _ := fileLoc(t, prep, "g")
	for _, mode := range []AtimeMode{Relatime, Strictatime} {
		for _, how := range []string{"mounted read-only", "remounted read-only after an error"} {
			t.Run(mode.String()+"/"+how, func(t *testing.T) {
				img := copyImage(t, prep)
				var fs *FS
				if how == "mounted read-only" {
					fs = mountImage(t, img, Options{Atime: mode, ReadOnly: true})
				} else {
					// A corrupt inode g (an invalid mode) found by a
					// lookup turns the filesystem read-only.
					patchImage(t, img, gOff, []byte{0, 0xF0})
					fs = mountImage(t, img, Options{Atime: mode, Errors: ErrorsRemountRO})
					if _, err := fs.Lookup("g"); err == nil {
						t.Fatal("Lookup(g) of a corrupt inode: no error")
					}
					if !fs.ReadOnly() {
						t.Fatal("not read-only after the error")
					}
				}
				ops := map[string]atimeOp{"f": opRead(100, 0), "d": opReadDir, "sl": opReadLink}
				for p, op := range ops {
					ino, err := fs.Lookup(p)
					if err != nil {
						t.Fatal(err)
					}
					before := ino.Stat().Atime
					op(t, fs, ino)
					if after := ino.Stat().Atime; !after.Equal(before) {
						t.Errorf("%s: atime %v -> %v, want no change", p, before, after)
					}
					if ino.dirty.Load() {
						t.Errorf("%s: inode dirty after a read", p)
					}
					fs.Iput(ino)
				}
			})
		}
	}
}

// TestAtimeSetAtimeMode changes the mode of a mounted filesystem, as a
// remount does: the relatime shortcut cached for an inode does not keep
// strictatime from updating it.
func TestAtimeSetAtimeMode(t *testing.T) {
	img := copyImage(t, atimeImage(t, 256))
	fs := mountImage(t, img, Options{})
	if m, nd := fs.AtimeMode(); m != Relatime || nd {
		t.Errorf("AtimeMode() = %v, %v, want relatime, false", m, nd)
	}
	ino, err := fs.Lookup("f")
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(ino)
	now := time.Now()
	setInodeTimes(ino, now.Add(-time.Minute), now.Add(-time.Hour), now.Add(-time.Hour))
	read := opRead(10, 0)
	for i, step := range []struct {
		mode AtimeMode
		want bool
	}{{Relatime, false}, {Relatime, false}, {Strictatime, true}, {Noatime, false}, {AtimeDefault, false}} {
		if err := fs.SetAtimeMode(step.mode, false); err != nil {
			t.Fatal(err)
		}
		before := ino.Stat().Atime
		read(t, fs, ino)
		if got := !ino.Stat().Atime.Equal(before); got != step.want {
			t.Errorf("step %d (%v): atime changed %v, want %v", i, step.mode, got, step.want)
		}
	}
	if err := fs.SetAtimeMode(Strictatime+1, false); err == nil {
		t.Error("SetAtimeMode of an unknown mode: no error")
	}
}

func TestParseAtimeMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want AtimeMode
		ok   bool
	}{
		{"", AtimeDefault, true},
		{"relatime", Relatime, true},
		{"noatime", Noatime, true},
		{"strictatime", Strictatime, true},
		{"atime", 0, false},
		{"NOATIME", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAtimeMode(tc.in)
			if (err == nil) != tc.ok || tc.ok && got != tc.want {
				t.Errorf("ParseAtimeMode(%q) = %v, %v, want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
			}
			if tc.ok && tc.in != "" && got.String() != tc.in {
				t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
			}
		})
	}
}
