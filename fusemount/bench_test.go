package fusemount

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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
