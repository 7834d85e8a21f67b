package oracle

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// MkfsOptions are the mke2fs parameters tests choose. Zero values leave
// mke2fs's own defaults (from /etc/mke2fs.conf) in place.
type MkfsOptions struct {
	SizeBytes      int64  // image size; default 8 MiB
	BlockSize      int    // -b
	InodeSize      int    // -I
	Inodes         int    // -N, the minimum inode count
	InodeRatio     int    // -i, bytes per inode
	BlocksPerGroup int    // -g
	Rev0           bool   // -r 0
	Features       string // -O, e.g. "^resize_inode,^dir_index"
	FromDir        string // -d, populate from a directory tree
	Label          string // -L
	UUID           string // -U
	// ReservedPercent, when not nil, is passed as -m.
	ReservedPercent *int
	// ExtraArgs are appended before the image path.
	ExtraArgs []string
}

// OptionsForMke2fs is another name for MkfsOptions.
type OptionsForMke2fs = MkfsOptions

// DefaultImageSize is the image size MkfsImage uses when SizeBytes is 0.
const DefaultImageSize = 8 << 20

// Mke2fsArgs returns the arguments MkfsImage passes to mke2fs, without the
// image path: "-q -F -t ext2" and one flag per set option.
func Mke2fsArgs(o MkfsOptions) []string {
	args := []string{"-q", "-F", "-t", "ext2"}
	add := func(flag string, v int) {
		if v != 0 {
			args = append(args, flag, strconv.Itoa(v))
		}
	}
	add("-b", o.BlockSize)
	add("-I", o.InodeSize)
	add("-N", o.Inodes)
	add("-i", o.InodeRatio)
	add("-g", o.BlocksPerGroup)
	if o.Rev0 {
		args = append(args, "-r", "0")
	}
	if o.Features != "" {
		args = append(args, "-O", o.Features)
	}
	if o.FromDir != "" {
		args = append(args, "-d", o.FromDir)
	}
	if o.Label != "" {
		args = append(args, "-L", o.Label)
	}
	if o.UUID != "" {
		args = append(args, "-U", o.UUID)
	}
	if o.ReservedPercent != nil {
		args = append(args, "-m", strconv.Itoa(*o.ReservedPercent))
	}
	return append(args, o.ExtraArgs...)
}

// MkfsImage makes an ext2 image with mke2fs in a new t.TempDir and returns
// its path. It fails the test if mke2fs fails, and skips it if mke2fs is
// not installed.
func MkfsImage(t testing.TB, o MkfsOptions) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mke2fs.img")
	MkfsImageAt(t, path, o)
	return path
}

// MkfsImageAt is MkfsImage writing to path, which is created or truncated
// to o.SizeBytes first.
func MkfsImageAt(t testing.TB, path string, o MkfsOptions) {
	t.Helper()
	prog := Tool(t, "mke2fs")
	size := o.SizeBytes
	if size == 0 {
		size = DefaultImageSize
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	args := append(Mke2fsArgs(o), path)
	if r := run(t, prog, args...); r.code != 0 {
		t.Fatalf("oracle: mke2fs failed: %s", r.describe(prog, args))
	}
}
