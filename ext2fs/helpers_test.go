package ext2fs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/internal/oracle"
)

// treeImage generates spec's tree in a temporary folder, makes an image
// of it with mke2fs -d, and returns the image, the tree and the
// generated paths. Dangling symlinks are left out (io/fs opens follow
// links, so fstest.TestFS cannot open one).
func treeImage(t *testing.T, spec oracle.TreeSpec, blockSize int) (image, src string, paths []string) {
	t.Helper()
	src = filepath.Join(t.TempDir(), "src")
	paths = oracle.GenerateTree(t, src, spec)
	paths = slices.DeleteFunc(paths, func(p string) bool {
		full := filepath.Join(src, p)
		if _, err := os.Stat(full); err != nil { // a dangling link
			if err := os.Remove(full); err != nil {
				t.Fatal(err)
			}
			return true
		}
		return false
	})
	image = oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, BlockSize: blockSize, FromDir: src})
	return image, src, paths
}

// emptyImage formats a new image of size bytes with our Format.
func emptyImage(t *testing.T, size int64, blockSize int) string {
	t.Helper()
	image := filepath.Join(t.TempDir(), "fs.img")
	if err := Format(image, size, ext2.FormatOptions{BlockSize: blockSize}); err != nil {
		t.Fatalf("Format: %v", err)
	}
	return image
}

// mustOpen opens image and closes it at cleanup (a second Close is
// harmless).
func mustOpen(t *testing.T, image string, opts Options) *FS {
	t.Helper()
	fsys, err := Open(image, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", image, err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}

// closeAndCheck closes fsys and runs e2fsck on its image.
func closeAndCheck(t *testing.T, fsys *FS, image string) {
	t.Helper()
	if err := fsys.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	oracle.RequireClean(t, image)
}
