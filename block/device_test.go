package block_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/block/blocktest"
)

func newImage(t *testing.T, size int64) *block.File {
	t.Helper()
	f, err := block.CreateFile(filepath.Join(t.TempDir(), "disk.img"), size)
	if err != nil {
		t.Fatalf("CreateFile: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestConformanceMemory(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, size int64) block.Device { return block.NewMemory(size) })
}

func TestConformanceFileImage(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, size int64) block.Device { return newImage(t, size) })
}

func TestConformanceFaultyNoFaults(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, size int64) block.Device {
		return block.NewFaulty(block.NewMemory(size))
	})
}

func TestConformanceFileLoopDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping loop device backend: needs root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("skipping loop device backend: no /dev/loop-control: %v", err)
	}
	blocktest.Run(t, func(t *testing.T, size int64) block.Device {
		path := attachLoop(t, size)
		f, err := block.OpenFile(path, false)
		if err != nil {
			t.Fatalf("OpenFile(%s): %v", path, err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	})
}

// attachLoop backs a free loop device with a zeroed image of size bytes and
// returns the device's path; t.Cleanup detaches it. It skips t when the
// kernel or container does not let it.
func attachLoop(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "loop.img")
	f, err := block.CreateFile(img, size)
	if err != nil {
		t.Fatalf("CreateFile: %v", err)
	}
	f.Close()
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("skipping loop device backend: open /dev/loop-control: %v", err)
	}
	defer unix.Close(ctl)
	imgFD, err := unix.Open(img, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", img, err)
	}
	defer unix.Close(imgFD)
	for try := 0; try < 5; try++ { // another process may take the free device first
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			t.Skipf("skipping loop device backend: LOOP_CTL_GET_FREE: %v", err)
		}
		path := fmt.Sprintf("/dev/loop%d", n)
		loopFD, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Skipf("skipping loop device backend: open %s: %v", path, err)
		}
		if err := unix.IoctlSetInt(loopFD, unix.LOOP_SET_FD, imgFD); err != nil {
			unix.Close(loopFD)
			if errors.Is(err, unix.EBUSY) {
				continue
			}
			t.Skipf("skipping loop device backend: LOOP_SET_FD on %s: %v", path, err)
		}
		t.Cleanup(func() {
			unix.IoctlSetInt(loopFD, unix.LOOP_CLR_FD, 0)
			unix.Close(loopFD)
		})
		return path
	}
	t.Skip("skipping loop device backend: no free loop device after 5 tries")
	return ""
}

func TestFileReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.img")
	w, err := block.CreateFile(path, 8192)
	if err != nil {
		t.Fatalf("CreateFile: %v", err)
	}
	want := bytes.Repeat([]byte{0xa5}, 4096)
	if err := w.WriteVecAt([][]byte{want}, 4096); err != nil {
		t.Fatalf("WriteVecAt: %v", err)
	}
	w.Close()

	f, err := block.OpenFile(path, true)
	if err != nil {
		t.Fatalf("OpenFile(read-only): %v", err)
	}
	t.Cleanup(func() { f.Close() })
	err = f.WriteVecAt([][]byte{make([]byte, 512)}, 0)
	if !errors.Is(err, block.ErrReadOnly) {
		t.Errorf("WriteVecAt on read-only File = %v, want ErrReadOnly", err)
	}
	got := make([]byte, 4096)
	if err := f.ReadVecAt([][]byte{got}, 4096); err != nil {
		t.Fatalf("ReadVecAt: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read-only File read back %x..., want %x...", got[:4], want[:4])
	}
}

func TestFileShrunkUnderneath(t *testing.T) {
	f := newImage(t, 16384)
	if err := os.Truncate(f.Path(), 6144); err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{make([]byte, 4096), make([]byte, 4096)}
	err := f.ReadVecAt(bufs, 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read past the shrunk end = %v, want io.ErrUnexpectedEOF", err)
	}
	// The short read stopped inside the second buffer.
	for _, want := range []string{f.Path(), "2048 bytes at offset 6144"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if len(bufs[0]) != 4096 || len(bufs[1]) != 4096 {
		t.Errorf("ReadVecAt changed the caller's vector: lengths %d, %d, want 4096, 4096", len(bufs[0]), len(bufs[1]))
	}
}

func TestFileOpenErrors(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "odd.img")
	if err := os.WriteFile(odd, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		open func() (*block.File, error)
		want error
	}{
		{"missing file", func() (*block.File, error) { return block.OpenFile(filepath.Join(dir, "nope"), false) }, fs.ErrNotExist},
		{"directory", func() (*block.File, error) { return block.OpenFile(dir, true) }, block.ErrInvalid},
		{"create odd size", func() (*block.File, error) { return block.CreateFile(filepath.Join(dir, "x.img"), 1000) }, block.ErrInvalid},
		{"create negative size", func() (*block.File, error) { return block.CreateFile(filepath.Join(dir, "y.img"), -512) }, block.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.open()
			if !errors.Is(err, tc.want) {
				if f != nil {
					f.Close()
				}
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
		})
	}
	// An image whose size is not a whole number of sectors loses its tail.
	f, err := block.OpenFile(odd, true)
	if err != nil {
		t.Fatalf("OpenFile(odd): %v", err)
	}
	defer f.Close()
	if got := f.Size(); got != 512 {
		t.Errorf("Size() of a 1000-byte image = %d, want 512", got)
	}
}

func TestFaultyFaults(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name  string
		fault block.Fault
		calls []block.Call // Op, Off, Len of the calls to make
		fail  []bool       // which of them must fail
	}{
		{
			name:  "sector range",
			fault: block.Fault{Op: block.Write, FromSector: 8, ToSector: 16},
			calls: []block.Call{{Op: block.Write, Off: 0, Len: 4096}, {Op: block.Write, Off: 3584, Len: 1024}, {Op: block.Read, Off: 4096, Len: 512}, {Op: block.Write, Off: 8192, Len: 512}},
			fail:  []bool{false, true, false, false},
		},
		{
			name:  "nth call",
			fault: block.Fault{Op: block.Read, Call: 2, Err: errBoom},
			calls: []block.Call{{Op: block.Read, Len: 512}, {Op: block.Write, Len: 512}, {Op: block.Read, Len: 512}, {Op: block.Read, Len: 512}},
			fail:  []bool{false, false, true, false},
		},
		{
			name:  "times",
			fault: block.Fault{Op: block.Write, Times: 2},
			calls: []block.Call{{Op: block.Write, Len: 512}, {Op: block.Write, Len: 512}, {Op: block.Write, Len: 512}},
			fail:  []bool{true, true, false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev := block.NewFaulty(block.NewMemory(1 << 16))
			dev.Inject(tc.fault)
			for i, c := range tc.calls {
				buf := [][]byte{make([]byte, c.Len)}
				var err error
				if c.Op == block.Write {
					err = dev.WriteVecAt(buf, c.Off)
				} else {
					err = dev.ReadVecAt(buf, c.Off)
				}
				if got := err != nil; got != tc.fail[i] {
					t.Fatalf("call %d (%s %d at %d): got error %v, want failure %v", i, c.Op, c.Len, c.Off, err, tc.fail[i])
				}
				if err != nil {
					want := tc.fault.Err
					if want == nil {
						want = block.ErrIO
					}
					if !errors.Is(err, want) {
						t.Errorf("call %d: got %v, want it to wrap %v", i, err, want)
					}
				}
			}
			calls := dev.Calls()
			if len(calls) != len(tc.calls) {
				t.Fatalf("recorded %d calls, want %d", len(calls), len(tc.calls))
			}
			for i, c := range calls {
				if c.Op != tc.calls[i].Op || c.Off != tc.calls[i].Off || c.Len != tc.calls[i].Len || (c.Err != nil) != tc.fail[i] {
					t.Errorf("call %d recorded as %+v, want %s of %d at %d failing=%v", i, c, tc.calls[i].Op, tc.calls[i].Len, tc.calls[i].Off, tc.fail[i])
				}
			}
		})
	}
}

func TestFaultyCrash(t *testing.T) {
	dev := block.NewFaulty(block.NewMemory(8192))
	write := func(b byte, off int64) {
		t.Helper()
		if err := dev.WriteVecAt([][]byte{bytes.Repeat([]byte{b}, 1024)}, off); err != nil {
			t.Fatalf("WriteVecAt: %v", err)
		}
	}
	write(1, 0)
	write(2, 2048)
	if err := dev.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	write(3, 0)    // overwrites flushed data
	write(4, 1024) // new data
	write(5, 0)    // overwrites unflushed data

	crashed, err := dev.Crash()
	if err != nil {
		t.Fatalf("Crash: %v", err)
	}
	want := make([]byte, 8192)
	copy(want[0:1024], bytes.Repeat([]byte{1}, 1024))
	copy(want[2048:3072], bytes.Repeat([]byte{2}, 1024))
	if got := crashed.Bytes(); !bytes.Equal(got, want) {
		t.Errorf("crashed device differs from the state at the last Flush (byte 0 = %d, byte 1024 = %d)", got[0], got[1024])
	}
	// The live device keeps every write.
	got := make([]byte, 2048)
	if err := dev.ReadVecAt([][]byte{got}, 0); err != nil {
		t.Fatal(err)
	}
	if got[0] != 5 || got[1024] != 4 {
		t.Errorf("live device after Crash: byte 0 = %d, byte 1024 = %d, want 5 and 4", got[0], got[1024])
	}
}
