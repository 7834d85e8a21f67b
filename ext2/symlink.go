package ext2

import (
	"fmt"

	"github.com/mpagefs/mpage/ext2/layout"
)

// fastSymlinkMax is the longest target kept in i_block: the 60 bytes of
// i_block hold the target and its terminating NUL (ext2_symlink's
// "l > sizeof(EXT2_I(inode)->i_data)").
const fastSymlinkMax = 4*layout.NBlocks - 1

// Symlink makes a symbolic link name in dir pointing at target, with
// mode 0777, mirroring fs/ext2/namei.c:ext2_symlink(): a target of up to
// 59 bytes is a fast symlink, kept in i_block (the new inode has no
// extended attribute block, so ext2_inode_is_fast_symlink will say so);
// a longer one is a slow symlink whose target fills the start of one
// data block (page_symlink; here through the buffer cache). A target of
// a block or more (it must leave room for a NUL) is ErrNameTooLong, an
// empty one ErrNotExist (ENOENT, as getname gives). Read it back with
// ReadLink.
func (fs *FS) Symlink(dir *Inode, name, target string, uid, gid uint32) (*Inode, error) {
	switch {
	case target == "":
		return nil, fmt.Errorf("%w: empty symlink target", ErrNotExist)
	case len(target)+1 > fs.blockSize:
		return nil, fmt.Errorf("%w: symlink target of %d bytes, the block holds %d", ErrNameTooLong, len(target), fs.blockSize-1)
	}
	return fs.newNode(dir, name, layout.ModeLnk|0o777, uid, gid, func(ino *Inode) error {
		if len(target) <= fastSymlinkMax {
			ino.tree.Lock()
			ino.disk.SetBlockBytes([]byte(target))
			ino.tree.Unlock()
		} else if err := fs.writeSymlinkBlockLocked(ino, target); err != nil {
			return err
		}
		ino.UpdateLocked(func(d *layout.Inode) { d.SetSize(uint64(len(target))) })
		return nil
	})
}

// writeSymlinkBlockLocked gives a slow symlink its block, holding the
// target and zeroes after it.
// Preconditions: ino.mu is held exclusively; ino has no blocks.
func (fs *FS) writeSymlinkBlockLocked(ino *Inode, target string) error {
	blk, _, err := ino.MapBlock(0, true)
	if err != nil {
		return err
	}
	fs.fillNewBlock(blk, func(b []byte) { copy(b, target) })
	return nil
}
