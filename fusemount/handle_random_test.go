package fusemount

import (
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"unsafe"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestRandomReadsReadAlone reads a 32 MiB file through a 16 MiB page
// cache (mountImage's) at 3,000 random page offsets with O_DIRECT, so
// that each read(2) is one 4 KiB READ: once the handle has seen the
// READs are random, each page our cache misses is read from the image
// alone (as many pages as bios), not with neighbours a random reader
// never asks for. A sequential read of the file through the same
// handle then turns readahead on again: it goes to the image in
// bios of several pages. Every read returns the file's bytes.
func TestRandomReadsReadAlone(t *testing.T) {
	requireFuse(t)
	const size, reads = 32 << 20, 3000
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 64 << 20})
	m := mountImage(t, image, Options{})
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i/4096) ^ byte(i)
	}
	if err := os.WriteFile(m.path("f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.path("f"), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw := make([]byte, 2<<20)
	buf := raw[4096-int(uintptr(unsafe.Pointer(&raw[0]))&4095):][:1<<20]

	rng := rand.New(rand.NewPCG(7, 8))
	before := m.fsys.Stats().Queue
	for i := range reads {
		off := int64(rng.IntN(size/4096)) * 4096
		if _, err := f.ReadAt(buf[:4096], off); err != nil {
			t.Fatalf("read %d at %d: %v", i, off, err)
		}
		if string(buf[:4096]) != string(data[off:off+4096]) {
			t.Fatalf("read %d at %d: wrong bytes", i, off)
		}
	}
	after := m.fsys.Stats().Queue
	bios, pages := after.ReadBios-before.ReadBios, after.ReadPages-before.ReadPages
	if bios == 0 {
		t.Fatalf("%d random reads of a file twice the cache read nothing from the image", reads)
	}
	// The first randomReadRun reads may still read ahead.
	if extra := pages - bios; extra > 16 {
		t.Errorf("%d random reads read %d pages in %d bios from the image, want one page a bio (at most 16 more pages)", reads, pages, bios)
	}

	before = after
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if string(buf[:n]) != string(data[off:off+int64(n)]) {
			t.Fatalf("sequential read at %d: wrong bytes", off)
		}
	}
	after = m.fsys.Stats().Queue
	bios, pages = after.ReadBios-before.ReadBios, after.ReadPages-before.ReadPages
	// Pages the random reads left cached split the runs; without
	// readahead every bio would be one page.
	if bios == 0 || pages < 2*bios {
		t.Errorf("a sequential read of the file after the random ones read %d pages in %d bios, want at least 2 pages a bio", pages, bios)
	}
}
