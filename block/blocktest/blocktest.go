// Package blocktest is a conformance suite for block.Device backends.
//
// Every backend's tests call Run with a function that makes a fresh device:
//
//	func TestConformance(t *testing.T) {
//		blocktest.Run(t, func(t *testing.T, size int64) block.Device {
//			return block.NewMemory(size)
//		})
//	}
//
// The function may skip t (for a backend that needs privileges) and should
// release what it made with t.Cleanup; Run closes the device itself in some
// tests, so a cleanup must tolerate a second Close.
package blocktest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mpagefs/mpage/block"
)

// Size is the device size Run asks for: enough for a vector of more than
// IOV_MAX sectors.
const Size = 2 << 20

// NewDevice makes a zeroed device of size bytes for test t.
type NewDevice func(t *testing.T, size int64) block.Device

// Run runs the conformance suite against the devices newDev makes.
func Run(t *testing.T, newDev NewDevice) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, newDev NewDevice)
	}{
		{"Size", testSize},
		{"ReadAfterWrite", testReadAfterWrite},
		{"ManySegments", testManySegments},
		{"OutOfRange", testOutOfRange},
		{"ConcurrentDisjointWriters", testConcurrentWriters},
		{"Flush", testFlush},
		{"CloseThenUse", testCloseThenUse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDev) })
	}
}

// pattern fills n bytes with a sequence that differs for each seed and
// each 512-byte sector, so misplaced sectors are caught.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i) ^ byte(i>>9)*31
	}
	return b
}

// split cuts buf into consecutive segments of the given sizes, cycling
// through them; the last segment takes what is left.
func split(buf []byte, sizes ...int) [][]byte {
	var out [][]byte
	for i := 0; len(buf) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(buf))
		out = append(out, buf[:n:n])
		buf = buf[n:]
	}
	return out
}

func readBack(t *testing.T, dev block.Device, off int64, n int) []byte {
	t.Helper()
	got := make([]byte, n)
	if err := dev.ReadVecAt([][]byte{got}, off); err != nil {
		t.Fatalf("ReadVecAt(%d bytes at %d): %v", n, off, err)
	}
	return got
}

func testSize(t *testing.T, newDev NewDevice) {
	dev := newDev(t, Size)
	if got := dev.Size(); got != Size {
		t.Errorf("Size() = %d, want %d", got, Size)
	}
}

func testReadAfterWrite(t *testing.T, newDev NewDevice) {
	dev := newDev(t, Size)
	tests := []struct {
		name       string
		off        int64
		n          int
		writeSegs  []int
		readSegs   []int
		seed       byte
		unaffected []int64 // offsets of sectors that must keep their zeros
	}{
		{"one sector at 0", 0, 512, []int{512}, []int{512}, 1, []int64{512}},
		{"odd segments", 8192, 12800, []int{512, 1536, 4096, 2560}, []int{3584, 512, 1024}, 2, []int64{7680, 8192 + 12800}},
		{"page segments", 65536, 64 << 10, []int{4096}, []int{1024, 7168}, 3, nil},
		{"last sectors", Size - 4608, 4608, []int{1024, 3584}, []int{4608}, 4, []int64{Size - 5120}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := pattern(tc.seed, tc.n)
			if err := dev.WriteVecAt(split(bytes.Clone(want), tc.writeSegs...), tc.off); err != nil {
				t.Fatalf("WriteVecAt(%d bytes at %d): %v", tc.n, tc.off, err)
			}
			got := make([]byte, tc.n)
			if err := dev.ReadVecAt(split(got, tc.readSegs...), tc.off); err != nil {
				t.Fatalf("ReadVecAt(%d bytes at %d): %v", tc.n, tc.off, err)
			}
			if i := firstDiff(got, want); i >= 0 {
				t.Fatalf("byte %d at offset %d: got %#x, want %#x", i, tc.off+int64(i), got[i], want[i])
			}
			for _, off := range tc.unaffected {
				if s := readBack(t, dev, off, 512); !bytes.Equal(s, make([]byte, 512)) {
					t.Errorf("sector at offset %d changed by a write elsewhere: got %x..., want zeros", off, s[:8])
				}
			}
		})
	}
}

// testManySegments moves vectors longer than IOV_MAX (1024).
func testManySegments(t *testing.T, newDev NewDevice) {
	dev := newDev(t, Size)
	const n = 1500 * 512
	want := pattern(9, n)
	if err := dev.WriteVecAt(split(bytes.Clone(want), 512), 4096); err != nil {
		t.Fatalf("WriteVecAt(1500 segments): %v", err)
	}
	got := make([]byte, n)
	if err := dev.ReadVecAt(split(got, 512, 1024), 4096); err != nil {
		t.Fatalf("ReadVecAt(1000 segments): %v", err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("byte %d: got %#x, want %#x", i, got[i], want[i])
	}
}

func testOutOfRange(t *testing.T, newDev NewDevice) {
	dev := newDev(t, Size)
	tests := []struct {
		name string
		off  int64
		n    int
	}{
		{"across the end", Size - 512, 1024},
		{"at the end", Size, 512},
		{"far beyond", Size * 4, 4096},
		{"negative offset", -512, 512},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := dev.ReadVecAt([][]byte{make([]byte, tc.n)}, tc.off); !errors.Is(err, block.ErrOutOfRange) {
				t.Errorf("ReadVecAt(%d bytes at %d) = %v, want ErrOutOfRange", tc.n, tc.off, err)
			}
			if err := dev.WriteVecAt([][]byte{pattern(5, tc.n)}, tc.off); !errors.Is(err, block.ErrOutOfRange) {
				t.Errorf("WriteVecAt(%d bytes at %d) = %v, want ErrOutOfRange", tc.n, tc.off, err)
			}
		})
	}
	// A refused write across the end must not have written its head.
	if got := readBack(t, dev, Size-512, 512); !bytes.Equal(got, make([]byte, 512)) {
		t.Errorf("last sector after a refused write across the end: got %x..., want zeros", got[:8])
	}
}

func testConcurrentWriters(t *testing.T, newDev NewDevice) {
	dev := newDev(t, Size)
	const writers = 8
	const region = Size / writers
	const chunk = 8192
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			base := int64(w) * region
			for off := int64(0); off < region; off += chunk {
				buf := pattern(byte(w)+byte(off/chunk), chunk)
				if err := dev.WriteVecAt(split(buf, 4096, 512, 3584), base+off); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := readBack(t, dev, 0, Size)
	for w := range writers {
		for off := int64(0); off < region; off += chunk {
			at := int64(w)*region + off
			want := pattern(byte(w)+byte(off/chunk), chunk)
			if i := firstDiff(got[at:at+chunk], want); i >= 0 {
				t.Fatalf("writer %d, byte at offset %d: got %#x, want %#x", w, at+int64(i), got[at+int64(i)], want[i])
			}
		}
	}
}

func testFlush(t *testing.T, newDev NewDevice) {
	dev := newDev(t, Size)
	want := pattern(7, 16384)
	if err := dev.WriteVecAt([][]byte{bytes.Clone(want)}, 32768); err != nil {
		t.Fatalf("WriteVecAt: %v", err)
	}
	if err := dev.Flush(); err != nil {
		t.Fatalf("Flush() = %v, want nil", err)
	}
	if got := readBack(t, dev, 32768, len(want)); !bytes.Equal(got, want) {
		t.Errorf("data after Flush differs from what was written")
	}
	if err := dev.Flush(); err != nil {
		t.Errorf("second Flush() = %v, want nil", err)
	}
}

func testCloseThenUse(t *testing.T, newDev NewDevice) {
	dev := newDev(t, Size)
	if err := dev.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if err := dev.ReadVecAt([][]byte{make([]byte, 512)}, 0); !errors.Is(err, block.ErrClosed) {
		t.Errorf("ReadVecAt after Close = %v, want ErrClosed", err)
	}
	if err := dev.WriteVecAt([][]byte{make([]byte, 512)}, 0); !errors.Is(err, block.ErrClosed) {
		t.Errorf("WriteVecAt after Close = %v, want ErrClosed", err)
	}
	if err := dev.Flush(); !errors.Is(err, block.ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
