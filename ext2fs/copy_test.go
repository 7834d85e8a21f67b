package ext2fs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/mpagefs/mpage/internal/oracle"
)

// asRoot reports whether owners and device nodes can be copied out.
func asRoot() bool { return os.Geteuid() == 0 }

func TestCopyOutMke2fsImage(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	oracle.GenerateTree(t, src, oracle.DefaultTree)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, FromDir: src})
	fsys := mustOpen(t, image, Options{ReadOnly: true})
	dst := filepath.Join(t.TempDir(), "out")
	if err := CopyOut(fsys, "/", dst, CopyOptions{}); err != nil {
		t.Fatalf("CopyOut: %v", err)
	}
	oracle.CompareTrees(t, src, dst, oracle.CompareOptions{Owners: asRoot(), Times: true, Ignore: []string{"lost+found"}})
	// Holes stay holes: the extracted sparse files use no more blocks
	// than the source's.
	for _, name := range []string{"sparse-hole-start", "sparse-hole-middle", "sparse-hole-end", "sparse-all-hole"} {
		var a, b syscall.Stat_t
		if err := syscall.Stat(filepath.Join(src, name), &a); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Stat(filepath.Join(dst, name), &b); err != nil {
			t.Fatal(err)
		}
		if b.Blocks > a.Blocks+8 || b.Blocks*512 >= b.Size && b.Size > 0 {
			t.Errorf("%s: extracted copy has %d blocks of 512 bytes for %d bytes, the source %d", name, b.Blocks, b.Size, a.Blocks)
		}
	}
}

// TestCopyInRoundTrip copies a tree into an image we format, checks it
// with e2fsck and fstest.TestFS, and copies it out again.
func TestCopyInRoundTrip(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(map[int]string{1024: "1k", 4096: "4k"}[bs], func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			paths := oracle.GenerateTree(t, src, oracle.DefaultTree)
			image := emptyImage(t, 24<<20, bs)
			fsys := mustOpen(t, image, Options{})
			if err := CopyIn(fsys, src, "/", CopyOptions{}); err != nil {
				t.Fatalf("CopyIn: %v", err)
			}
			closeAndCheck(t, fsys, image)

			fsys = mustOpen(t, image, Options{ReadOnly: true})
			dst := filepath.Join(t.TempDir(), "out")
			if err := CopyOut(fsys, "/", dst, CopyOptions{}); err != nil {
				t.Fatalf("CopyOut: %v", err)
			}
			oracle.CompareTrees(t, src, dst, oracle.CompareOptions{Owners: asRoot(), Times: true, Ignore: []string{"lost+found"}})
			// debugfs agrees on a sparse file's contents.
			want, _ := os.ReadFile(filepath.Join(src, "sparse-hole-middle"))
			if got := oracle.DebugfsDump(t, image, "/sparse-hole-middle"); string(got) != string(want) {
				t.Errorf("debugfs dump of sparse-hole-middle differs from the source")
			}
			_ = paths
		})
	}
}

func TestFSConformanceWrittenImage(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	paths := oracle.GenerateTree(t, src, conformanceTree)
	var keep []string
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(src, p)); err != nil {
			os.Remove(filepath.Join(src, p)) // dangling link: io/fs Open cannot follow it
			continue
		}
		keep = append(keep, p)
	}
	image := emptyImage(t, 8<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	if err := CopyIn(fsys, src, "/", CopyOptions{}); err != nil {
		t.Fatalf("CopyIn: %v", err)
	}
	if err := fstest.TestFS(fsys, keep...); err != nil {
		t.Fatal(err)
	}
	closeAndCheck(t, fsys, image)
	_ = strings.TrimSpace
}
