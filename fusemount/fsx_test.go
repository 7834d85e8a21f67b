package fusemount

// fsx through the mount: the randomized file exerciser of the Linux Test
// Project and xfstests (as ext2fs/fsx_test.go runs it over the Go API),
// here driving real system calls on files of a FUSE mount, so that the
// kernel's page cache of each file (kept across opens: FOPEN_KEEP_CACHE),
// our page cache behind it and the image must agree at every read.
//
// Three files of up to fsxMaxSize bytes each, more than the mount's
// page cache (16, 6 or 2 MiB by seed), take random pwrites (past the
// end too, leaving holes), appends through O_APPEND, preads, ftruncates
// up and down, truncates by path, close and reopen (with O_TRUNC
// sometimes), O_DIRECT reads and writes through a descriptor of their
// own, copy_file_range within a file and between two, fsync, stat and
// fstat, SEEK_DATA and SEEK_HOLE, reads of the whole file through a new
// descriptor, stores through a shared mapping in a child process (which
// also stores junk past the end of file), and now and then an unmount,
// e2fsck -fn and a mount again. Every read is checked against a model
// of each file's bytes and size, and a changed range is often read just
// before the change (so that the kernel has its pages cached) and just
// after. At the end the image must be clean (e2fsck -fn) and hold the
// model's bytes as ext2fs reads them. TestFsxThroughMountConcurrent
// runs workers of the same on files of their own on one mount at once.
//
// Each byte written tells where it comes from (fsxFill): a wrong byte is
// reported with the step, file and offset that wrote it and those that
// should have, and the last fsxLogLen operations are printed with the
// command that replays the run up to the failure.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/ext2fs"
	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

const (
	fsxFiles   = 3
	fsxMaxSize = 8 << 20   // no write or truncate goes past this offset
	fsxMaxIO   = 256 << 10 // the longest read, write or copy mostly
	// One in fsxLargeOneIn is up to fsxLargeIO long: several of our
	// 1 MiB READs and WRITEs, and of copyRange's chunks.
	fsxLargeIO    = 3 << 20
	fsxLargeOneIn = 12
	fsxAlign      = 4096 // O_DIRECT offsets and lengths
	fsxLogLen     = 30   // operations printed on a failure
)

// fsxFile is one file under test: its model and its open descriptors.
type fsxFile struct {
	idx   int // in fsxState.files
	tag   int // what fsxFill writes into its bytes, in its name "f<tag>"
	name  string
	model []byte   // the file's bytes; its length is the file's size
	rw    *os.File // O_RDWR, reopened by the reopen operation
	rd    *os.File // O_RDONLY, open across rw's reopenings
	dio   *os.File // O_RDWR|O_DIRECT
}

// fsxState is one seed's run.
type fsxState struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	image string
	bs    int64 // the filesystem's block size
	m     *mounted
	files [fsxFiles]*fsxFile
	step  int
	log   []string
	dbuf  []byte // aligned, for O_DIRECT
	stats map[string]int

	mapper *fsxMapper // the child process of mmapStore, once started
	shared bool       // the mount is shared with other workers: no remounts
	cache  int64      // our page cache's limit, bytes

	evicted   int64 // pages our page cache evicted, over earlier mounts
	peakTotal int   // the most bytes the files held at once
}

// fsxEnv reads a positive integer from the environment, or def.
func fsxEnv(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// TestFsxThroughMount runs fsx on files of a FUSE mount, one subtest per
// seed; even seeds use 1 KiB blocks, odd ones 4 KiB, and the page
// cache is one of three sizes (fsxCache), all smaller than the files.
// By default 2 seeds of 600 operations under -race (about 13 s on 2
// cores) and 3 of 3,000 without (10 s), 1 of 300 with -short;
// MPAGE_FSX_SEEDS, MPAGE_FSX_OPS and MPAGE_FSX_SEED (the first seed)
// change that.
func TestFsxThroughMount(t *testing.T) {
	requireFuse(t)
	seeds, ops := 2, 600
	if !oracle.RaceEnabled {
		seeds, ops = 3, 3000
	}
	if testing.Short() {
		seeds, ops = 1, 300
	}
	seeds = fsxEnv(t, "MPAGE_FSX_SEEDS", seeds)
	ops = fsxEnv(t, "MPAGE_FSX_OPS", ops)
	first := fsxEnv(t, "MPAGE_FSX_SEED", 0)
	for seed := first; seed < first+seeds; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			fsxRun(t, uint64(seed), ops)
		})
	}
}

// newFsxState returns the state of worker w (0 for a run alone) of
// seed, on image.
func newFsxState(t *testing.T, seed uint64, w int, image string, bs int) *fsxState {
	s := &fsxState{
		t:     t,
		seed:  seed,
		rng:   rand.New(rand.NewPCG(seed, 0x66737820+uint64(w))),
		image: image,
		bs:    int64(bs),
		dbuf:  alignedBlock(fsxLargeIO),
		stats: map[string]int{},
		cache: fsxCache(seed),
	}
	for i := range s.files {
		tag := w*fsxFiles + i
		s.files[i] = &fsxFile{idx: i, tag: tag, name: fmt.Sprintf("f%d", tag)}
	}
	return s
}

// fsxBlockSize is the block size of seed's image.
func fsxBlockSize(seed uint64) int {
	if seed%2 == 1 {
		return 4096
	}
	return 1024
}

// fsxCache is the limit of seed's page cache: 16 MiB (mountTB's), 2 MiB
// or 6 MiB, less than the files hold together, so that pages are
// evicted and written back while the kernel holds copies of them.
func fsxCache(seed uint64) int64 {
	return []int64{16 << 20, 2 << 20, 6 << 20}[seed%3]
}

// fsxRun runs ops operations of seed on a new image.
func fsxRun(t *testing.T, seed uint64, ops int) {
	bs := fsxBlockSize(seed)
	s := newFsxState(t, seed, 0, fsxImage(t, bs, 64<<20), bs)
	s.mount()
	s.openAll(os.O_CREATE | os.O_EXCL)
	start := time.Now()
	s.run(ops)
	s.unmount()
	t.Logf("seed %d, %d-byte blocks, %d MiB cache: %d operations in %v (files of %d bytes at most together, %d pages evicted from our cache): %v",
		seed, bs, s.cache>>20, ops, time.Since(start).Round(time.Millisecond), s.peakTotal, s.evicted, s.stats)
	fsxCheckImage(t, s.image, s)
}

// run runs ops operations.
func (s *fsxState) run(ops int) {
	for s.step = 0; s.step < ops; s.step++ {
		s.op()
		total := 0
		for _, f := range s.files {
			total += len(f.model)
		}
		s.peakTotal = max(s.peakTotal, total)
	}
	s.step = ops
}

// fsxCheckImage checks image, unmounted, with e2fsck -fn, and the files
// of states as ext2fs reads them against their models.
func fsxCheckImage(t *testing.T, image string, states ...*fsxState) {
	t.Helper()
	oracle.RequireClean(t, image)
	fsys, err := ext2fs.Open(image, ext2fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("ext2fs.Open(%s) read-only: %v", image, err)
	}
	defer fsys.Close()
	for _, s := range states {
		for _, f := range s.files {
			got, err := fsys.ReadFile(f.name)
			if err != nil {
				s.fatalf("reading %s from the image with ext2fs: %v", f.name, err)
			}
			s.compare(f, "the image (ext2fs)", got, 0, f.model)
		}
	}
}

// TestFsxThroughMountConcurrent runs fsx workers at once on one mount,
// each on three files of its own, so that our page cache, its LRU and
// writeback, the block allocator and the FUSE server serve them
// interleaved; no worker remounts. By default 1 seed of 3 workers of
// 300 operations under -race (about 8 s on 2 cores) and 2 of 3 of 3,000
// without (15 s), 1 of 2 of 200 with -short; MPAGE_FSX_CONCURRENT_SEEDS,
// MPAGE_FSX_CONCURRENT_OPS, MPAGE_FSX_WORKERS and MPAGE_FSX_SEED change
// that.
func TestFsxThroughMountConcurrent(t *testing.T) {
	requireFuse(t)
	seeds, workers, ops := 1, 3, 300
	if !oracle.RaceEnabled {
		seeds, ops = 2, 3000
	}
	if testing.Short() {
		seeds, workers, ops = 1, 2, 200
	}
	seeds = fsxEnv(t, "MPAGE_FSX_CONCURRENT_SEEDS", seeds)
	ops = fsxEnv(t, "MPAGE_FSX_CONCURRENT_OPS", ops)
	workers = min(fsxEnv(t, "MPAGE_FSX_WORKERS", workers), 16/fsxFiles)
	first := fsxEnv(t, "MPAGE_FSX_SEED", 0)
	for seed := first; seed < first+seeds; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			fsxRunConcurrent(t, uint64(seed), workers, ops)
		})
	}
}

// fsxRunConcurrent runs workers of ops operations each, in parallel
// subtests, on one mount of a new image.
func fsxRunConcurrent(t *testing.T, seed uint64, workers, ops int) {
	bs := fsxBlockSize(seed)
	image := fsxImage(t, bs, int64(workers)*fsxFiles*fsxMaxSize*3/2+16<<20)
	m := mountCache(t, image, Options{}, fsxCache(seed))
	states := make([]*fsxState, workers)
	start := time.Now()
	t.Run("workers", func(t *testing.T) {
		for w := range workers {
			s := newFsxState(t, seed, w, image, bs)
			s.m, s.shared = m, true
			states[w] = s
			t.Run(fmt.Sprintf("worker%d", w), func(t *testing.T) {
				t.Parallel()
				s.t = t
				t.Cleanup(s.closeQuietly)
				s.openAll(os.O_CREATE | os.O_EXCL)
				s.run(ops)
				s.closeAll()
			})
		}
	})
	if t.Failed() {
		return
	}
	evicted := m.fsys.Stats().PageCache.Evicted
	m.unmount(t)
	t.Logf("seed %d, %d-byte blocks, %d MiB cache: %d workers of %d operations in %v (%d pages evicted from our cache)",
		seed, bs, fsxCache(seed)>>20, workers, ops, time.Since(start).Round(time.Millisecond), evicted)
	for w, s := range states {
		s.t = t
		t.Logf("worker %d: files of %d bytes at most together: %v", w, s.peakTotal, s.stats)
	}
	fsxCheckImage(t, image, states...)
}

// fsxImage makes an empty ext2 image of size bytes with blocks of bs
// bytes, in /dev/shm when there is one: fsync and unmount flush the
// image file, which on a disk costs more than the rest of the test.
func fsxImage(t *testing.T, bs int, size int64) string {
	dir, err := os.MkdirTemp("/dev/shm", "fusemount-fsx-")
	if err != nil {
		dir = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	image := filepath.Join(dir, "fsx.img")
	oracle.MkfsImageAt(t, image, oracle.MkfsOptions{SizeBytes: size, BlockSize: bs})
	return image
}

// logf adds an operation to the log of the last fsxLogLen.
func (s *fsxState) logf(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf("step %d: ", s.step)+fmt.Sprintf(format, args...))
	if len(s.log) > fsxLogLen {
		s.log = s.log[1:]
	}
}

// fatalf prints the log, the models' sizes and how to replay the run,
// and fails the test.
func (s *fsxState) fatalf(format string, args ...any) {
	s.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "fsx seed %d, the last %d operations:\n", s.seed, len(s.log))
	for _, l := range s.log {
		b.WriteString("\t" + l + "\n")
	}
	for _, f := range s.files {
		fmt.Fprintf(&b, "\t%s: size %d in the model\n", f.name, len(f.model))
	}
	if s.shared {
		fmt.Fprintf(&b, "replay (worker %d's operations; not how they interleaved with the other workers'): MPAGE_FSX_SEED=%d MPAGE_FSX_CONCURRENT_SEEDS=1 MPAGE_FSX_CONCURRENT_OPS=%d go test -run 'FsxThroughMountConcurrent$' ./fusemount/",
			s.files[0].tag/fsxFiles, s.seed, s.step+1)
	} else {
		fmt.Fprintf(&b, "replay: MPAGE_FSX_SEED=%d MPAGE_FSX_SEEDS=1 MPAGE_FSX_OPS=%d go test -run 'FsxThroughMount$' ./fusemount/", s.seed, s.step+1)
	}
	s.t.Log(b.String())
	s.t.Fatalf("fsx seed %d step %d: "+format, append([]any{s.seed, s.step}, args...)...)
}

// fsxFill returns the n bytes step writes at off of file idx. Each
// 8-byte word at an offset multiple of 8 encodes the step, the file and
// the word's offset, 7 bits a byte with the top bit set, so that no byte
// is zero (holes show) and a wrong byte says where it came from
// (fsxOrigin).
func fsxFill(step, idx int, off int64, n int) []byte {
	b := make([]byte, n)
	var w uint64
	for i := range b {
		p := off + int64(i)
		if i == 0 || p&7 == 0 {
			w = fsxWord(step, idx, p)
		}
		b[i] = 0x80 | byte(w>>(7*(p&7)))&0x7f
	}
	return b
}

// fsxWord is the 56-bit word fsxFill writes at p&^7: step, file and
// word offset in the low 48 bits, 8 check bits above.
func fsxWord(step, idx int, p int64) uint64 {
	w := uint64(step)&(1<<22-1) | uint64(idx&15)<<22 | uint64(p>>3)&(1<<22-1)<<26
	return w | (w*0x9e3779b97f4a7c15>>8)&(0xff<<48)
}

// fsxOrigin says what wrote the byte at offset p of data (which
// starts at offset off): "zero (a hole)", "written by step S to fN at O"
// when 8 bytes around it decode as a word of fsxFill (copies move words
// to any alignment, so each window holding p is tried), or its bytes.
func fsxOrigin(data []byte, off, p int64) string {
	i := p - off
	switch data[i] {
	case 0:
		return "zero (a hole)"
	case fsxJunk:
		return "junk (what a mapping stores past the end of file)"
	}
	for start := max(i-7, 0); start <= i && start+8 <= int64(len(data)); start++ {
		var w uint64
		for j, c := range data[start : start+8] {
			w |= uint64(c&0x7f) << (7 * j)
		}
		step, idx, wo := w&(1<<22-1), w>>22&15, int64(w>>26&(1<<22-1))<<3
		if bytes.Equal(data[start:start+8], fsxFill(int(step), int(idx), wo, 8)) {
			return fmt.Sprintf("written by step %d to f%d at %d", step, idx, wo+i-start)
		}
	}
	return fmt.Sprintf("bytes %x", data[max(i-7, 0):min(i+8, int64(len(data)))])
}

// compare fails when got, read from what at off of f, differs from want.
func (s *fsxState) compare(f *fsxFile, what string, got []byte, off int64, want []byte) {
	s.t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	if len(got) != len(want) && bytes.Equal(got[:min(len(got), len(want))], want[:min(len(got), len(want))]) {
		s.fatalf("%s: %s at %d: got %d bytes, want %d", f.name, what, off, len(got), len(want))
	}
	i := firstDiff(got, want)
	p := off + int64(i)
	last := i
	for last < min(len(got), len(want)) && got[last] != want[last] {
		last++
	}
	s.fatalf("%s: %s of %d bytes at %d: got %d bytes; first difference at offset %d (%d bytes differ from there on): got %#x, %s; want %#x, %s",
		f.name, what, len(want), off, len(got), p, last-i, got[i], fsxOrigin(got, off, p), want[i], fsxOrigin(want, off, p))
}

// setSize makes f's model n bytes long, zeroes past the old end.
func (f *fsxFile) setSize(n int64) {
	old := int64(len(f.model))
	switch {
	case n <= old:
		f.model = f.model[:n]
	case n <= int64(cap(f.model)):
		f.model = f.model[:n]
		clear(f.model[old:])
	default:
		m := make([]byte, n, max(n, fsxMaxSize))
		copy(m, f.model)
		f.model = m
	}
}

// store puts b at off of f's model, growing it.
func (f *fsxFile) store(off int64, b []byte) {
	if end := off + int64(len(b)); end > int64(len(f.model)) {
		f.setSize(end)
	}
	copy(f.model[off:], b)
}

// open opens f with flags, failing the test on an error.
func (s *fsxState) open(f *fsxFile, flags int) *os.File {
	s.t.Helper()
	h, err := os.OpenFile(s.m.path(f.name), flags, 0o644)
	if err != nil {
		s.fatalf("open %s (flags %#x): %v", f.name, flags, err)
	}
	return h
}

// openAll opens every file's three descriptors, rw with extra flags.
func (s *fsxState) openAll(extra int) {
	for _, f := range s.files {
		f.rw = s.open(f, os.O_RDWR|extra)
		f.rd = s.open(f, os.O_RDONLY)
		f.dio = s.open(f, os.O_RDWR|syscall.O_DIRECT)
	}
}

// closeAll closes every descriptor, failing the test on an error.
func (s *fsxState) closeAll() {
	for _, f := range s.files {
		for _, h := range []**os.File{&f.rw, &f.rd, &f.dio} {
			if *h == nil {
				continue
			}
			err := (*h).Close()
			*h = nil
			if err != nil {
				s.fatalf("close %s: %v", f.name, err)
			}
		}
	}
}

// unmount closes every descriptor and unmounts.
func (s *fsxState) unmount() {
	s.closeAll()
	s.evicted += s.m.fsys.Stats().PageCache.Evicted
	s.m.unmount(s.t)
}

// mount mounts the image, and closes the descriptors left open by a
// failure before the mount is undone (the mount's cleanup could not
// unmount a busy mount).
func (s *fsxState) mount() {
	s.m = mountCache(s.t, s.image, Options{}, s.cache)
	s.t.Cleanup(s.closeQuietly)
}

// closeQuietly closes the descriptors still open, after a failure.
func (s *fsxState) closeQuietly() {
	for _, f := range s.files {
		for _, h := range []**os.File{&f.rw, &f.rd, &f.dio} {
			if *h != nil {
				(*h).Close()
				*h = nil
			}
		}
	}
}

// offLen picks an offset and a length for f: near its end a third of
// the time, anywhere below fsxMaxSize otherwise (length).
func (s *fsxState) offLen(f *fsxFile) (int64, int) {
	size := int64(len(f.model))
	var off int64
	if s.rng.IntN(3) == 0 {
		off = min(max(0, size+s.rng.Int64N(6*4096)-3*4096), fsxMaxSize-1)
	} else {
		off = s.rng.Int64N(fsxMaxSize)
	}
	return off, s.length()
}

// length picks a length: up to 8 KiB a quarter of the time, up to
// fsxLargeIO one time in fsxLargeOneIn, up to fsxMaxIO otherwise.
func (s *fsxState) length() int {
	switch {
	case s.rng.IntN(4) == 0:
		return 1 + s.rng.IntN(8192)
	case s.rng.IntN(fsxLargeOneIn) == 0:
		return 1 + s.rng.IntN(fsxLargeIO)
	}
	return 1 + s.rng.IntN(fsxMaxIO)
}

// expect is how many bytes a read of n at off of f returns.
func (f *fsxFile) expect(off int64, n int) int {
	if off >= int64(len(f.model)) {
		return 0
	}
	return int(min(int64(n), int64(len(f.model))-off))
}

// file picks a file.
func (s *fsxState) file() *fsxFile { return s.files[s.rng.IntN(fsxFiles)] }

// op runs one random operation.
func (s *fsxState) op() {
	f := s.file()
	switch k := s.rng.IntN(1000); {
	case k < 250:
		s.pread(f)
	case k < 420:
		s.pwrite(f)
	case k < 450:
		s.appendWrite(f)
	case k < 520:
		s.truncate(f)
	case k < 580:
		s.directRead(f)
	case k < 640:
		s.directWrite(f)
	case k < 710:
		s.copyWithin(f)
	case k < 780:
		s.copyBetween(f)
	case k < 820:
		s.stats["fsync"]++
		s.logf("%s: fsync", f.name)
		h := f.rw
		if s.rng.IntN(4) == 0 {
			h = f.dio
		}
		if err := h.Sync(); err != nil {
			s.fatalf("%s: fsync: %v", f.name, err)
		}
	case k < 845:
		s.stat(f)
	case k < 860:
		s.seekDataHole(f)
	case k < 920:
		s.reopen(f)
	case k < 970:
		s.readWhole(f, "a read of the whole file through a new descriptor")
	case k < 993:
		s.mmapStore(f)
	default:
		if s.shared {
			s.reopenAll()
		} else {
			s.remount()
		}
	}
}

// pread reads a random range of f through a buffered descriptor.
func (s *fsxState) pread(f *fsxFile) {
	off, n := s.offLen(f)
	s.stats["pread"]++
	s.readCheck(f, off, n, "pread")
}

// readCheck preads n bytes at off of f through its rw or rd descriptor
// and checks them against the model.
func (s *fsxState) readCheck(f *fsxFile, off int64, n int, what string) {
	h, which := f.rw, "rw"
	if s.rng.IntN(2) == 0 {
		h, which = f.rd, "rd"
	}
	s.logf("%s: %s %d at %d through %s (size %d)", f.name, what, n, off, which, len(f.model))
	got := make([]byte, n)
	m, err := h.ReadAt(got, off)
	want := f.expect(off, n)
	if m != want || (m < n && err != io.EOF) || (m == n && err != nil) {
		s.fatalf("%s: %s %d at %d: %d bytes, %v; want %d bytes (size %d)", f.name, what, n, off, m, err, want, len(f.model))
	}
	start := min(off, int64(len(f.model)))
	s.compare(f, what+" through "+which, got[:m], off, f.model[start:start+int64(want)])
}

// readAround reads [off, off+n) of f and a page each side, one time in
// oneIn: before a change, so that the kernel has the pages cached when
// it changes (a stale page would then be read later), and after it.
func (s *fsxState) readAround(f *fsxFile, off int64, n int, what string, oneIn int) {
	if s.rng.IntN(oneIn) != 0 {
		return
	}
	lo := max(0, off-4096)
	s.readCheck(f, lo, int(off+int64(n)+4096-lo), what)
}

// pwrite writes a random range of f through its rw descriptor.
func (s *fsxState) pwrite(f *fsxFile) {
	off, n := s.offLen(f)
	n = int(min(int64(n), fsxMaxSize-off))
	s.stats["pwrite"]++
	s.logf("%s: pwrite %d at %d (size %d)", f.name, n, off, len(f.model))
	s.readAround(f, off, n, "read before the pwrite", 3)
	b := fsxFill(s.step, f.tag, off, n)
	if m, err := f.rw.WriteAt(b, off); m != n || err != nil {
		s.fatalf("%s: pwrite %d at %d: %d, %v", f.name, n, off, m, err)
	}
	f.store(off, b)
	s.readAround(f, off, n, "read after the pwrite", 2)
}

// appendWrite writes at the end of f through a new O_APPEND descriptor.
func (s *fsxState) appendWrite(f *fsxFile) {
	off := int64(len(f.model))
	n := int(min(int64(s.length()), fsxMaxSize-off))
	if n <= 0 {
		return
	}
	s.stats["append"]++
	s.logf("%s: append %d through a new O_APPEND descriptor (size %d)", f.name, n, off)
	s.readAround(f, off, 0, "read before the append", 3)
	h := s.open(f, os.O_WRONLY|os.O_APPEND)
	b := fsxFill(s.step, f.tag, off, n)
	if m, err := h.Write(b); m != n || err != nil {
		h.Close()
		s.fatalf("%s: append %d at the end (%d): %d, %v", f.name, n, off, m, err)
	}
	if err := h.Close(); err != nil {
		s.fatalf("%s: close after the append: %v", f.name, err)
	}
	f.store(off, b)
	s.readAround(f, off, n, "read after the append", 2)
}

// truncate sets f's size, down or up, with ftruncate or truncate by
// path.
func (s *fsxState) truncate(f *fsxFile) {
	var size int64
	if s.rng.IntN(2) == 0 {
		size = s.rng.Int64N(int64(len(f.model)) + 1)
	} else {
		size = s.rng.Int64N(fsxMaxSize + 1)
	}
	s.stats["truncate"]++
	s.readAround(f, size, 1, "read before the truncate", 3)
	if s.rng.IntN(4) == 0 {
		s.logf("%s: truncate by path %d -> %d", f.name, len(f.model), size)
		if err := os.Truncate(s.m.path(f.name), size); err != nil {
			s.fatalf("%s: truncate(%d): %v", f.name, size, err)
		}
	} else {
		s.logf("%s: ftruncate %d -> %d", f.name, len(f.model), size)
		if err := f.rw.Truncate(size); err != nil {
			s.fatalf("%s: ftruncate(%d): %v", f.name, size, err)
		}
	}
	f.setSize(size)
	s.readAround(f, size, 1, "read after the truncate", 2)
}

// alignedOffLen picks an O_DIRECT offset and length, multiples of
// fsxAlign, near f's end a third of the time.
func (s *fsxState) alignedOffLen(f *fsxFile) (int64, int) {
	off, n := s.offLen(f)
	off &^= fsxAlign - 1
	n = max(fsxAlign, n&^(fsxAlign-1))
	n = int(min(int64(n), fsxMaxSize-off))
	return off, n
}

// directRead reads an aligned range of f through its O_DIRECT
// descriptor, from our page cache past the kernel's.
func (s *fsxState) directRead(f *fsxFile) {
	off, n := s.alignedOffLen(f)
	s.stats["direct read"]++
	s.logf("%s: O_DIRECT pread %d at %d (size %d)", f.name, n, off, len(f.model))
	buf := s.dbuf[:n]
	m, err := unix.Pread(int(f.dio.Fd()), buf, off)
	if want := f.expect(off, n); err != nil || m != want {
		s.fatalf("%s: O_DIRECT pread %d at %d: %d, %v; want %d bytes (size %d)", f.name, n, off, m, err, want, len(f.model))
	}
	start := min(off, int64(len(f.model)))
	s.compare(f, "O_DIRECT pread", buf[:m], off, f.model[start:start+int64(m)])
}

// directWrite writes an aligned range of f through its O_DIRECT
// descriptor; the kernel drops its cached pages of the range.
func (s *fsxState) directWrite(f *fsxFile) {
	off, n := s.alignedOffLen(f)
	s.stats["direct write"]++
	s.logf("%s: O_DIRECT pwrite %d at %d (size %d)", f.name, n, off, len(f.model))
	s.readAround(f, off, n, "read before the O_DIRECT pwrite", 3)
	b := fsxFill(s.step, f.tag, off, n)
	buf := s.dbuf[:n]
	copy(buf, b)
	if m, err := unix.Pwrite(int(f.dio.Fd()), buf, off); err != nil || m != n {
		s.fatalf("%s: O_DIRECT pwrite %d at %d: %d, %v", f.name, n, off, m, err)
	}
	f.store(off, b)
	s.readAround(f, off, n, "read after the O_DIRECT pwrite", 2)
}

// copyRange copies n bytes at offIn of src to offOut of dst with
// copy_file_range(2) and checks the count against the model, which it
// updates.
func (s *fsxState) copyRange(src *fsxFile, offIn int64, dst *fsxFile, offOut int64, n int) {
	h, which := src.rw, "rw"
	if s.rng.IntN(2) == 0 {
		h, which = src.rd, "rd"
	}
	s.logf("copy_file_range %d from %s at %d (size %d, through %s) to %s at %d (size %d)",
		n, src.name, offIn, len(src.model), which, dst.name, offOut, len(dst.model))
	s.readAround(dst, offOut, n, "read before the copy", 3)
	want := src.expect(offIn, n)
	in, out := offIn, offOut
	m, err := unix.CopyFileRange(int(h.Fd()), &in, int(dst.rw.Fd()), &out, n, 0)
	if err != nil || m != want {
		s.fatalf("copy_file_range %d from %s at %d to %s at %d: %d, %v; want %d (source size %d)",
			n, src.name, offIn, dst.name, offOut, m, err, want, len(src.model))
	}
	if in != offIn+int64(m) || out != offOut+int64(m) {
		s.fatalf("copy_file_range of %d: offsets moved to %d and %d, want %d and %d", m, in, out, offIn+int64(m), offOut+int64(m))
	}
	if m > 0 {
		dst.store(offOut, bytes.Clone(src.model[offIn:offIn+int64(m)]))
	}
	s.readAround(dst, offOut, n, "read after the copy", 2)
}

// copySource picks a source offset and length in f, past its end now
// and then.
func (s *fsxState) copySource(f *fsxFile) (int64, int) {
	size := int64(len(f.model))
	n := s.length()
	if s.rng.IntN(3) == 0 {
		n = max(fsxAlign, n&^(fsxAlign-1))
	}
	var off int64
	switch {
	case size == 0 || s.rng.IntN(20) == 0:
		return size + s.rng.Int64N(65536), n
	case s.rng.IntN(4) == 0: // the source's last bytes, where a hole may be
		off = max(0, size-s.rng.Int64N(int64(n)+1))
	default:
		off = s.rng.Int64N(size)
	}
	if s.rng.IntN(3) == 0 {
		off &^= fsxAlign - 1
	}
	return off, n
}

// copyWithin copies a range of f to another place of f that does not
// overlap it.
func (s *fsxState) copyWithin(f *fsxFile) {
	offIn, n := s.copySource(f)
	count := int64(f.expect(offIn, n))
	// A destination whose range does not overlap the source's
	// (copy_file_range refuses that with EINVAL).
	for range 10 {
		offOut := s.rng.Int64N(fsxMaxSize - int64(n))
		if s.rng.IntN(3) == 0 {
			offOut &^= fsxAlign - 1
		}
		if offOut+count <= offIn || offOut >= offIn+count {
			s.stats["copy within"]++
			s.copyRange(f, offIn, f, offOut, n)
			return
		}
	}
}

// copyBetween copies a range of another file to dst, near its end a
// third of the time.
func (s *fsxState) copyBetween(dst *fsxFile) {
	src := s.files[(dst.idx+1+s.rng.IntN(fsxFiles-1))%fsxFiles]
	offIn, n := s.copySource(src)
	var offOut int64
	if s.rng.IntN(3) == 0 {
		offOut = min(max(0, int64(len(dst.model))+s.rng.Int64N(6*4096)-3*4096), fsxMaxSize-int64(n))
	} else {
		offOut = s.rng.Int64N(fsxMaxSize - int64(n))
	}
	if s.rng.IntN(3) == 0 {
		offOut &^= fsxAlign - 1
	}
	s.stats["copy between"]++
	s.copyRange(src, offIn, dst, offOut, n)
}

// stat checks f's size as stat of its name and fstat of each of its
// descriptors report it.
func (s *fsxState) stat(f *fsxFile) {
	s.stats["stat"]++
	s.logf("%s: stat and fstat (size %d)", f.name, len(f.model))
	fi, err := os.Stat(s.m.path(f.name))
	if err != nil {
		s.fatalf("%s: stat: %v", f.name, err)
	}
	if fi.Size() != int64(len(f.model)) {
		s.fatalf("%s: stat size %d, want %d", f.name, fi.Size(), len(f.model))
	}
	for _, h := range []*os.File{f.rw, f.rd, f.dio} {
		var st unix.Stat_t
		if err := unix.Fstat(int(h.Fd()), &st); err != nil {
			s.fatalf("%s: fstat: %v", f.name, err)
		}
		if st.Size != int64(len(f.model)) {
			s.fatalf("%s: fstat size %d, want %d", f.name, st.Size, len(f.model))
		}
	}
}

// seekDataHole checks lseek's SEEK_DATA and SEEK_HOLE from a random
// offset against the model: SEEK_DATA skips no byte written (no byte
// fsx writes is zero, though a copied hole is zeroes written), and
// SEEK_HOLE's answer begins a block of zeroes or is the end of file.
func (s *fsxState) seekDataHole(f *fsxFile) {
	size := int64(len(f.model))
	if size == 0 {
		return
	}
	off := s.rng.Int64N(size)
	s.stats["seek data/hole"]++
	s.logf("%s: SEEK_DATA and SEEK_HOLE from %d (size %d)", f.name, off, size)
	fd := int(f.rd.Fd())
	d, err := unix.Seek(fd, off, unix.SEEK_DATA)
	switch {
	case err == unix.ENXIO:
		d = size
	case err != nil:
		s.fatalf("%s: SEEK_DATA from %d: %v", f.name, off, err)
	case d < off || d >= size:
		s.fatalf("%s: SEEK_DATA from %d = %d, want an offset in [%d, %d)", f.name, off, d, off, size)
	}
	if i := fsxNonZero(f.model[off:d]); i >= 0 {
		s.fatalf("%s: SEEK_DATA from %d = %d skips data at %d (%s)", f.name, off, d, off+int64(i), fsxOrigin(f.model, 0, off+int64(i)))
	}
	h, err := unix.Seek(fd, off, unix.SEEK_HOLE)
	if err != nil || h < off || h > size {
		s.fatalf("%s: SEEK_HOLE from %d = %d, %v; want an offset in [%d, %d]", f.name, off, h, err, off, size)
	}
	if end := min((h/s.bs+1)*s.bs, size); h < end {
		if i := fsxNonZero(f.model[h:end]); i >= 0 {
			s.fatalf("%s: SEEK_HOLE from %d = %d, but data follows at %d (%s)", f.name, off, h, h+int64(i), fsxOrigin(f.model, 0, h+int64(i)))
		}
	}
}

// fsxNonZero returns the index of the first byte of b that is not
// zero, or -1.
func fsxNonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// reopen closes f's read-write descriptor and opens it again, with
// O_TRUNC a quarter of the time; sometimes the others too.
func (s *fsxState) reopen(f *fsxFile) {
	trunc := s.rng.IntN(4) == 0
	all := s.rng.IntN(3) == 0
	s.stats["reopen"]++
	s.logf("%s: close and reopen (O_TRUNC %v, all descriptors %v, size %d)", f.name, trunc, all, len(f.model))
	hs := []**os.File{&f.rw}
	if all {
		hs = append(hs, &f.rd, &f.dio)
	}
	for _, h := range hs {
		if err := (*h).Close(); err != nil {
			s.fatalf("%s: close: %v", f.name, err)
		}
	}
	flags := os.O_RDWR
	if trunc {
		flags |= os.O_TRUNC
	}
	f.rw = s.open(f, flags)
	if trunc {
		f.setSize(0)
	}
	if all {
		f.rd = s.open(f, os.O_RDONLY)
		f.dio = s.open(f, os.O_RDWR|syscall.O_DIRECT)
	}
}

// readWhole reads f through a new descriptor (os.ReadFile).
func (s *fsxState) readWhole(f *fsxFile, what string) {
	s.stats["read whole"]++
	s.logf("%s: read the whole file through a new descriptor (size %d)", f.name, len(f.model))
	got, err := os.ReadFile(s.m.path(f.name))
	if err != nil {
		s.fatalf("%s: reading the whole file: %v", f.name, err)
	}
	s.compare(f, what, got, 0, f.model)
}

// reopenAll closes every descriptor and opens them again, which is what
// a remount does for a worker that shares the mount.
func (s *fsxState) reopenAll() {
	s.stats["reopen all"]++
	s.logf("close and reopen every descriptor")
	s.closeAll()
	s.openAll(0)
}

// remount closes every descriptor, unmounts, mounts the image again and
// reads every file in full.
func (s *fsxState) remount() {
	s.stats["remount"]++
	s.logf("unmount and mount again")
	s.unmount()
	if ok, out := oracle.Fsck(s.t, s.image); !ok {
		s.fatalf("e2fsck -fn after the unmount does not find the image clean:\n%s", out)
	}
	s.mount()
	for _, f := range s.files {
		s.readWhole(f, "a read of the whole file after a remount")
	}
	s.openAll(0)
}

// mmapStore stores bytes at a random range inside f through a shared
// mapping, msynced, in a child process (fsxMapper): a page fault on a
// file of the mount in this process, which serves it, could block a
// thread the Go runtime must stop.
func (s *fsxState) mmapStore(f *fsxFile) {
	size := int64(len(f.model))
	if size == 0 {
		return
	}
	off := s.rng.Int64N(size)
	n := int(min(int64(1+s.rng.IntN(64<<10)), size-off))
	// Half the time the mapping also covers the page holding the end
	// of file, whose bytes past it must read as zeroes and, stored
	// into, must not reach the file.
	eof := size%4096 != 0 && s.rng.IntN(2) == 0
	s.stats["mmap store"]++
	s.logf("%s: a child process stores %d at %d through a shared mapping (size %d; junk past the end of file %v)", f.name, n, off, size, eof)
	s.readAround(f, off, n, "read before the mapped store", 3)
	if s.mapper == nil {
		s.mapper = startFsxMapper(s.t)
	}
	eofArg := int64(-1)
	if eof {
		eofArg = size
	}
	if err := s.mapper.store(s.m.path(f.name), off, n, s.step, f.tag, eofArg); err != nil {
		s.fatalf("%s: storing through a shared mapping in a child process: %v", f.name, err)
	}
	f.store(off, fsxFill(s.step, f.tag, off, n))
	s.readAround(f, off, n, "read after the mapped store", 2)
}

// fsxMapper is a child process (this test binary running
// TestFsxMmapStoreHelper) that stores through shared mappings on
// request: one process for the whole run, since a test binary built
// with -race takes about a second to start. Between requests it holds
// no file of the mount open.
type fsxMapper struct {
	cmd *exec.Cmd
	in  *os.File // requests, a line each
	out *os.File // answers, a line each
	rd  *bufio.Reader
}

// startFsxMapper starts the helper process, ended in t.Cleanup.
func startFsxMapper(t *testing.T) *fsxMapper {
	t.Helper()
	reqR, reqW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ansR, ansW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFsxMmapStoreHelper$")
	cmd.Env = append(os.Environ(), "MPAGE_FSX_MMAP=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = reqR, ansW, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the mapping helper process: %v", err)
	}
	reqR.Close()
	ansW.Close()
	p := &fsxMapper{cmd: cmd, in: reqW, out: ansR, rd: bufio.NewReader(ansR)}
	t.Cleanup(func() {
		p.in.Close() // the helper ends at the end of its input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the mapping helper process: %v", err)
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
			t.Errorf("the mapping helper process did not end within a minute of its input's end")
		}
		p.out.Close()
	})
	return p
}

// store has the helper store fsxFill(step, idx, off, n) at off of path
// and waits (a minute at most) for its answer. With eof, the size of the
// file, not -1, the helper also checks that the bytes past it in its
// last page are zero and stores fsxJunk there.
func (p *fsxMapper) store(path string, off int64, n, step, idx int, eof int64) error {
	if _, err := fmt.Fprintf(p.in, "%s %d %d %d %d %d\n", path, off, n, step, idx, eof); err != nil {
		return fmt.Errorf("sending the request: %w", err)
	}
	p.out.SetReadDeadline(time.Now().Add(time.Minute))
	line, err := p.rd.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return errors.New(line)
	}
	return nil
}

// TestFsxMmapStoreHelper is not a test: run with MPAGE_FSX_MMAP set, it
// reads requests "path off n step idx eof" a line each from its
// standard input, stores fsxFill(step, idx, off, n) at off of path
// through a shared mapping (and, with eof not -1, checks that the bytes
// past eof in its page are zero and stores fsxJunk there), msyncs and
// unmaps it, and answers "ok" or the error on a line of its standard
// output, until its input ends.
func TestFsxMmapStoreHelper(t *testing.T) {
	if os.Getenv("MPAGE_FSX_MMAP") == "" {
		t.Skip("runs only as the helper process of TestFsxThroughMount")
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		ans := "ok"
		if err := fsxMmapStore(sc.Text()); err != nil {
			ans = strings.ReplaceAll(err.Error(), "\n", " ")
		}
		if _, err := fmt.Println(ans); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// fsxJunk is what the mapping helper stores past the end of file, where
// a store never reaches the file.
const fsxJunk = 0x6a

// fsxMmapStore serves one request of TestFsxMmapStoreHelper.
func fsxMmapStore(req string) error {
	var path string
	var off int64
	var n, step, idx int
	var eof int64
	if _, err := fmt.Sscan(req, &path, &off, &n, &step, &idx, &eof); err != nil {
		return fmt.Errorf("request %q: %v", req, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	start, end := off&^(4096-1), off+int64(n)
	if eof >= 0 {
		end = max(end, (eof+4095)&^4095)
	}
	mem, err := unix.Mmap(int(f.Fd()), start, int(end-start), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap %d at %d of %s: %v", end-start, start, path, err)
	}
	if eof >= 0 {
		past := mem[eof-start : end-start]
		if i := fsxNonZero(past); i >= 0 {
			unix.Munmap(mem)
			return fmt.Errorf("%s: the mapped byte at %d, past the end of file at %d, is %#x, want 0", path, eof+int64(i), eof, past[i])
		}
		for i := range past {
			past[i] = fsxJunk
		}
	}
	copy(mem[off-start:], fsxFill(step, idx, off, n))
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		unix.Munmap(mem)
		return fmt.Errorf("msync %d at %d of %s: %v", end-start, start, path, err)
	}
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("munmap: %v", err)
	}
	return f.Close()
}
