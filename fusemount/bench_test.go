package fusemount

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/mpagefs/mpage/internal/oracle"
)

// BenchmarkSequentialWrite writes a 64 MiB file through the mount in
// 1 MiB writes and fsyncs it.
func BenchmarkSequentialWrite(b *testing.B) {
	const size = 64 << 20
	image := oracle.MkfsImage(b, oracle.MkfsOptions{SizeBytes: 256 << 20})
	m := mountBench(b, image)
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	for b.Loop() {
		f, err := os.Create(m.path("big"))
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < size; off += len(buf) {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkSequentialRead reads a 64 MiB file through the mount in 1 MiB
// reads; the kernel drops its cached pages at each open, so the data
// comes from our page cache.
func BenchmarkSequentialRead(b *testing.B) {
	const size = 64 << 20
	image := oracle.MkfsImage(b, oracle.MkfsOptions{SizeBytes: 256 << 20})
	m := mountBench(b, image)
	if err := os.WriteFile(m.path("big"), make([]byte, size), 0o644); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	for b.Loop() {
		f, err := os.Open(m.path("big"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, f, buf); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkCopyTree copies oracle.DefaultTree in with cp -a and removes
// it again.
func BenchmarkCopyTree(b *testing.B) {
	src := filepath.Join(b.TempDir(), "tree")
	oracle.GenerateTree(b, src, oracle.DefaultTree)
	image := oracle.MkfsImage(b, oracle.MkfsOptions{SizeBytes: 64 << 20})
	m := mountBench(b, image)
	for b.Loop() {
		if out, err := exec.Command("cp", "-a", src, m.path("t")).CombinedOutput(); err != nil {
			b.Fatalf("cp -a: %v\n%s", err, out)
		}
		if err := os.RemoveAll(m.path("t")); err != nil {
			b.Fatal(err)
		}
	}
}

func mountBench(b *testing.B, image string) *mounted {
	b.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Getuid() != 0 {
		b.Skip("needs /dev/fuse and root")
	}
	return mountTB(b, image, Options{})
}

// BenchmarkCopyBigDirectory copies a tree of 5,000 small files in one
// directory and 1,000 in 20 others in with cp -a and removes it again:
// lookups and creates in a large directory.
func BenchmarkCopyBigDirectory(b *testing.B) {
	src := filepath.Join(b.TempDir(), "tree")
	for d := range 21 {
		dir, n := filepath.Join(src, "big"), 5000
		if d > 0 {
			dir, n = filepath.Join(src, "sub", fmt.Sprintf("d%02d", d)), 50
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			name := filepath.Join(dir, fmt.Sprintf("file-with-a-longish-name-%05d.txt", i))
			if err := os.WriteFile(name, make([]byte, i%3000), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	image := oracle.MkfsImage(b, oracle.MkfsOptions{SizeBytes: 128 << 20})
	m := mountBench(b, image)
	for b.Loop() {
		if out, err := exec.Command("cp", "-a", src, m.path("t")).CombinedOutput(); err != nil {
			b.Fatalf("cp -a: %v\n%s", err, out)
		}
		if err := os.RemoveAll(m.path("t")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRandomRead reads 4 KiB at random page-aligned offsets of a
// 64 MiB file through the mount, with O_DIRECT so that each read is one
// FUSE READ, and a 16 MiB page cache (mountTB's), so that most reads miss
// our cache and go to the image, as fio's random reads of a 1 GiB file
// with --cache 256M do in scripts/bench. It reports the pages our cache
// read from the image per read (about 0.75 if every read of a page not
// cached reads just that page).
func BenchmarkRandomRead(b *testing.B) {
	const size = 64 << 20
	image := oracle.MkfsImage(b, oracle.MkfsOptions{SizeBytes: 128 << 20})
	m := mountBench(b, image)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i / 4096)
	}
	if err := os.WriteFile(m.path("big"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.OpenFile(m.path("big"), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// O_DIRECT wants an aligned buffer.
	raw := make([]byte, 2*4096)
	buf := raw[4096-int(uintptr(unsafe.Pointer(&raw[0]))&4095):][:4096]
	rng := rand.New(rand.NewPCG(1, 2))
	before := m.fsys.Stats().Queue.ReadPages
	b.SetBytes(4096)
	for b.Loop() {
		off := int64(rng.IntN(size/4096)) * 4096
		if _, err := f.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(m.fsys.Stats().Queue.ReadPages-before)/float64(b.N), "pages-read/op")
}
