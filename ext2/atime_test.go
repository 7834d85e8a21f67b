package ext2

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
				if err := fs.Sync(); err != nil {
					t.Fatal(err)
				}
				before := ino.Stat().Atime
				writes := fs.Queue().Stats().WriteCalls
				tc.op(t, fs, ino)
				after := ino.Stat().Atime
				if got := !after.Equal(before); got != tc.want {
					t.Errorf("atime %v -> %v: changed %v, want %v", before, after, got, tc.want)
				}
				// An update dirties the inode for the next write-out;
				// the read itself writes nothing.
				if got := ino.dirty.Load(); got != tc.want {
					t.Errorf("inode dirty after the read: %v, want %v", got, tc.want)
				}
				if w := fs.Queue().Stats().WriteCalls; w != writes {
					t.Errorf("the read made %d device writes, want none", w-writes)
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

// kernelStep is one step of TestAtimeMatchesKernel: an operation on a
// path, done through the kernel's mount and through ours.
type kernelStep struct {
	name string
	path string // whose atime is watched
	op   string // "read N@OFF", "readdir", "readlink", "follow"
	n    int
	off  int64
}

// TestAtimeMatchesKernel does the same steps on a kernel mount of an
// image (remounted relatime, strictatime or noatime) and on ours, from
// the same starting times, and checks that atime changes at the same
// steps.
func TestAtimeMatchesKernel(t *testing.T) {
	src := t.TempDir()
	for _, n := range []string{"f1", "f2", "f3", "f4", "f5", "f6"} {
		writeFile(t, filepath.Join(src, n), pattern(3, 1000))
	}
	writeFile(t, filepath.Join(src, "g"), nil)
	writeFile(t, filepath.Join(src, "d", "x"), []byte("x"))
	for name, target := range map[string]string{"fl": "f1", "sl": slowTarget, "fl2": "f6"} {
		if err := os.Symlink(target, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	prep := makeImage(t, 1024, 256, 4<<20, src)
	// Starting times, set through our mount: each file's atime against
	// its mtime and ctime is one case of relatime_need_update.
	now := time.Now()
	h := time.Hour
	fs := mountImage(t, prep, Options{})
	for p, tm := range map[string][3]time.Duration{
		"f1": {-72 * h, -72 * h, -72 * h}, // atime = mtime = ctime
		"f2": {-23 * h, -48 * h, -48 * h}, // later than both, younger than a day
		"f3": {-25 * h, -48 * h, -48 * h}, // later than both, older than a day
		"f4": {-h, -2 * h, -h / 2},        // ctime later
		"f5": {-h, -h / 2, -2 * h},        // mtime later
		"f6": {-72 * h, -72 * h, -72 * h},
		"g":  {-72 * h, -72 * h, -72 * h},
		"d":  {-72 * h, -72 * h, -72 * h},
		"fl": {-72 * h, -72 * h, -72 * h}, "sl": {-72 * h, -72 * h, -72 * h}, "fl2": {-72 * h, -72 * h, -72 * h},
	} {
		ino, err := fs.Lookup(p)
		if err != nil {
			t.Fatal(err)
		}
		setInodeTimes(ino, now.Add(tm[0]), now.Add(tm[1]), now.Add(tm[2]))
		fs.Iput(ino)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	steps := []kernelStep{
		{"atime = mtime = ctime", "f1", "read", 100, 0},
		{"read again", "f1", "read", 100, 0},
		{"atime after mtime and ctime, 23 h old", "f2", "read", 100, 0},
		{"atime after mtime and ctime, 25 h old", "f3", "read", 100, 0},
		{"ctime after atime", "f4", "read", 100, 0},
		{"mtime after atime", "f5", "read", 100, 0},
		{"read of 0 bytes", "g", "read", 0, 0},
		{"read of an empty file", "g", "read", 100, 0},
		{"read past the end", "f6", "read", 100, 5000},
		{"directory listing", "d", "readdir", 0, 0},
		{"directory listing again", "d", "readdir", 0, 0},
		{"fast symlink read", "fl", "readlink", 0, 0},
		{"slow symlink read", "sl", "readlink", 0, 0},
		{"fast symlink followed", "fl2", "follow", 0, 0},
	}
	for _, mode := range []AtimeMode{Relatime, Strictatime, Noatime} {
		t.Run(mode.String(), func(t *testing.T) {
			kimg := copyImage(t, prep)
			dir := oracle.LoopMount(t, kimg, false)
			if out, err := exec.Command("mount", "-o", "remount,"+mode.String(), dir).CombinedOutput(); err != nil {
				t.Fatalf("mount -o remount,%v: %v: %s", mode, err, out)
			}
			kernel := make([]bool, len(steps))
			for i, s := range steps {
				kernel[i] = kernelAtimeStep(t, dir, s)
			}
			t.Logf("kernel (%s): atime changed at steps %v", mountOpts(t, dir), kernel)
			oracle.Umount(t, dir)
			oracle.RequireClean(t, kimg)

			img := copyImage(t, prep)
			fs := mountImage(t, img, Options{Atime: mode})
			changes := 0
			for i, s := range steps {
				got := ourAtimeStep(t, fs, s)
				if got != kernel[i] {
					t.Errorf("%s (%s): atime changed %v, the kernel's %v", s.name, s.path, got, kernel[i])
				}
				if got {
					changes++
				}
			}
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			oracle.RequireClean(t, img)
			if mode != Noatime && changes == 0 {
				t.Errorf("no step changed atime under %v", mode)
			}
		})
	}
}

// kernelAtimeStep does s under the kernel mount at dir and reports
// whether the atime of s.path changed.
func kernelAtimeStep(t *testing.T, dir string, s kernelStep) bool {
	t.Helper()
	p := filepath.Join(dir, s.path)
	atime := func() time.Time {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(st.Atim.Unix())
	}
	before := atime()
	time.Sleep(10 * time.Millisecond) // let the clock move on
	switch s.op {
	case "read":
		fd, err := syscall.Open(p, syscall.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := syscall.Pread(fd, make([]byte, s.n), s.off); err != nil {
			t.Fatal(err)
		}
		syscall.Close(fd)
	case "readdir":
		if _, err := os.ReadDir(p); err != nil {
			t.Fatal(err)
		}
	case "readlink":
		if _, err := os.Readlink(p); err != nil {
			t.Fatal(err)
		}
	case "follow":
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	return !atime().Equal(before)
}

// ourAtimeStep does s on fs and reports whether the atime of s.path
// changed.
func ourAtimeStep(t *testing.T, fs *FS, s kernelStep) bool {
	t.Helper()
	ino, err := fs.Lookup(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(ino)
	before := ino.Stat().Atime
	time.Sleep(10 * time.Millisecond)
	switch s.op {
	case "read":
		opRead(s.n, s.off)(t, fs, ino)
	case "readdir":
		opReadDir(t, fs, ino)
	case "readlink":
		opReadLink(t, fs, ino)
	case "follow":
		in, err := fs.LookupPath(s.path, true)
		if err != nil {
			t.Fatal(err)
		}
		fs.Iput(in)
	}
	return !ino.Stat().Atime.Equal(before)
}

// mountOpts returns the options /proc/mounts shows for the mount at dir.
func mountOpts(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == dir {
			return f[3]
		}
	}
	return "?"
}
