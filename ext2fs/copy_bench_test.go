package ext2fs

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mpagefs/mpage/ext2"
)

// BenchmarkCopyInGoTree builds an image from the Go toolchain's source
// tree as mpage mkfs --from does (the project's benchmark: 512 MiB, 4 KiB
// blocks, 32768 inodes): format, CopyIn with Replace, Close.
func BenchmarkCopyInGoTree(b *testing.B) {
	src := filepath.Join(runtime.GOROOT(), "src")
	if _, err := os.Stat(src); err != nil {
		b.Skipf("no Go source tree: %v", err)
	}
	image := filepath.Join(b.TempDir(), "img")
	for b.Loop() {
		if err := Format(image, 512<<20, ext2.FormatOptions{BlockSize: 4096, InodeSize: 256, Inodes: 32768}); err != nil {
			b.Fatal(err)
		}
		fsys, err := Open(image, Options{CacheLimit: 256 << 20})
		if err != nil {
			b.Fatal(err)
		}
		if err := CopyIn(fsys, src, "/", CopyOptions{Replace: true}); err != nil {
			b.Fatal(err)
		}
		if err := fsys.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
