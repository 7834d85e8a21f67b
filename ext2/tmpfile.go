package ext2

import "github.com/mpagefs/mpage/ext2/layout"

// Tmpfile makes a regular file with the permission bits of mode that is
// in no directory, mirroring fs/ext2/namei.c:ext2_tmpfile() with what
// the VFS adds around it (vfs_tmpfile and d_tmpfile in fs/namei.c and
// fs/dcache.c): the inode is allocated near dir as Create's would be
// (ext2_new_inode: the parent's group, the flags dir passes on, and
// dir's group when dir is set-group-ID, as inode_init_owner gives it),
// but no entry is made for it and it keeps a link count of 0. It is
// marked linkable (I_LINKABLE): Link may give it its first name, after
// which it is an ordinary file. Until then it lives as a file unlinked
// while open does: the returned reference (give it back with Iput, or
// pass it to Open and Iput after) keeps it, and when the last reference
// goes its blocks and its inode are freed (ext2_evict_inode).
//
// As in Linux's ext2 (whose ext2_new_inode does not look at the
// directory's link count), a directory that was removed may still hold
// a tmpfile: the file can then be linked only into another directory.
// The errors are Create's: ErrReadOnly (EROFS), ErrNoSpace (ENOSPC) when
// no inode is free, ErrCrossDevice and ErrNotDir for a bad dir.
func (fs *FS) Tmpfile(dir *Inode, mode uint16, uid, gid uint32) (*Inode, error) {
	if err := fs.writableErr(); err != nil {
		return nil, err
	}
	if err := fs.checkParent(dir); err != nil {
		return nil, err
	}
	mode = layout.ModeReg | mode&layout.ModePerm
	dir.mu.RLock()
	if dir.disk.Mode&layout.ModeSetgid != 0 {
		gid = dir.disk.GID()
	}
	dir.mu.RUnlock()
	ino, err := fs.NewInode(dir, mode, uid, gid)
	if err != nil {
		return nil, err
	}
	ino.mu.Lock()
	ino.linkable = true
	ino.mu.Unlock()
	return ino, nil
}
