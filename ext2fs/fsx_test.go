package ext2fs

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/internal/oracle"
)

// fsx-style randomized test of one file (after the fsx of the Linux Test
// Project and xfstests): random reads, writes, appends, truncates up and
// down, syncs, close and reopen, and remounts, each checked against an
// in-memory model of the contents.
var (
	fsxSeeds = flag.Int("fsx.seeds", 0, "fsx: seeds per block size (0: the default, 2, or 10 with -fsx.full)")
	fsxOps   = flag.Int("fsx.ops", 0, "fsx: operations per seed (0: the default, 1500 under -race, 10000 without or with -fsx.full)")
	fsxFull  = flag.Bool("fsx.full", false, "fsx: the CI size, 10 seeds of 10000 operations per block size")
)

const (
	fsxMaxSize  = 3 << 20 // largest file offset written
	fsxMaxWrite = 96 << 10
	fsxCache    = 1 << 20 // page cache limit: smaller than the file, so pages are evicted and written back
)

type fsxState struct {
	t     *testing.T
	rng   *rand.Rand
	image string
	fsys  *FS
	rw    *File // O_RDWR handle
	ap    *File // O_WRONLY|O_APPEND handle
	model []byte
	bs    int
	step  int
	log   []string // the last operations, for failure reports
}

func (s *fsxState) logf(format string, args ...any) {
	msg := fmt.Sprintf("%d: ", s.step) + fmt.Sprintf(format, args...)
	s.log = append(s.log, msg)
	if len(s.log) > 20 {
		s.log = s.log[1:]
	}
}

func (s *fsxState) fatalf(format string, args ...any) {
	s.t.Helper()
	for _, l := range s.log {
		s.t.Log(l)
	}
	s.t.Fatalf("step %d: "+format, append([]any{s.step}, args...)...)
}

func (s *fsxState) mount() {
	fsys, err := Open(s.image, Options{CacheLimit: fsxCache})
	if err != nil {
		s.fatalf("Open: %v", err)
	}
	s.fsys = fsys
	s.openHandles()
}

func (s *fsxState) openHandles() {
	var err error
	if s.rw, err = s.fsys.OpenFile("/fsx", os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		s.fatalf("OpenFile: %v", err)
	}
	if s.ap, err = s.fsys.OpenFile("fsx", os.O_WRONLY|os.O_APPEND, 0); err != nil {
		s.fatalf("OpenFile O_APPEND: %v", err)
	}
}

func (s *fsxState) closeHandles() {
	if err := s.rw.Close(); err != nil {
		s.fatalf("Close: %v", err)
	}
	if err := s.ap.Close(); err != nil {
		s.fatalf("Close: %v", err)
	}
}

func (s *fsxState) unmount() {
	s.closeHandles()
	if err := s.fsys.Close(); err != nil {
		s.fatalf("FS Close: %v", err)
	}
}

func (s *fsxState) fill(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(s.step*7+i) | 1 // never zero, so holes show
	}
	return b
}

func (s *fsxState) offLen(maxLen int) (int64, int) {
	var off int64
	if s.rng.IntN(3) == 0 && len(s.model) > 0 { // near the end
		off = max(0, int64(len(s.model))-int64(s.rng.IntN(3*s.bs)))
	} else {
		off = s.rng.Int64N(fsxMaxSize)
	}
	n := 1 + s.rng.IntN(maxLen)
	if s.rng.IntN(4) == 0 {
		n = 1 + s.rng.IntN(2*s.bs) // small, unaligned
	}
	return off, n
}

func (s *fsxState) check(off int64, n int) {
	got := make([]byte, n)
	m, err := s.rw.ReadAt(got, off)
	size := int64(len(s.model))
	want := 0
	if off < size {
		want = int(min(int64(n), size-off))
	}
	if m != want || (want < n && err != io.EOF) || (want == n && err != nil) {
		s.fatalf("ReadAt(%d, %d) = %d, %v; want %d bytes (size %d)", n, off, m, err, want, size)
	}
	if want > 0 && !bytes.Equal(got[:m], s.model[off:off+int64(m)]) {
		i := 0
		for i < m && got[i] == s.model[off+int64(i)] {
			i++
		}
		s.fatalf("ReadAt(%d, %d): byte %d (offset %d) is %#x, want %#x", n, off, i, off+int64(i), got[i], s.model[off+int64(i)])
	}
}

func (s *fsxState) op() {
	switch k := s.rng.IntN(100); {
	case k < 30: // read
		off, n := s.offLen(fsxMaxWrite)
		s.logf("read %d at %d", n, off)
		s.check(off, n)
	case k < 55: // write
		off, n := s.offLen(fsxMaxWrite)
		if off+int64(n) > fsxMaxSize {
			n = int(fsxMaxSize - off)
		}
		if n <= 0 {
			return
		}
		s.logf("write %d at %d (size %d)", n, off, len(s.model))
		b := s.fill(n)
		if m, err := s.rw.WriteAt(b, off); m != n || err != nil {
			s.fatalf("WriteAt: %d, %v", m, err)
		}
		if end := off + int64(n); end > int64(len(s.model)) {
			s.model = append(s.model, make([]byte, end-int64(len(s.model)))...)
		}
		copy(s.model[off:], b)
	case k < 65: // append
		n := 1 + s.rng.IntN(fsxMaxWrite/4)
		if len(s.model)+n > fsxMaxSize {
			return
		}
		s.logf("append %d (size %d)", n, len(s.model))
		b := s.fill(n)
		if m, err := s.ap.Write(b); m != n || err != nil {
			s.fatalf("append: %d, %v", m, err)
		}
		s.model = append(s.model, b...)
	case k < 75: // truncate down or up
		var size int64
		if s.rng.IntN(2) == 0 {
			size = s.rng.Int64N(int64(len(s.model)) + 1)
		} else {
			size = s.rng.Int64N(fsxMaxSize)
		}
		s.logf("truncate %d -> %d", len(s.model), size)
		if err := s.rw.Truncate(size); err != nil {
			s.fatalf("Truncate(%d): %v", size, err)
		}
		if size < int64(len(s.model)) {
			s.model = s.model[:size]
		} else {
			s.model = append(s.model, make([]byte, size-int64(len(s.model)))...)
		}
	case k < 82: // holes and data agree with the model
		if len(s.model) == 0 {
			return
		}
		off := s.rng.Int64N(int64(len(s.model)))
		s.logf("seek data/hole from %d", off)
		d, err := s.rw.Seek(off, SeekData)
		switch {
		case errors.Is(err, syscall.ENXIO):
			d = int64(len(s.model))
		case err != nil:
			s.fatalf("SeekData(%d): %v", off, err)
		}
		if i := bytes.IndexFunc(s.model[off:d], func(r rune) bool { return r != 0 }); i >= 0 {
			s.fatalf("SeekData(%d) = %d skips data at %d", off, d, off+int64(i))
		}
		h, err := s.rw.Seek(off, SeekHole)
		if err != nil || h < off || h > int64(len(s.model)) {
			s.fatalf("SeekHole(%d) = %d, %v (size %d)", off, h, err, len(s.model))
		}
		// The rest of the block holding h is a hole: it reads as zeros.
		if end := min((h/int64(s.bs)+1)*int64(s.bs), int64(len(s.model))); h < end && bytes.IndexFunc(s.model[h:end], func(r rune) bool { return r != 0 }) >= 0 {
			s.fatalf("SeekHole(%d) = %d, but data follows", off, h)
		}
	case k < 88: // stat
		fi, err := s.rw.Stat()
		if err != nil || fi.Size() != int64(len(s.model)) {
			s.fatalf("Stat: size %v, %v; want %d", fi.Size(), err, len(s.model))
		}
	case k < 93:
		s.logf("sync")
		if err := s.rw.Sync(); err != nil {
			s.fatalf("Sync: %v", err)
		}
	case k < 97:
		s.logf("close and reopen")
		s.closeHandles()
		s.openHandles()
	default:
		s.logf("remount")
		s.unmount()
		s.mount()
	}
}

func fsxDefaults() (seeds, ops int) {
	// Measured on 2 shared cores: about 0.4 ms per operation, 2 ms
	// under -race, so the default run stays well under a minute; the
	// CI size (-fsx.full, 200,000 operations) takes about 80 s without
	// -race and several minutes with it.
	seeds, ops = 2, 10000
	if oracle.RaceEnabled {
		ops = 1500
	}
	if *fsxFull {
		seeds, ops = 10, 10000
	}
	if *fsxSeeds > 0 {
		seeds = *fsxSeeds
	}
	if *fsxOps > 0 {
		ops = *fsxOps
	}
	return seeds, ops
}

func TestFsx(t *testing.T) {
	seeds, ops := fsxDefaults()
	if testing.Short() {
		seeds, ops = 1, min(ops, 500)
	}
	for _, bs := range []int{1024, 4096} {
		for seed := range seeds {
			t.Run(fmt.Sprintf("bs%d/seed%d", bs, seed), func(t *testing.T) {
				s := &fsxState{t: t, rng: rand.New(rand.NewPCG(uint64(seed), uint64(bs))), bs: bs}
				s.image = memImage(t, 32<<20, bs)
				s.mount()
				for s.step = 0; s.step < ops; s.step++ {
					s.op()
				}
				// Everything reads back after a final remount, and
				// the image is consistent with the same contents
				// as debugfs sees them.
				s.unmount()
				s.mount()
				s.check(0, len(s.model)+s.bs)
				s.unmount()
				oracle.RequireClean(t, s.image)
				if got := oracle.DebugfsDump(t, s.image, "/fsx"); !bytes.Equal(got, s.model) {
					t.Errorf("debugfs dump: %d bytes, differing from the model's %d", len(got), len(s.model))
				}
			})
		}
	}
}

// memImage is emptyImage in a folder of /dev/shm when there is one: the
// many syncs and remounts of fsx each flush the device (fdatasync), which
// on a disk costs more than the rest of the test.
func memImage(t *testing.T, size int64, blockSize int) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "ext2fs-fsx-")
	if err != nil {
		return emptyImage(t, size, blockSize)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	image := dir + "/fs.img"
	if err := Format(image, size, ext2.FormatOptions{BlockSize: blockSize}); err != nil {
		t.Fatalf("Format: %v", err)
	}
	return image
}
