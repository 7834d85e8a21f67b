package fusemount

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2fs"
	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// This file runs the e2fsprogs test-image corpus (../shared/corpus, see
// ORACLES.md; package ext2's corpus_test.go runs it through ext2 itself)
// through the FUSE mount. Most images are deliberately corrupt. A panic
// in a request handler kills the daemon (every program then gets
// ENOTCONN, "Transport endpoint is not connected"), and a request that
// never returns hangs every program using the mount; neither may happen
// on any image. Each image is mounted read-only and walked with plain
// system calls from this process (never a mapping of a file of the
// in-process mount, which can deadlock the Go runtime): getdents, lstat,
// open and read, readlink, llistxattr and lgetxattr, statfs. Every error
// a program sees must be an errno a program can expect from a damaged
// ext2 filesystem. Images that Linux's ext2 driver would mount
// read-write are then mounted read-write and changed.

// corpusMountLimits bound the walk of one image through the mount, as
// package ext2's corpusLimits bound its walk, and the time it may take.
type corpusMountLimits struct {
	entries   int   // directory entries visited
	fileBytes int64 // bytes read from one file
	bytes     int64 // bytes read in all
	xattrs    int   // attributes read per file
	chunk     int   // read(2) size
	// walkTime is the time a walk may take: then it stops, cut short
	// (the directories of tens of thousands of entries, f_h_* and
	// f_many_subdirs, take longer than that under -race).
	walkTime time.Duration
	// deadline is the time one image's walk (or read-write pass) may
	// take before the test gives up on it as hung.
	deadline time.Duration
	// opDeadline is the longest one system call may take.
	opDeadline time.Duration
}

// corpusMountLimit is the budget of one image. Under the race detector
// (or -short) the entries and bytes are cut as package ext2's
// corpusLimits cuts them.
func corpusMountLimit() corpusMountLimits {
	l := corpusMountLimits{entries: 20000, fileBytes: 16 << 20, bytes: 64 << 20, xattrs: 8, chunk: 1 << 20,
		walkTime: 10 * time.Second, deadline: 40 * time.Second, opDeadline: 5 * time.Second}
	if oracle.RaceEnabled || testing.Short() {
		l.entries, l.fileBytes, l.bytes = 5000, 2<<20, 8<<20
		l.walkTime, l.opDeadline = 6*time.Second, 10*time.Second
	}
	return l
}

// corpusMountWorkers is how many images are mounted at once.
const corpusMountWorkers = 3

// corpusROErrnos are the errnos a program may see walking a corrupt
// image read-only: what Linux's ext2 returns for the same damage (EIO
// for unreadable or inconsistent metadata, EUCLEAN for
// -EFSCORRUPTED; the kernel's own filldir refuses an empty name or one
// holding '/' with EIO, FUSE's readdir parser too), ENOENT for a name
// that is not there as listed, ENOTDIR/ELOOP/ENAMETOOLONG for paths made
// of damaged names and directory links (the kernel refuses to alias a
// directory inode under its own descendant: ELOOP), EFBIG/EOVERFLOW for
// sizes past what a file may have, ENODATA for an attribute not there,
// E2BIG for a listing over the 64 KiB the kernel takes. Never ENOSYS
// (an operation we do not serve), ENOTCONN or ECONNABORTED (a dead
// daemon), EINVAL or EPERM (a wrong mapping of ours).
var corpusROErrnos = map[syscall.Errno]bool{
	syscall.EIO: true, syscall.EUCLEAN: true, syscall.ENOENT: true, syscall.ENOTDIR: true,
	syscall.ELOOP: true, syscall.ENAMETOOLONG: true, syscall.EFBIG: true, syscall.EOVERFLOW: true,
	syscall.ENODATA: true, syscall.E2BIG: true,
}

// corpusRWErrnos are the errnos the changes of the read-write pass may
// fail with besides those: no space (bitmaps that say the disk is full),
// a filesystem that remounted itself read-only on finding damage
// (errors=remount-ro), a directory with the most links ext2 allows, an
// inode whose (damaged) i_flags say immutable or append-only (EPERM, as
// Linux refuses to change it).
var corpusRWErrnos = map[syscall.Errno]bool{
	syscall.ENOSPC: true, syscall.EROFS: true, syscall.EMLINK: true, syscall.EPERM: true,
}

// mountOpErr is one failed system call of a walk.
type mountOpErr struct {
	op, path string
	errno    syscall.Errno
	err      error // when the error was not an errno
}

func (e mountOpErr) String() string {
	if e.err != nil {
		return fmt.Sprintf("%s %s: %v (no errno)", e.op, e.path, e.err)
	}
	return fmt.Sprintf("%s %s: %v (%s)", e.op, e.path, e.errno, unix.ErrnoName(e.errno))
}

// mountWalk is the state of one walk through a mount. The walking
// goroutine may outlive the test (a hung system call); the test reads
// the fields under mu.
type mountWalk struct {
	lim  corpusMountLimits
	root string       // the mount point
	cur  atomic.Value // string: the system call in progress, for a hang report

	mu       sync.Mutex // guards the fields below
	errs     []mountOpErr
	slow     []string // calls slower than lim.opDeadline
	dirs     int
	files    int
	symlinks int
	special  int
	entries  int
	xattrs   int
	bytes    int64
	limited  string    // the limit that cut the walk short
	stopAt   time.Time // when the walk stops, cut short by the time limit
	free     int64     // bytes free at the start of the read-write changes
	// wroteExisting: the read-write pass opened an existing file for
	// writing and wrote into it.
	wroteExisting bool
	readable      []string // regular files read without error (up to 4), relative to root
	seen          seenEntries
}

// seenEntries are entries of each type a walk met (the first few),
// relative to the mount point, for the read-write pass to change.
type seenEntries struct {
	files, dirs, links []string
}

func (s *seenEntries) add(list *[]string, rel string) {
	if len(*list) < 6 {
		*list = append(*list, rel)
	}
}

// call runs one system call, timing it and recording its error; it
// returns the errno (0 for success).
func (w *mountWalk) call(op, path string, fn func() error) syscall.Errno {
	w.cur.Store(op + " " + path)
	t0 := time.Now()
	err := fn()
	d := time.Since(t0)
	w.cur.Store("")
	w.mu.Lock()
	defer w.mu.Unlock()
	if d > w.lim.opDeadline {
		w.slow = append(w.slow, fmt.Sprintf("%s %s took %v", op, path, d.Round(time.Millisecond)))
	}
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if !errors.As(err, &e) {
		w.errs = append(w.errs, mountOpErr{op: op, path: path, err: err})
		return syscall.EIO
	}
	w.errs = append(w.errs, mountOpErr{op: op, path: path, errno: e})
	return e
}

// dropLast forgets the last error recorded, an expected answer (errno e)
// rather than a failure.
func (w *mountWalk) dropLast(e syscall.Errno) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.errs); n > 0 && w.errs[n-1].errno == e {
		w.errs = w.errs[:n-1]
	}
}

// restart resets the budgets of the walk for another one; the errors
// stay.
func (w *mountWalk) restart() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.entries, w.bytes, w.limited = 0, 0, ""
}

// count adds to the walk's counters under mu.
func (w *mountWalk) count(f func(w *mountWalk)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

// over reports whether a budget of the walk is spent.
func (w *mountWalk) over() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !w.stopAt.IsZero() && time.Now().After(w.stopAt):
		w.limited = "time"
	case w.entries >= w.lim.entries:
		w.limited = "entries"
	case w.bytes >= w.lim.bytes:
		w.limited = "bytes"
	case len(w.errs) >= 2000:
		w.limited = "errors"
	}
	return w.limited != ""
}

// walk visits the tree under the mount point breadth first: statfs of
// the root, then each directory (once per inode number) listed with
// getdents, every entry lstat'ed and its attributes listed and read,
// regular files opened and read, symbolic links read. Nothing that
// could block for another reason is opened (fifos, devices), and no
// link is followed.
func (w *mountWalk) walk(cancel *atomic.Bool) {
	w.count(func(w *mountWalk) { w.stopAt = time.Now().Add(w.lim.walkTime) })
	var sfs unix.Statfs_t
	w.call("statfs", w.root, func() error { return unix.Statfs(w.root, &sfs) })
	w.xattrsOf(w.root)
	var rootSt unix.Stat_t
	if w.call("lstat", w.root, func() error { return unix.Lstat(w.root, &rootSt) }) != 0 {
		return
	}
	seen := map[uint64]bool{rootSt.Ino: true}
	queue := []string{w.root}
	dbuf := make([]byte, 32<<10)
	rbuf := make([]byte, w.lim.chunk)
	for len(queue) > 0 && !cancel.Load() && !w.over() {
		dir := queue[0]
		queue = queue[1:]
		w.count(func(w *mountWalk) { w.dirs++ })
		var fd int
		if w.call("open", dir, func() (err error) {
			fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		}) != 0 {
			continue
		}
		var names []string
		// A bad directory block is an EIO, after which the listing
		// goes on with the next block (as ext2_readdir skips a bad
		// page): read on, as long as something comes between errors.
		failed := 0
		for !cancel.Load() && !w.over() && failed < 8 {
			var n int
			if w.call("getdents", dir, func() (err error) { n, err = unix.Getdents(fd, dbuf); return err }) != 0 {
				failed++
				continue
			}
			if n == 0 {
				break
			}
			failed = 0
			_, _, names = unix.ParseDirent(dbuf[:n], -1, names[:0])
			for _, name := range names {
				if cancel.Load() || w.over() {
					break
				}
				w.count(func(w *mountWalk) { w.entries++ })
				p := filepath.Join(dir, name)
				if w.entry(p, rbuf, seen) {
					queue = append(queue, p)
				}
			}
		}
		// Back to the start (the kernel asks the daemon to seek the
		// directory) and the first entries again.
		if _, err := unix.Seek(fd, 0, 0); err == nil {
			w.call("getdents after rewind", dir, func() (err error) { _, err = unix.Getdents(fd, dbuf); return err })
		}
		w.call("close", dir, func() error { return unix.Close(fd) })
	}
	w.call("statfs", w.root, func() error { return unix.Statfs(w.root, &sfs) })
}

// entry visits one name: lstat, attributes, and by type the file's data
// or the link's target. It reports whether p is a directory not seen
// before.
func (w *mountWalk) entry(p string, rbuf []byte, seen map[uint64]bool) (newDir bool) {
	var st unix.Stat_t
	if w.call("lstat", p, func() error { return unix.Lstat(p, &st) }) != 0 {
		return false
	}
	w.xattrsOf(p)
	rel := strings.TrimPrefix(p, w.root+"/")
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if seen[st.Ino] {
			return false
		}
		seen[st.Ino] = true
		w.count(func(w *mountWalk) { w.seen.add(&w.seen.dirs, rel) })
		return true
	case unix.S_IFLNK:
		w.count(func(w *mountWalk) { w.symlinks++; w.seen.add(&w.seen.links, rel) })
		buf := make([]byte, unix.PathMax+1)
		w.call("readlink", p, func() error { _, err := unix.Readlink(p, buf); return err })
	case unix.S_IFREG:
		w.count(func(w *mountWalk) { w.files++; w.seen.add(&w.seen.files, rel) })
		w.readFile(p, rbuf)
	default:
		w.count(func(w *mountWalk) { w.special++ })
	}
	return false
}

// readFile opens p and reads it to the end or to the budget.
func (w *mountWalk) readFile(p string, rbuf []byte) {
	var fd int
	if w.call("open", p, func() (err error) {
		fd, err = unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	}) != 0 {
		return
	}
	// Where the data and the holes are (from the block map, by the
	// daemon): ENXIO is the answer past the end of file.
	for _, whence := range []int{unix.SEEK_DATA, unix.SEEK_HOLE} {
		op := map[int]string{unix.SEEK_DATA: "lseek SEEK_DATA", unix.SEEK_HOLE: "lseek SEEK_HOLE"}[whence]
		if e := w.call(op, p, func() error { _, err := unix.Seek(fd, 0, whence); return err }); e == unix.ENXIO {
			w.dropLast(e)
		}
	}
	var off int64
	ok := true
	for off < w.lim.fileBytes {
		var n int
		chunk := rbuf[:min(int64(len(rbuf)), w.lim.fileBytes-off)]
		if w.call("pread", fmt.Sprintf("%s at %d", p, off), func() (err error) {
			n, err = unix.Pread(fd, chunk, off)
			return err
		}) != 0 {
			ok = false
			break
		}
		if n == 0 {
			break
		}
		off += int64(n)
		w.count(func(w *mountWalk) { w.bytes += int64(n) })
		if w.over() {
			ok = false
			break
		}
	}
	if w.call("close", p, func() error { return unix.Close(fd) }) != 0 {
		ok = false
	}
	if ok && off > 0 {
		w.count(func(w *mountWalk) {
			if len(w.readable) < 4 {
				w.readable = append(w.readable, strings.TrimPrefix(p, w.root+"/"))
			}
		})
	}
}

// xattrsOf lists p's extended attributes (without following a link) and
// reads the first lim.xattrs of them, each with a size query first, as
// getfattr does.
func (w *mountWalk) xattrsOf(p string) {
	var size int
	if w.call("llistxattr", p, func() (err error) { size, err = unix.Llistxattr(p, nil); return err }) != 0 || size == 0 {
		return
	}
	buf := make([]byte, size)
	if w.call("llistxattr", p, func() (err error) { size, err = unix.Llistxattr(p, buf); return err }) != 0 {
		return
	}
	names := strings.Split(strings.TrimSuffix(string(buf[:size]), "\x00"), "\x00")
	for i, name := range names {
		if i == w.lim.xattrs {
			break
		}
		w.count(func(w *mountWalk) { w.xattrs++ })
		op := "lgetxattr " + name
		var n int
		if w.call(op, p, func() (err error) { n, err = unix.Lgetxattr(p, name, nil); return err }) != 0 {
			continue
		}
		v := make([]byte, n)
		w.call(op, p, func() (err error) { _, err = unix.Lgetxattr(p, name, v); return err })
	}
}

// snapshot returns copies of the walk's errors and slow calls.
func (w *mountWalk) snapshot() (errs []mountOpErr, slow []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]mountOpErr(nil), w.errs...), append([]string(nil), w.slow...)
}

// corpusMountStats is the summary of the corpus run through the mount.
type corpusMountStats struct {
	mu         sync.Mutex
	images     int
	openRefuse map[string]int // ext2fs.Open refused, by class
	mountFail  int            // ext2fs.Open accepted, Mount refused
	backup     int            // opened from the backup superblock at 8193
	walked     int
	clean      int            // walked without an error
	errnos     map[string]int // errors the walk met, by errno
	limited    map[string]int
	entries    int
	bytes      int64
	rwTried    int
	rwRefused  int            // ext2fs.Open refused read-write
	rwOK       int            // every change succeeded
	rwExisting int            // wrote into an existing file
	rwErrnos   map[string]int // errors of the read-write pass, by errno
	failures   []string
}

func (s *corpusMountStats) add(f func(s *corpusMountStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// TestCorpusThroughMount mounts every image of the e2fsprogs corpus that
// ext2fs.Open accepts read-only through the FUSE mount and walks it
// (readdir, lstat, read, readlink, xattrs, statfs); the daemon must still
// serve at the end, every error must be a sane errno, no call may take
// longer than a deadline, and unmounting must succeed. An image Open
// refuses must be refused with an error naming the image and what is
// wrong. Images Linux's ext2 driver would mount read-write are then
// mounted read-write and changed (mkdir, create and write 100 KiB,
// rename, write into an existing file, unlink, rmdir): changes may fail
// with an errno, never kill or hang the daemon.
func TestCorpusThroughMount(t *testing.T) {
	requireFuse(t)
	images := oracle.Corpus(t)
	st := &corpusMountStats{openRefuse: map[string]int{}, errnos: map[string]int{}, limited: map[string]int{}, rwErrnos: map[string]int{}}
	start := time.Now()
	t.Run("images", func(t *testing.T) {
		// A fixed number of workers, each running its images as
		// subtests one after another (t.Run may be called from several
		// goroutines), whatever -parallel says.
		jobs := make(chan oracle.CorpusImage)
		var wg sync.WaitGroup
		for range corpusMountWorkers {
			wg.Go(func() {
				for im := range jobs {
					t.Run(im.Name, func(t *testing.T) { corpusMountImage(t, im, st) })
				}
			})
		}
		for _, im := range images {
			jobs <- im
		}
		close(jobs)
		wg.Wait()
	})
	st.images = len(images)
	t.Logf("corpus through the mount (%d images, %v):\n%s", len(images), time.Since(start).Round(time.Second), st.table())
}

// corpusMountImage runs one image: Open read-only (or check its
// refusal), mount, walk, unmount; then the read-write pass.
func corpusMountImage(t *testing.T, im oracle.CorpusImage, st *corpusMountStats) {
	path := im.Image(t)
	lim := corpusMountLimit()
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		t.Errorf("image %s: %s", im.Name, msg)
		st.add(func(s *corpusMountStats) { s.failures = append(s.failures, im.Name+": "+firstLine(msg)) })
	}

	// The way "mpage mount --ro" opens the image (cmd/mpage session.open).
	fsys, err, hung := openWithin(lim.deadline, path, true)
	if hung {
		fail("ext2fs.Open read-only did not return within %v", lim.deadline)
		return
	}
	backup := false
	if err != nil {
		class := checkOpenRefusal(t, im, path, err)
		st.add(func(s *corpusMountStats) { s.openRefuse[class]++ })
		if im.Class != "unreadable-sb" {
			return
		}
		// e2fsprogs' own tests use the first backup superblock of
		// these (ext2fs.Options.SuperblockAt, the sb= option).
		fsys, err, hung = openAtWithin(lim.deadline, path, true, 8193)
		if hung {
			fail("ext2fs.Open read-only from the backup superblock did not return within %v", lim.deadline)
			return
		}
		if err != nil {
			t.Logf("ext2fs.Open from the backup superblock at 8193 refused too: %v", err)
			return
		}
		backup = true
		t.Logf("opened from the backup superblock at 8193")
		st.add(func(s *corpusMountStats) { s.backup++ })
	}
	w := &mountWalk{lim: lim}
	ok := mountAndRun(t, im, path, fsys, true, w, fail, func(cancel *atomic.Bool) { w.walk(cancel) })
	if !ok {
		if w.root == "" {
			st.add(func(s *corpusMountStats) { s.mountFail++ })
		}
		return
	}
	errs, _ := w.snapshot()
	byErrno := map[string]int{}
	for _, e := range errs {
		byErrno[errnoLabel(e)]++
		if e.err != nil || !corpusROErrnos[e.errno] {
			fail("%s: not an errno a program should get from a damaged ext2 image", e)
		}
	}
	for i, e := range errs {
		if i == 5 {
			t.Logf("... and %d more errors", len(errs)-5)
			break
		}
		t.Logf("walk error: %s", e)
	}
	if im.FsckClean() && im.Class != "unreadable-sb" && len(errs) > 0 {
		fail("clean by e2fsck -fn, but the walk through the mount failed: %s", errs[0])
	}
	w.mu.Lock()
	t.Logf("walked: %d dirs, %d files, %d symlinks, %d special, %d xattrs, %d bytes, %d errors%s",
		w.dirs, w.files, w.symlinks, w.special, w.xattrs, w.bytes, len(errs),
		map[bool]string{true: ", cut short by the " + w.limited + " limit"}[w.limited != ""])
	limited, entries, nbytes := w.limited, w.entries, w.bytes
	w.mu.Unlock()
	st.add(func(s *corpusMountStats) {
		s.walked++
		if len(errs) == 0 {
			s.clean++
		}
		for k, v := range byErrno {
			s.errnos[k] += v
		}
		if limited != "" {
			s.limited[limited]++
		}
		s.entries += entries
		s.bytes += nbytes
	})
	if im.LinuxExt2Driver == "rw" && !backup {
		corpusMountReadWrite(t, im, path, lim, st, fail)
	}
}

// errnoLabel names the errno of e for the summary.
func errnoLabel(e mountOpErr) string {
	if e.err != nil {
		return "not an errno"
	}
	return unix.ErrnoName(e.errno)
}

// openWithin opens path with ext2fs.Open as "mpage mount" does, giving up
// after d (hung reports that; the open goes on in the background).
func openWithin(d time.Duration, path string, readOnly bool) (fsys *ext2fs.FS, err error, hung bool) {
	return openAtWithin(d, path, readOnly, 0)
}

// openAtWithin is openWithin with the superblock at block sb (0: the
// primary).
func openAtWithin(d time.Duration, path string, readOnly bool, sb int64) (fsys *ext2fs.FS, err error, hung bool) {
	type res struct {
		fsys *ext2fs.FS
		err  error
	}
	done := make(chan res, 1)
	go func() {
		f, err := ext2fs.Open(path, ext2fs.Options{ReadOnly: readOnly, CacheLimit: 16 << 20, SuperblockAt: sb})
		done <- res{f, err}
	}()
	select {
	case r := <-done:
		return r.fsys, r.err, false
	case <-time.After(d):
		return nil, nil, true
	}
}

// checkOpenRefusal checks the error of an ext2fs.Open that refused the
// image, as "mpage mount" would print it: it must name the image and say
// what is wrong (a corruption with its reason, or the unsupported
// feature). Package ext2's corpus test checks the details of each
// class; this checks what reaches the mount command. It returns the
// class for the summary.
func checkOpenRefusal(t *testing.T, im oracle.CorpusImage, path string, err error) string {
	t.Helper()
	msg := err.Error()
	t.Logf("ext2fs.Open refused: %v", err)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != path {
		t.Errorf("image %s: ext2fs.Open error %q is not an *fs.PathError naming %s", im.Name, msg, path)
	}
	switch {
	case errors.Is(err, ext2.ErrUnsupported):
		// The sentinel alone does not say which feature.
		rest := strings.TrimSpace(msg[strings.Index(msg, ext2.ErrUnsupported.Error())+len(ext2.ErrUnsupported.Error()):])
		if len(strings.Trim(rest, ": ")) < 4 {
			t.Errorf("image %s: ext2fs.Open refused it as unsupported without saying what: %q", im.Name, msg)
		}
		return "unsupported"
	case errors.Is(err, ext2.ErrCorrupt):
		var ce *ext2.CorruptError
		if !errors.As(err, &ce) || (ce.Reason == "" && ce.Err == nil) {
			t.Errorf("image %s: ext2fs.Open refused it as corrupt without a reason: %q", im.Name, msg)
		}
		if im.FsckClean() && im.Class != "unreadable-sb" {
			t.Errorf("image %s is clean by e2fsck -fn, but ext2fs.Open refused it as corrupt: %v", im.Name, err)
		}
		return "corrupt"
	}
	if errors.Is(err, syscall.ESTALE) && strings.Contains(msg, "inode") {
		// A deleted root inode (f_noroot): Linux's ext2_fill_super
		// fails with ext2_iget's -ESTALE too; the message names the
		// inode and says it is deleted.
		return "stale root"
	}
	t.Errorf("image %s: ext2fs.Open error %q is neither ErrCorrupt, ErrUnsupported nor ESTALE naming the inode", im.Name, msg)
	return "other"
}

// mountAndRun mounts fsys (which it closes) at a new directory, runs fn
// with the mount point in w.root under w.lim.deadline, checks that the
// daemon still serves (a stat of the root), unmounts and waits for the
// server to stop. A hang is reported naming the system call in progress
// and the stacks of this module's goroutines; the mount is then detached
// lazily and left behind. It reports whether everything got through
// (failures are reported with fail).
func mountAndRun(t *testing.T, im oracle.CorpusImage, path string, fsys *ext2fs.FS, readOnly bool,
	w *mountWalk, fail func(string, ...any), fn func(cancel *atomic.Bool)) bool {
	pass := map[bool]string{true: "read-only", false: "read-write"}[readOnly]
	dir := t.TempDir()
	srv, err := Mount(fsys, dir, Options{ReadOnly: readOnly, FsName: path})
	if err != nil {
		// The root directory or the statfs of a damaged image: the
		// error must name the image, as ext2fs.Open's errors do.
		t.Logf("%s Mount refused: %v", pass, err)
		if !strings.Contains(err.Error(), path) {
			fail("%s Mount error %q does not name the image", pass, err)
		}
		if !errors.Is(err, ext2.ErrCorrupt) {
			fail("%s Mount error %q is not ErrCorrupt", pass, err)
		}
		if cerr := fsys.Close(); cerr != nil {
			t.Logf("closing after the refused mount: %v", cerr)
		}
		return false
	}
	w.root = dir
	tracked := oracle.TrackFUSEMount(t, dir)

	done := make(chan string, 1)
	cancel := new(atomic.Bool)
	go func() {
		fn(cancel)
		done <- ""
	}()
	timer := time.NewTimer(w.lim.deadline)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		cancel.Store(true)
		cur, _ := w.cur.Load().(string)
		fail("%s pass did not finish within %v; in progress: %q; goroutines of this module:\n%s",
			pass, w.lim.deadline, cur, moduleStacksOf())
		// Abort the connection, so that the goroutines waiting in its
		// requests end (left hung, one of them could keep the test
		// binary from ever exiting), and detach the mount.
		if err := tracked.Abort(); err != nil {
			t.Logf("%v", err)
			exec.Command("fusermount3", "-u", "-z", dir).Run()
		}
		return false
	}
	_, slow := w.snapshot()
	for _, s := range slow {
		fail("%s pass: a system call took longer than %v: %s", pass, w.lim.opDeadline, s)
	}
	// The daemon must still be serving.
	var rst unix.Stat_t
	if err := statWithin(dir, &rst, w.lim.opDeadline); err != nil {
		fail("%s pass: stat of the mount root at the end: %v", pass, err)
		exec.Command("fusermount3", "-u", "-z", dir).Run()
		return false
	}
	if err := srv.Unmount(); err != nil {
		fail("%s pass: Unmount: %v", pass, err)
		exec.Command("fusermount3", "-u", "-z", dir).Run()
		return false
	}
	waited := make(chan struct{})
	go func() { srv.Wait(); close(waited) }()
	select {
	case <-waited:
		tracked.Untrack()
	case <-time.After(w.lim.deadline):
		fail("%s pass: the server did not stop within %v of the unmount; goroutines of this module:\n%s",
			pass, w.lim.deadline, moduleStacksOf())
		return false
	}
	if err := fsys.Close(); err != nil {
		if readOnly {
			fail("closing the filesystem after a read-only mount: %v", err)
			return false
		}
		t.Logf("closing the filesystem after the read-write pass: %v", err)
	}
	return true
}

// statWithin stats path, giving up after d.
func statWithin(path string, st *unix.Stat_t, d time.Duration) error {
	done := make(chan error, 1)
	var s unix.Stat_t
	go func() { done <- unix.Stat(path, &s) }()
	select {
	case err := <-done:
		*st = s
		return err
	case <-time.After(d):
		return fmt.Errorf("no answer within %v", d)
	}
}

// corpusMountReadWrite is the read-write pass: mount a copy of the image
// read-write, make a directory, a file of 100 KiB in it (written,
// fsynced, read back), rename the file to the root, write into an
// existing file, unlink the file and remove the directory, then
// unmount. Changes may fail with an errno of corpusROErrnos or
// corpusRWErrnos; the daemon must keep serving and stop at the unmount.
func corpusMountReadWrite(t *testing.T, im oracle.CorpusImage, roPath string,
	lim corpusMountLimits, st *corpusMountStats, fail func(string, ...any)) {
	path := filepath.Join(t.TempDir(), filepath.Base(roPath))
	if err := copyFile(roPath, path); err != nil {
		t.Fatalf("copying the image: %v", err)
	}
	st.add(func(s *corpusMountStats) { s.rwTried++ })
	fsys, err, hung := openWithin(lim.deadline, path, false)
	if hung {
		fail("ext2fs.Open read-write did not return within %v", lim.deadline)
		return
	}
	if err != nil {
		t.Logf("ext2fs.Open read-write refused: %v", err)
		checkOpenRefusal(t, im, path, err)
		st.add(func(s *corpusMountStats) { s.rwRefused++ })
		return
	}
	w := &mountWalk{lim: lim}
	allOK := false
	run := func(cancel *atomic.Bool) {
		// A walk first: on a read-write mount reads and listings
		// update access times (relatime), so damaged inodes are
		// written back too.
		w.walk(cancel)
		w.mu.Lock()
		existing := make([]string, 0, len(w.readable))
		for _, rel := range w.readable {
			existing = append(existing, filepath.Join(w.root, rel))
		}
		seen := w.seen
		w.mu.Unlock()
		allOK = corpusChanges(w, existing)
		corpusChangeExisting(w, seen)
		// And the tree as the changes (some of them failed half way,
		// perhaps) left it.
		w.restart()
		w.walk(cancel)
	}
	ok := mountAndRun(t, im, path, fsys, false, w, fail, run)
	if !ok {
		return
	}
	errs, _ := w.snapshot()
	byErrno := map[string]int{}
	for _, e := range errs {
		byErrno[errnoLabel(e)]++
		t.Logf("read-write pass: %s", e)
		if e.err != nil || !(corpusROErrnos[e.errno] || corpusRWErrnos[e.errno]) {
			fail("read-write pass: %s: not an errno a program should get from a damaged ext2 image", e)
		}
	}
	if im.FsckClean() && len(errs) > 0 && !slicesContainsErrno(errs, syscall.ENOSPC) {
		fail("clean by e2fsck -fn, but the read-write pass failed: %s", errs[0])
	}
	t.Logf("read-write pass (%d bytes free at the start): every change succeeded: %v", w.free, allOK && len(errs) == 0)
	st.add(func(s *corpusMountStats) {
		if allOK && len(errs) == 0 {
			s.rwOK++
		}
		if w.wroteExisting {
			s.rwExisting++
		}
		for k, v := range byErrno {
			s.rwErrnos[k] += v
		}
	})
}

func slicesContainsErrno(errs []mountOpErr, e syscall.Errno) bool {
	for _, x := range errs {
		if x.errno == e {
			return true
		}
	}
	return false
}

// corpusChanges makes the changes of the read-write pass under w.root,
// each step skipped when one it needs failed. existing are regular files
// to write into (the first that opens is used). It reports whether every
// step ran and succeeded.
func corpusChanges(w *mountWalk, existing []string) bool {
	dir := filepath.Join(w.root, "corpus-rw-dir")
	file := filepath.Join(dir, "probe")
	moved := filepath.Join(w.root, "corpus-rw-probe")
	data := make([]byte, 100<<10)
	for i := range data {
		data[i] = byte(i*7 + i>>10)
	}
	ok := true
	step := func(op, path string, fn func() error) bool {
		if w.call(op, path, fn) != 0 {
			ok = false
			return false
		}
		return true
	}
	var sfs unix.Statfs_t
	if step("statfs", w.root, func() error { return unix.Statfs(w.root, &sfs) }) {
		w.count(func(w *mountWalk) { w.free = int64(sfs.Bavail) * sfs.Bsize })
	}
	if step("mkdir", dir, func() error { return unix.Mkdir(dir, 0o755) }) {
		var fd int
		if step("creat", file, func() (err error) {
			fd, err = unix.Open(file, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
			return err
		}) {
			wrote := step("pwrite 100 KiB", file, func() error { return writeAllAt(fd, data, 0) }) &&
				step("fsync", file, func() error { return unix.Fsync(fd) })
			step("close", file, func() error { return unix.Close(fd) })
			if step("rename", file+" -> "+moved, func() error { return unix.Rename(file, moved) }) {
				if wrote {
					got := make([]byte, len(data)+1)
					var n int
					if step("read back", moved, func() (err error) { n, err = readAllAt(moved, got); return err }) &&
						!bytes.Equal(got[:n], data) {
						w.count(func(w *mountWalk) {
							w.errs = append(w.errs, mountOpErr{op: "read back", path: moved,
								err: fmt.Errorf("got %d bytes, not the %d written and fsynced", n, len(data))})
						})
						ok = false
					}
				}
				step("unlink", moved, func() error { return unix.Unlink(moved) })
			} else {
				step("unlink", file, func() error { return unix.Unlink(file) })
			}
		}
		step("rmdir", dir, func() error { return unix.Rmdir(dir) })
	}
	// Write into an existing file: 4 KiB over its start and 4 KiB past
	// its end.
	for _, p := range existing {
		var fd int
		if !step("open for writing", p, func() (err error) {
			fd, err = unix.Open(p, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		}) {
			continue
		}
		var st unix.Stat_t
		if step("fstat", p, func() error { return unix.Fstat(fd, &st) }) {
			step("pwrite", p+" at 0", func() error { return writeAllAt(fd, data[:4096], 0) })
			step("pwrite", fmt.Sprintf("%s at %d", p, st.Size), func() error { return writeAllAt(fd, data[:4096], st.Size) })
			step("fsync", p, func() error { return unix.Fsync(fd) })
		}
		step("close", p, func() error { return unix.Close(fd) })
		w.count(func(w *mountWalk) { w.wroteExisting = true })
		break
	}
	step("statfs", w.root, func() error { return unix.Statfs(w.root, &sfs) })
	return ok
}

// corpusChangeExisting changes entries the walk met, which on a damaged
// image hold the damage: regular files truncated to nothing, extended,
// unlinked, given an attribute, a mode and an owner; directories renamed
// and removed (ENOTEMPTY unless empty); symbolic links unlinked. Freeing
// the blocks of a damaged block map and rewriting damaged directories
// and attribute blocks are the paths most likely to meet what no
// creation does.
func corpusChangeExisting(w *mountWalk, seen seenEntries) {
	at := func(rel string) string { return filepath.Join(w.root, rel) }
	for i, rel := range seen.files {
		p := at(rel)
		switch i % 3 {
		case 0:
			w.call("truncate to 0", p, func() error { return unix.Truncate(p, 0) })
		case 1:
			w.call("unlink", p, func() error { return unix.Unlink(p) })
		case 2:
			var st unix.Stat_t
			if w.call("lstat", p, func() error { return unix.Lstat(p, &st) }) == 0 {
				w.call("truncate up", p, func() error { return unix.Truncate(p, st.Size+70000) })
			}
			w.call("lsetxattr user.corpus", p, func() error { return unix.Lsetxattr(p, "user.corpus", []byte("value"), 0) })
			w.call("chmod", p, func() error { return unix.Chmod(p, 0o600) })
			w.call("lchown", p, func() error { return unix.Lchown(p, 1, 1) })
		}
	}
	for _, rel := range seen.links {
		p := at(rel)
		w.call("unlink", p, func() error { return unix.Unlink(p) })
	}
	// Directories deepest first, so that a rename or removal does not
	// take the next one's path away; they go last, for the same reason.
	dirs := slices.Clone(seen.dirs)
	slices.Reverse(dirs)
	for i, rel := range dirs {
		p := at(rel)
		if i%2 == 0 {
			to := at(fmt.Sprintf("corpus-renamed-dir-%d", i))
			if w.call("rename", p+" -> "+to, func() error { return unix.Rename(p, to) }) == 0 {
				p = to
			}
		}
		if e := w.call("rmdir", p, func() error { return unix.Rmdir(p) }); e == unix.ENOTEMPTY {
			w.dropLast(e)
		}
	}
	var sfs unix.Statfs_t
	w.call("statfs", w.root, func() error { return unix.Statfs(w.root, &sfs) })
}

// writeAllAt writes b at off with pwrite, all of it.
func writeAllAt(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("pwrite wrote nothing at %d", off)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// readAllAt reads path from the start into buf until EOF or buf is full.
func readAllAt(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// copyFile copies the file src to dst.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// moduleStacksOf returns the stacks of the goroutines running code of
// this module, but for test goroutines waiting for their turn.
func moduleStacksOf() string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out strings.Builder
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "github.com/mpagefs/mpage/") || strings.Contains(g, "testing.(*T).Run") ||
			strings.Contains(g, "fusemount.TestCorpusThroughMount") {
			continue
		}
		if out.Len() > 64<<10 {
			out.WriteString("... (more goroutines left out)\n")
			break
		}
		out.WriteString(g)
		out.WriteString("\n\n")
	}
	return out.String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// table formats the summary.
func (s *corpusMountStats) table() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "  %-46s %v\n", k, v) }
	row("images", s.images)
	for _, k := range sortedKeysOf(s.openRefuse) {
		row("ext2fs.Open refused read-only: "+k, s.openRefuse[k])
	}
	row("opened from the backup superblock instead", s.backup)
	row("Mount refused after Open", s.mountFail)
	row("mounted read-only and walked", s.walked)
	row("  without an error", s.clean)
	for _, k := range sortedKeysOf(s.errnos) {
		row("  errors: "+k, s.errnos[k])
	}
	for _, k := range sortedKeysOf(s.limited) {
		row("  walks cut short by the limit on "+k, s.limited[k])
	}
	row("  entries / bytes read", fmt.Sprintf("%d / %d", s.entries, s.bytes))
	row("read-write passes tried", s.rwTried)
	row("  ext2fs.Open refused read-write", s.rwRefused)
	row("  walked and every change succeeded", s.rwOK)
	row("  wrote into an existing file", s.rwExisting)
	for _, k := range sortedKeysOf(s.rwErrnos) {
		row("  errors: "+k, s.rwErrnos[k])
	}
	row("failures", len(s.failures))
	for _, f := range s.failures {
		fmt.Fprintf(&b, "    %s\n", f)
	}
	return b.String()
}

func sortedKeysOf(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestLookupOfDeletedInode looks up, through the mount, a name whose
// inode the inode table says is deleted (links 0, dtime set), the damage
// the corpus image f_uninit_restart_fsck has: a program gets EIO, as
// from Linux's ext2 ("deleted inode referenced"), not ESTALE, and the
// mount goes on serving the other names.
func TestLookupOfDeletedInode(t *testing.T) {
	requireFuse(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f", "g"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte("data of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 4 << 20, FromDir: src})
	for _, req := range []string{"sif /f links_count 0", "sif /f dtime 1"} {
		if out, err := exec.Command("debugfs", "-w", "-R", req, image).CombinedOutput(); err != nil {
			t.Fatalf("debugfs -w -R %q: %v\n%s", req, err, out)
		}
	}
	m := mountImage(t, image, Options{ReadOnly: true})
	var st unix.Stat_t
	if err := unix.Lstat(m.path("f"), &st); err != syscall.EIO {
		t.Errorf("lstat of a name holding a deleted inode: got %v, want EIO", err)
	}
	if b, err := os.ReadFile(m.path("g")); err != nil || string(b) != "data of g" {
		t.Errorf("reading the other name: got %q, %v; want %q", b, err, "data of g")
	}
	m.unmount(t)
}
