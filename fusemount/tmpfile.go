package fusemount

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

var _ gofs.NodeTmpfiler = (*node)(nil)

// Tmpfile answers open(2) with O_TMPFILE in this directory (FUSE_TMPFILE,
// which the kernel's fuse_tmpfile sends through the code of CREATE): a
// regular file owned by the caller, made by package ext2's Tmpfile (Linux
// ext2_tmpfile), in no directory and with no links, opened for the
// request's flags. It is answered as Create is, with a node and an open
// handle, but go-fuse adds the node to no directory. The node holds the
// inode as any node does, so the file lives until its last close and the
// kernel's FORGET, and is deleted then unless it was given a name: the
// kernel lets linkat(2) link it (the VFS marks the open file I_LINKABLE
// unless O_EXCL was given), which reaches Link, whose ext2 call accepts
// the one first link of a tmpfile. The kernel has checked write and
// search permission on the directory (default_permissions) and applied
// the umask to mode; a read-only mount answers EROFS.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	dir, e := n.beginChange()
	if e != 0 {
		return nil, nil, 0, e
	}
	defer n.m.fs.Iput(dir)
	fsys := n.m.fs
	uid, gid := caller(ctx)
	ino, err := fsys.Tmpfile(dir, uint16(mode&0o7777), uid, gid)
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	// New and empty: nothing to truncate.
	h, e := n.m.open(ino, flags&^syscall.O_TRUNC)
	if e != 0 {
		fsys.Iput(ino) // no links: deleted
		return nil, nil, 0, e
	}
	in := n.child(ctx, ino, out)
	h.in = in
	return in, h, openFlags, 0
}
