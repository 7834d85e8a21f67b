package ext2fs

import "github.com/mpagefs/mpage/ext2/layout"

// Extent is a run of file blocks stored on contiguous device blocks, in
// units of the filesystem's block size.
type Extent struct {
	Logical  int64 // first file block
	Physical int64 // its device block
	Count    int64 // blocks in the run
}

// maxMapRun bounds the blocks asked of one MapBlocks call.
const maxMapRun = 1 << 20

// BlockMap returns where the named file's data lives on the device: its
// runs of blocks contiguous both in the file and on the device, in file
// order, holes omitted (what FIEMAP reports, or debugfs stat's BLOCKS
// list without the indirect blocks). It does not follow a final symbolic
// link: a slow symlink has the block holding its target, a fast symlink,
// a device node, a fifo or a socket none. name may be an io/fs name or an
// os-style one. The map is read run by run, each under the inode's block
// map lock, so a file being written meanwhile may show a mix of before
// and after.
func (f *FS) BlockMap(name string) ([]Extent, error) {
	rel, err := statName("blockmap", name)
	if err != nil {
		return nil, err
	}
	ino, err := f.walk(rel, false)
	if err != nil {
		return nil, pathErr("blockmap", name, err)
	}
	defer f.fs.Iput(ino)
	st := ino.Stat()
	switch st.Mode & layout.ModeFmt {
	case layout.ModeReg, layout.ModeDir, layout.ModeLnk:
	default:
		return nil, nil
	}
	bs := int64(f.fs.BlockSize())
	data := st.Blocks // i_blocks less the extended attribute block
	if st.FileACL != 0 {
		data -= min(data, uint64(bs>>9))
	}
	if data == 0 {
		// Empty, all holes, or a fast symlink, whose i_block holds its
		// target rather than block numbers
		// (ext2_inode_is_fast_symlink).
		return nil, nil
	}
	nblocks := (st.Size + bs - 1) / bs
	var out []Extent
	for ib := int64(0); ib < nblocks; {
		blk, n, err := ino.MapBlocks(ib, int(min(nblocks-ib, maxMapRun)))
		if err != nil {
			return nil, pathErr("blockmap", name, err)
		}
		if blk != 0 {
			if k := len(out) - 1; k >= 0 && out[k].Logical+out[k].Count == ib && out[k].Physical+out[k].Count == blk {
				out[k].Count += int64(n)
			} else {
				out = append(out, Extent{Logical: ib, Physical: blk, Count: int64(n)})
			}
		}
		ib += int64(n)
	}
	return out, nil
}
