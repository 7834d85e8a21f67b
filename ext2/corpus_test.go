package ext2

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// This file runs the e2fsprogs test-image corpus (../shared/corpus,
// see ORACLES.md) through Mount and a walk of the whole tree: most images
// are deliberately corrupt, and the filesystem must neither panic nor hang
// on any of them, and every error it returns must say what is wrong and
// where. The walker is shared with the fuzz targets of fuzz_test.go.

// walkLimits bound the walk of one filesystem, so that a corrupt image
// (a directory loop, a 2 TiB sparse file) cannot take forever.
type walkLimits struct {
	entries  int   // directory entries visited
	bytes    int64 // file bytes read in all
	fileByte int64 // file bytes read from one file
	errs     int   // errors collected before the walk gives up
	lookups  int   // entries also resolved by full path through Lookup
	// dirLookups: in each directory, the first dirLookups names and
	// every dirLookups-th after are resolved with LookupIn.
	dirLookups int
	chunk      int // ReadAt size
}

// corpusLimits is the budget of one corpus image. Under the race detector
// (or -short) the entries and file bytes are cut down: the walk of the
// directories with tens of thousands of entries (f_h_*, f_many_subdirs)
// takes 5-7 s under -race at 20000 entries, too close to the 10 s
// deadline on a busy machine.
func corpusLimits() walkLimits {
	l := walkLimits{entries: 20000, bytes: 64 << 20, fileByte: 16 << 20, errs: 2000, lookups: 500, dirLookups: 128, chunk: 1 << 20}
	if oracle.RaceEnabled || testing.Short() {
		l.entries, l.bytes, l.fileByte, l.lookups = 5000, 8<<20, 2<<20, 200
	}
	return l
}

// walkError is one error met on the walk: the operation, the path and
// the error.
type walkError struct {
	op, path string
	err      error
}

func (e walkError) String() string { return fmt.Sprintf("%s %q: %v", e.op, e.path, e.err) }

// walkResult counts what a walk saw.
type walkResult struct {
	dirs, files, symlinks, special int
	entries                        int
	bytes                          int64
	limited                        string // the limit that stopped the walk, if any
	errs                           []walkError
}

func (r *walkResult) fail(op, path string, err error) {
	r.errs = append(r.errs, walkError{op, path, err})
}

// walkTree visits every entry reachable from the root: ReadDir of each
// directory (once per inode, so hard-linked directories cannot loop),
// LookupIn of each name, Iget of each inode, ReadLink of each symlink,
// and Open with ReadAt to EOF of each regular file; the first
// lim.lookups entries are also resolved by path with Lookup. Errors are
// collected, not fatal: the walk goes on with the next entry.
// A walk stops early when cancel is set (by a caller that gave up
// waiting), so an abandoned walk does not go on eating CPU.
func walkTree(fsys *FS, lim walkLimits, cancel *atomic.Bool) *walkResult {
	r := &walkResult{}
	root, err := fsys.Root()
	if err != nil {
		r.fail("Root", "/", err)
		return r
	}
	fsys.Iput(root)
	type dirRef struct {
		ino  uint32
		path string
		// pathOK: every name on the path can be looked up (none is
		// empty, holds a slash or NUL or is there twice, as corrupt
		// names may).
		pathOK bool
	}
	queue := []dirRef{{layout.RootIno, "", true}}
	seen := map[uint32]bool{layout.RootIno: true}
	buf := make([]byte, lim.chunk)
	stop := func(why string) bool {
		if r.limited == "" {
			r.limited = why
		}
		return true
	}
	over := func() bool {
		switch {
		case cancel.Load():
			return stop("cancelled")
		case len(r.errs) >= lim.errs:
			return stop("errors")
		case r.entries >= lim.entries:
			return stop("entries")
		}
		return false
	}
	for len(queue) > 0 && !over() {
		d := queue[0]
		queue = queue[1:]
		dir, err := fsys.Iget(d.ino)
		if err != nil {
			r.fail("Iget", d.path+"/", err)
			continue
		}
		r.dirs++
		ents, err := fsys.ReadDir(dir)
		if err != nil {
			r.fail("ReadDir", d.path+"/", err) // the entries before the bad block are still walked
		}
		names := map[string]int{} // a duplicate name (corrupt) makes paths through it ambiguous
		for _, e := range ents {
			names[e.Name]++
		}
		for i, e := range ents {
			if e.Name == "." || e.Name == ".." {
				continue
			}
			if over() {
				break
			}
			r.entries++
			p := d.path + "/" + e.Name
			// LookupIn scans the directory linearly, as Linux ext2 does:
			// resolving every name of a directory of n entries costs n²,
			// so big directories are sampled.
			// An empty name (name_len 0, which e2fsck calls corrupt)
			// cannot be looked up at all.
			if e.Name != "" && (i < lim.dirLookups || i%lim.dirLookups == 0) {
				if n, err := fsys.LookupIn(dir, e.Name); err != nil {
					r.fail("LookupIn", p, err)
				} else if n != e.Ino && !slices.ContainsFunc(ents, func(o DirEntry) bool { return o.Name == e.Name && o.Ino == n }) {
					r.fail("LookupIn", p, fmt.Errorf("got inode %d, want %d as ReadDir listed", n, e.Ino))
				}
			}
			pathOK := d.pathOK && e.Name != "" && !strings.ContainsAny(e.Name, "/\x00") && names[e.Name] == 1
			if r.entries <= lim.lookups && pathOK {
				if ino, err := fsys.Lookup(p); err != nil {
					r.fail("Lookup", p, err)
				} else {
					fsys.Iput(ino)
				}
			}
			ino, err := fsys.Iget(e.Ino)
			if err != nil {
				r.fail("Iget", p, err)
				continue
			}
			switch {
			case ino.IsDir():
				if !seen[e.Ino] {
					seen[e.Ino] = true
					queue = append(queue, dirRef{e.Ino, p, pathOK})
				}
			case ino.IsSymlink():
				r.symlinks++
				if _, err := fsys.ReadLink(ino); err != nil {
					r.fail("ReadLink", p, err)
				}
			case ino.IsRegular():
				r.files++
				if r.bytes < lim.bytes {
					readWhole(fsys, ino, p, buf, lim, r, cancel)
				} else {
					stop("bytes")
				}
			default:
				r.special++
				_ = ino.Stat()
			}
			fsys.Iput(ino)
		}
		fsys.Iput(dir)
	}
	return r
}

// readWhole reads a regular file to EOF, or to the byte limits.
func readWhole(fsys *FS, ino *Inode, p string, buf []byte, lim walkLimits, r *walkResult, cancel *atomic.Bool) {
	f, err := fsys.Open(ino, false)
	if err != nil {
		r.fail("Open", p, err)
		return
	}
	defer f.Close()
	var off int64
	for {
		if off >= lim.fileByte || r.bytes >= lim.bytes || cancel.Load() {
			return
		}
		n, err := f.ReadAt(buf, off)
		off += int64(n)
		r.bytes += int64(n)
		if err == io.EOF {
			if off < f.Size() {
				r.fail("ReadAt", p, fmt.Errorf("EOF at %d, before the file size %d", off, f.Size()))
			}
			return
		}
		if err != nil {
			r.fail("ReadAt", p, fmt.Errorf("offset %d: %w", off, err))
			return
		}
		if n < len(buf) {
			r.fail("ReadAt", p, fmt.Errorf("offset %d: short read of %d bytes without an error", off, n))
			return
		}
	}
}

// Classes of errors the filesystem may return for bad input.
const (
	classCorrupt     = "corrupt"
	classUnsupported = "unsupported"
	classIO          = "i/o"
	classStale       = "stale inode" // ESTALE: a name points at a deleted inode (ext2_iget)
	classOther       = "other"
)

// errClass sorts an error into one of the classes above.
func errClass(err error) string {
	switch {
	case errors.Is(err, ErrCorrupt):
		return classCorrupt
	case errors.Is(err, ErrUnsupported):
		return classUnsupported
	case errors.Is(err, block.ErrIO), errors.Is(err, block.ErrOutOfRange), errors.Is(err, syscall.EIO):
		return classIO
	case errors.Is(err, syscall.ESTALE):
		return classStale
	}
	return classOther
}

// contextRE matches the structure an error names.
var contextRE = regexp.MustCompile(`\b(inode|block|group|byte offset|byte|offset) \d+`)

// checkWalkError says what is wrong with an error returned for bad input
// of image name, or "" if nothing: it must be of a known class, and name
// the image or the structure (group, inode, block, offset); a corruption
// report must be a *CorruptError naming the image and a place.
func checkWalkError(err error, name string) string {
	msg := err.Error()
	switch errClass(err) {
	case classCorrupt:
		var ce *CorruptError
		if !errors.As(err, &ce) {
			return "wraps ErrCorrupt without a *CorruptError"
		}
		if ce.Device != name {
			return fmt.Sprintf("CorruptError.Device is %q, want %q", ce.Device, name)
		}
		if ce.Inode == 0 && ce.Group < 0 && ce.Block < 0 && ce.Offset < 0 {
			return "CorruptError names no group, inode, block or offset"
		}
		if ce.Reason == "" && ce.Err == nil {
			return "CorruptError gives no reason"
		}
		return ""
	case classOther:
		return "error is not ErrCorrupt, ErrUnsupported, an I/O error or ESTALE"
	}
	if !strings.Contains(msg, name) && !contextRE.MatchString(msg) {
		return "error names neither the image nor an inode, block, group or offset"
	}
	return ""
}

// unsupportedIncompat lists the image's incompat features this package
// refuses, by e2fsprogs name.
func unsupportedIncompat(im oracle.CorpusImage) []string {
	var all []string
	for bit := 0; bit < 32; bit++ {
		f := layout.IncompatFeature(1) << bit
		if f&supportedIncompat != 0 {
			continue
		}
		for _, n := range f.Names() {
			if im.HasFeature(n) {
				all = append(all, n)
			}
		}
	}
	return all
}

// syncLog collects Options.Logf lines from a goroutine that may outlive
// the test.
type syncLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *syncLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < 50 {
		l.lines = append(l.lines, fmt.Sprintf(format, args...))
	}
}

// withDeadline runs fn in a goroutine and waits at most d. A panic in fn
// is returned as its value and stack; on timeout cancel is set (fn
// should look at it and stop) and the stacks of the goroutines in this
// module are returned. fn must not touch t: it may still run when the
// test ends.
func withDeadline(d time.Duration, fn func(cancel *atomic.Bool)) (failure string) {
	done := make(chan string, 1)
	cancel := new(atomic.Bool)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Sprintf("panic: %v\n%s", v, debug.Stack())
			}
		}()
		fn(cancel)
		done <- ""
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case s := <-done:
		return s
	case <-timer.C:
		cancel.Store(true)
		return fmt.Sprintf("no result within %v; goroutines of this module:\n%s", d, moduleStacks())
	}
}

// moduleStacks returns the stacks of the goroutines running code of this
// module, other than test goroutines waiting for their turn or a result.
func moduleStacks() string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out strings.Builder
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "github.com/mpagefs/mpage/") ||
			strings.Contains(g, "testing.(*T).Parallel") || strings.Contains(g, "ext2.withDeadline(") ||
			strings.Contains(g, "testing.(*T).Run") {
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

// corpusStats is the summary of the corpus run.
type corpusStats struct {
	mu          sync.Mutex
	images      int
	mounted     int            // mounted read-only (primary or backup superblock)
	backup      int            // of which from the backup superblock at 8193
	refused     map[string]int // refused as unsupported, by feature (or reason)
	mountCorr   int            // mount failed with ErrCorrupt
	mountOther  map[string]int // mount failed otherwise, by class
	walkedClean int            // mounted and walked without an error
	walkErrs    map[string]int // walk errors by class
	imgWithErrs int            // mounted images with at least one walk error
	limited     map[string]int // walks cut short, by limit
	dirs        int
	files       int
	symlinks    int
	special     int
	bytes       int64
	rwTried     int
	rwOK        int // create-write-read-unlink-close went through
	rwFsck      int // clean before, e2fsck -fn checked after
	failures    []string
}

func (s *corpusStats) add(f func(s *corpusStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// TestCorpus mounts every image of the e2fsprogs corpus read-only and
// walks its whole tree, then, for images Linux's ext2 driver would mount
// read-write, creates, writes, reads back and removes a file and checks
// with e2fsck -fn that an image e2fsck called clean is still clean.
// Nothing may panic or run past the per-image deadline; every error must
// be of a known class and name the image or the structure; images with
// incompat features this package lacks must be refused at mount, naming
// the feature.
func TestCorpus(t *testing.T) {
	images := oracle.Corpus(t)
	st := &corpusStats{refused: map[string]int{}, mountOther: map[string]int{}, walkErrs: map[string]int{}, limited: map[string]int{}}
	start := time.Now()
	t.Run("images", func(t *testing.T) {
		for _, im := range images {
			t.Run(im.Name, func(t *testing.T) {
				t.Parallel()
				corpusImage(t, im, st)
			})
		}
	})
	st.images = len(images)
	t.Logf("corpus summary (%d images, %v):\n%s", len(images), time.Since(start).Round(time.Second), st.table())
}

// corpusDeadline is the time one image's mount, walk and unmount may take.
const corpusDeadline = 10 * time.Second

func corpusImage(t *testing.T, im oracle.CorpusImage, st *corpusStats) {
	path := im.Image(t)
	name := im.Name
	lim := corpusLimits()
	wantRefused := unsupportedIncompat(im)
	t0 := time.Now()

	var (
		mountErr error
		res      *walkResult
		backup   bool
		closeErr error
		log      syncLog
	)
	failure := withDeadline(corpusDeadline, func(cancel *atomic.Bool) {
		mount := func(at int64) (*FS, error) {
			dev, err := block.OpenFile(path, true)
			if err != nil {
				return nil, err
			}
			return Mount(dev, Options{ReadOnly: true, Name: name, SuperblockAt: at, Logf: log.logf})
		}
		fsys, err := mount(0)
		if err != nil && im.Class == "unreadable-sb" {
			// e2fsprogs' own tests mount these from the first backup.
			if f2, err2 := mount(8193); err2 == nil {
				fsys, err, backup = f2, nil, true
			}
		}
		if err != nil {
			mountErr = err
			return
		}
		res = walkTree(fsys, lim, cancel)
		closeErr = fsys.Close()
	})
	if failure != "" {
		t.Errorf("image %s: read-only mount and walk: %s", name, failure)
		st.add(func(s *corpusStats) { s.failures = append(s.failures, name+": "+firstLine(failure)) })
		return
	}

	if mountErr != nil {
		checkMountError(t, im, mountErr, wantRefused, st)
		return
	}
	if len(wantRefused) > 0 {
		t.Errorf("image %s has incompat features %v but mounted", name, wantRefused)
	}
	if closeErr != nil {
		t.Errorf("image %s: Close of a read-only mount: %v", name, closeErr)
	}
	byClass := map[string]int{}
	for _, e := range res.errs {
		c := errClass(e.err)
		byClass[c]++
		if bad := checkWalkError(e.err, name); bad != "" {
			t.Errorf("image %s: %s: %s", name, e, bad)
		}
	}
	for i, e := range res.errs {
		if i == 5 {
			t.Logf("... and %d more errors", len(res.errs)-5)
			break
		}
		t.Logf("walk error: %s", e)
	}
	if im.FsckClean() && im.Class != "unreadable-sb" {
		for _, e := range res.errs {
			t.Errorf("image %s is clean by e2fsck -fn, but the walk failed: %s", name, e)
		}
	}
	t.Logf("mounted%s in %v: %d dirs, %d files, %d symlinks, %d special, %d bytes read, %d errors%s",
		map[bool]string{true: " from the backup superblock"}[backup], time.Since(t0).Round(time.Millisecond),
		res.dirs, res.files, res.symlinks, res.special, res.bytes, len(res.errs),
		map[bool]string{true: ", cut short by the " + res.limited + " limit"}[res.limited != ""])
	st.add(func(s *corpusStats) {
		s.mounted++
		if backup {
			s.backup++
		}
		if len(res.errs) == 0 {
			s.walkedClean++
		} else {
			s.imgWithErrs++
		}
		for c, n := range byClass {
			s.walkErrs[c] += n
		}
		if res.limited != "" {
			s.limited[res.limited]++
		}
		s.dirs += res.dirs
		s.files += res.files
		s.symlinks += res.symlinks
		s.special += res.special
		s.bytes += res.bytes
	})
	if im.LinuxExt2Driver == "rw" && !backup {
		corpusReadWrite(t, im, path, st)
	}
}

// checkMountError checks a failed read-only mount of image im.
func checkMountError(t *testing.T, im oracle.CorpusImage, err error, wantRefused []string, st *corpusStats) {
	name := im.Name
	class := errClass(err)
	t.Logf("mount refused (%s): %v", class, err)
	if class == classUnsupported {
		msg := err.Error()
		named := ""
		for _, f := range wantRefused {
			if strings.Contains(msg, f) {
				named = f
				break
			}
		}
		if named == "" {
			switch {
			case len(wantRefused) > 0:
				t.Errorf("image %s: mount error %q names none of the image's unsupported features %v", name, msg, wantRefused)
				named = "?"
			case strings.Contains(msg, "block size"):
				named = fmt.Sprintf("block size %d", im.BlockSize)
			default:
				t.Errorf("image %s: refused as unsupported without naming an unsupported feature: %v", name, err)
				named = "?"
			}
		}
		st.add(func(s *corpusStats) { s.refused[named]++ })
		return
	}
	if len(wantRefused) > 0 && class != classCorrupt {
		t.Errorf("image %s has incompat features %v: mount error %v, want ErrUnsupported naming them", name, wantRefused, err)
	}
	if bad := checkWalkError(err, name); bad != "" {
		t.Errorf("image %s: Mount: %v: %s", name, err, bad)
	}
	if im.FsckClean() && im.Class != "unreadable-sb" && len(wantRefused) == 0 {
		t.Errorf("image %s is clean by e2fsck -fn and has no unsupported incompat feature, but Mount failed: %v", name, err)
	}
	st.add(func(s *corpusStats) {
		if class == classCorrupt {
			s.mountCorr++
		} else {
			s.mountOther[class]++
		}
	})
}

// corpusReadWrite mounts image im read-write, creates, writes, reads back
// and removes a file in the root, unmounts, and for an image e2fsck
// called clean checks that it still is. On corrupt images the operations
// may fail (with errors of the known classes), but must not panic or hang.
func corpusReadWrite(t *testing.T, im oracle.CorpusImage, path string, st *corpusStats) {
	name := im.Name
	var (
		mountErr error
		errs     []walkError
		done     bool
		log      syncLog
	)
	data := pattern(uint64(len(name)), 10000)
	t0 := time.Now()
	failure := withDeadline(corpusDeadline, func(*atomic.Bool) {
		dev, err := block.OpenFile(path, false)
		if err != nil {
			mountErr = err
			return
		}
		fsys, err := Mount(dev, Options{Name: name, Logf: log.logf})
		if err != nil {
			mountErr = err
			return
		}
		fail := func(op string, err error) { errs = append(errs, walkError{op, "/corpus-probe", err}) }
		done = func() bool {
			root, err := fsys.Root()
			if err != nil {
				fail("Root", err)
				return false
			}
			defer fsys.Iput(root)
			ino, err := fsys.Create(root, "corpus-probe", 0o644, 0, 0)
			if err != nil {
				fail("Create", err)
				return false
			}
			f, err := fsys.Open(ino, true)
			fsys.Iput(ino)
			if err != nil {
				fail("Open", err)
				return false
			}
			ok := true
			if _, err := f.WriteAt(data, 0); err != nil {
				fail("WriteAt", err)
				ok = false
			} else if err := f.Sync(); err != nil {
				fail("Sync", err)
				ok = false
			} else {
				got := make([]byte, len(data)+1)
				n, err := f.ReadAt(got, 0)
				if err != io.EOF || n != len(data) || string(got[:n]) != string(data) {
					fail("ReadAt", fmt.Errorf("read back %d bytes, %v; want the %d bytes written and EOF", n, err, len(data)))
					ok = false
				}
			}
			if err := f.Close(); err != nil {
				fail("Close file", err)
				ok = false
			}
			if err := fsys.Unlink(root, "corpus-probe"); err != nil {
				fail("Unlink", err)
				ok = false
			}
			return ok
		}()
		if err := fsys.Close(); err != nil {
			fail("Close", err)
			done = false
		}
	})
	st.add(func(s *corpusStats) { s.rwTried++ })
	if failure != "" {
		t.Errorf("image %s: read-write probe: %s", name, failure)
		st.add(func(s *corpusStats) { s.failures = append(s.failures, name+" (rw): "+firstLine(failure)) })
		return
	}
	if mountErr != nil {
		t.Logf("read-write mount refused: %v", mountErr)
		if bad := checkWalkError(mountErr, name); bad != "" {
			t.Errorf("image %s: read-write Mount: %v: %s", name, mountErr, bad)
		}
		if im.FsckClean() && im.BlockSize <= maxBlockSize {
			t.Errorf("image %s is clean by e2fsck -fn, but the read-write mount failed: %v", name, mountErr)
		}
		return
	}
	for _, e := range errs {
		t.Logf("read-write probe: %s", e)
		if errors.Is(e.err, ErrReadOnly) || errors.Is(e.err, ErrNoSpace) {
			continue // remounted read-only after finding an error, or full
		}
		if bad := checkWalkError(e.err, name); bad != "" {
			t.Errorf("image %s: read-write probe: %s: %s", name, e, bad)
		}
	}
	t.Logf("read-write probe done in %v, succeeded: %v", time.Since(t0).Round(time.Millisecond), done)
	if done {
		st.add(func(s *corpusStats) { s.rwOK++ })
	}
	if !im.FsckClean() {
		return
	}
	if !done && !slices.ContainsFunc(errs, func(e walkError) bool { return errors.Is(e.err, ErrNoSpace) }) {
		t.Errorf("image %s is clean by e2fsck -fn, but create-write-unlink failed: %v", name, errs)
	}
	res := oracle.FsckRun(t, path)
	if res.Code != 0 {
		t.Errorf("image %s was clean; after create-write-unlink-close e2fsck -fn exits %d (timed out: %v):\n%s", name, res.Code, res.TimedOut, res.Output)
	}
	st.add(func(s *corpusStats) { s.rwFsck++ })
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// table formats the summary.
func (s *corpusStats) table() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "  %-44s %v\n", k, v) }
	row("images", s.images)
	row("mounted read-only", s.mounted)
	row("  of which from the backup superblock", s.backup)
	row("  walked without an error", s.walkedClean)
	row("  with walk errors", s.imgWithErrs)
	for _, k := range sortedKeys(s.walkErrs) {
		row("    walk errors: "+k, s.walkErrs[k])
	}
	for _, k := range sortedKeys(s.limited) {
		row("    walks cut short by the limit on "+k, s.limited[k])
	}
	row("  directories / files / symlinks / special", fmt.Sprintf("%d / %d / %d / %d", s.dirs, s.files, s.symlinks, s.special))
	row("  file bytes read", s.bytes)
	n := 0
	for _, v := range s.refused {
		n += v
	}
	row("refused as unsupported", n)
	for _, k := range sortedKeys(s.refused) {
		row("  naming "+k, s.refused[k])
	}
	row("refused as corrupt", s.mountCorr)
	for _, k := range sortedKeys(s.mountOther) {
		row("refused, other: "+k, s.mountOther[k])
	}
	row("read-write probes tried", s.rwTried)
	row("  create-write-unlink-close succeeded", s.rwOK)
	row("  e2fsck -fn checked after (clean before)", s.rwFsck)
	row("panics or hangs", len(s.failures))
	for _, f := range s.failures {
		fmt.Fprintf(&b, "    %s\n", f)
	}
	return b.String()
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
