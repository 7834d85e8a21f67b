package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2fs"
	"github.com/spf13/cobra"
)

type mkfsFlags struct {
	size      string
	blockSize int
	inodes    uint32
	inodeSize int
	label     string
	from      string
}

func newMkfsCmd(a *app) *cobra.Command {
	var fl mkfsFlags
	cmd := &cobra.Command{
		Use:   "mkfs [--size 1G] [--block-size 4096] [--inodes N] [--inode-size 256] [--label L] [--from DIR] IMAGE",
		Short: "Make an ext2 image, empty or filled from a directory tree",
		Long: `Make an ext2 filesystem in the image file IMAGE (created, or truncated), as
mke2fs -t ext2 does. With --from, fill it with the tree under DIR: contents
(holes kept), modes, owners, times, symbolic links, hard links, device
nodes and fifos. --size may then be left out: the image is sized to fit the
tree, with room to spare.`,
		Example: `  mpage mkfs --size 64M disk.img
  mpage mkfs --from ./rootfs --label root rootfs.img`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := cmd.Flags()
	f.StringVar(&fl.size, "size", "", "image size (K, M, G suffixes); default: 64M, or fitted to --from")
	f.IntVar(&fl.blockSize, "block-size", 0, "block size: 1024, 2048 or 4096 (default: by size, as mke2fs)")
	f.Uint32Var(&fl.inodes, "inodes", 0, "least number of inodes (default: by size, as mke2fs)")
	f.IntVar(&fl.inodeSize, "inode-size", 256, "inode size: 128 or 256")
	f.StringVar(&fl.label, "label", "", "volume label (at most 16 bytes)")
	f.StringVar(&fl.from, "from", "", "fill the image from this directory tree")
	cmd.RunE = func(_ *cobra.Command, argv []string) error {
		if a.g.readOnly {
			return fmt.Errorf("--readonly given, and mkfs writes an image")
		}
		return a.mkfs(argv[0], fl)
	}
	return cmd
}

const defaultImageSize = 64 << 20

func (a *app) mkfs(image string, fl mkfsFlags) error {
	opts := ext2.FormatOptions{BlockSize: fl.blockSize, Inodes: fl.inodes, InodeSize: fl.inodeSize, Label: fl.label}
	if len(fl.label) > 16 {
		return usagef("--label %q is longer than 16 bytes", fl.label)
	}
	var size int64
	if fl.size != "" {
		n, err := parseSize(fl.size)
		if err != nil {
			return usagef("--size: %v", err)
		}
		size = n
	}
	if fl.from == "" {
		if size == 0 {
			size = defaultImageSize
		}
		return formatImage(image, size, opts)
	}
	st, err := os.Stat(fl.from)
	if err != nil {
		return fmt.Errorf("--from: %s", errText(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("--from %s: not a directory", fl.from)
	}
	fixed := size != 0
	var u treeUsage
	if !fixed || a.wantProgress() {
		// Measured to size the image, or for the progress bar's total.
		size0, err := ext2fs.MeasureTree(fl.from)
		if err != nil {
			return fmt.Errorf("--from: %s", errText(err))
		}
		u = usageOf(size0)
	}
	for attempt := 0; ; attempt++ {
		o := opts
		if !fixed {
			size, o = fitSize(u, opts, 1+0.5*float64(attempt))
		}
		if err := formatImage(image, size, o); err != nil {
			return err
		}
		err := a.fillImage(image, fl.from, u)
		if err == nil {
			return nil
		}
		if fixed || !errors.Is(err, syscall.ENOSPC) || attempt == 3 {
			return err
		}
		// The estimate was short: make the image again, larger.
	}
}

func formatImage(image string, size int64, opts ext2.FormatOptions) error {
	size = size &^ 511
	if opts.BlockSize != 0 {
		size -= size % int64(opts.BlockSize)
	}
	// ext2fs.Format truncates the image file to nothing and then to
	// size: it reads as zeros, and the inode tables need no writing.
	opts.DeviceZeroed = true
	if err := ext2fs.Format(image, size, opts); err != nil {
		return fmt.Errorf("%s: %s", image, errText(err))
	}
	return nil
}

// fillImage copies the tree under dir into the root of image, keeping
// everything (cp -a). The image was just made by formatImage, so its
// free inode table blocks are known to hold zeros (no read of them
// before the first inode of each is written).
func (a *app) fillImage(image, dir string, u treeUsage) error {
	fsys, err := ext2fs.Open(image, ext2fs.Options{CacheLimit: a.cache, Mount: ext2.Options{
		FreshInodeTables: true, HugePages: a.g.hugePages,
	}})
	if err != nil {
		return fmt.Errorf("%s: cannot open as ext2: %s", image, errText(err))
	}
	prog := a.newProgress(u.dataBytes, "mkfs")
	opts := ext2fs.CopyOptions{Replace: true}
	if prog != nil {
		opts.Progress = prog.add
	}
	err = ext2fs.CopyIn(fsys, dir, "/", opts)
	prog.done()
	if err != nil {
		err = fmt.Errorf("filling %s from %s: %s", image, dir, errText(err))
	}
	cerr := fsys.Close()
	a.stats.add(fsys.Stats())
	if cerr != nil && err == nil {
		err = fmt.Errorf("%s: closing: %s", image, errText(cerr))
	}
	return err
}

// treeUsage is what a tree needs in an image, for mkfs sizing.
type treeUsage struct {
	files, dirs, symlinks, others int64
	dataBytes                     int64 // bytes of data, holes left out
	dirEntryBytes                 int64
	longLinkTargets               int64 // symlinks that need a block
	blocksByFile                  []int64
}

func usageOf(t ext2fs.TreeSize) treeUsage {
	return treeUsage{files: t.Files, dirs: t.Dirs, symlinks: t.Symlinks, others: t.Others,
		dataBytes: t.DataBytes, dirEntryBytes: t.DirEntryBytes, longLinkTargets: t.LongSymlinks, blocksByFile: t.FileData}
}

// fitSize returns an image size (and the options to format it with) that
// holds the tree u measured, with about 20% to spare, scaled by grow.
func fitSize(u treeUsage, opts ext2.FormatOptions, grow float64) (int64, ext2.FormatOptions) {
	bs := opts.BlockSize
	if bs == 0 {
		bs = 1024
		if u.dataBytes > 400<<20 {
			bs = 4096
		}
		opts.BlockSize = bs
	}
	isz := int64(opts.InodeSize)
	if isz == 0 {
		isz = 256
	}
	b := int64(bs)
	ptrs := b / 4
	var blocks int64
	for _, data := range u.blocksByFile {
		nb := (data + b - 1) / b
		blocks += nb
		if nb > 12 { // indirect blocks
			rest := nb - 12
			blocks += (rest + ptrs - 1) / ptrs
			if rest > ptrs {
				blocks += 1 + (rest-ptrs+ptrs*ptrs-1)/(ptrs*ptrs)
			}
		}
	}
	blocks += u.dirs + (u.dirEntryBytes+b-1)/b + u.longLinkTargets
	inodes := u.files + u.dirs + u.symlinks + u.others + 16
	inodes = int64(float64(inodes)*1.2*grow) + 64
	if int64(opts.Inodes) > inodes {
		inodes = int64(opts.Inodes)
	}
	payload := int64(float64(blocks*b)*1.2*grow) + 64<<10
	// Metadata: inode tables, two bitmaps and a superblock/descriptor copy
	// per group, the boot block, and the 5% reserved for root.
	perGroup := 8 * b * b
	groups := (payload+perGroup-1)/perGroup + 1
	meta := inodes*isz + groups*4*b + 4096
	size := int64(float64(payload+meta) / 0.95)
	// Room for more inodes than the minimum: one per 16 KiB, as the
	// default for large filesystems.
	if opts.Inodes == 0 {
		n := max(inodes, size/16384)
		size += (n - inodes) * isz
		opts.Inodes = uint32(n)
	}
	size = (size + b - 1) / b * b
	if size < 256*b {
		size = 256 * b
	}
	return size, opts
}

// ext2FormatDefaults are the options mkfs starts from.
func ext2FormatDefaults() ext2.FormatOptions { return ext2.FormatOptions{InodeSize: 256} }
