package fusemount

import (
	"context"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// Extended attributes are read from the inode (package ext2: in-inode
// attributes of large inodes and the attribute block, POSIX ACLs in the
// VFS xattr format) and written as Linux's ext2 writes them
// (ext2.FS.SetXattr: the attribute block, copied first if shared; an
// attribute already in the inode body changed where it is).
//
// The mount does not ask for FUSE_POSIX_ACL, so the kernel reads POSIX ACLs
// through getxattr for getfacl and getfattr but does not enforce them in
// its permission checks (default_permissions looks at the mode bits
// only). It checks and converts an ACL that setfacl sets (posix_acl_valid,
// vfs_set_acl) and passes it on as an xattr; storing it, package ext2 sets
// the mode's permission bits from it as ext2_set_acl does. The kernel
// sees the new mode at the next stat although the attribute timeout is
// long: after a setxattr or removexattr it marks the inode's ctime stale
// (fs/fuse/dir.c:fuse_update_ctime), and a stat asks for ctime. The
// set-group-ID bit is not cleared on an ACL change (the kernel sends
// FUSE_SETXATTR_ACL_KILL_SGID only to servers with FUSE_POSIX_ACL).
var (
	_ gofs.NodeGetxattrer    = (*node)(nil)
	_ gofs.NodeListxattrer   = (*node)(nil)
	_ gofs.NodeSetxattrer    = (*node)(nil)
	_ gofs.NodeRemovexattrer = (*node)(nil)
)

// Getxattr copies the value of attribute attr into dest and returns its
// length (fs/xattr.c:vfs_getxattr through fs/ext2/xattr.c:ext2_xattr_get).
// A dest too small for the value gets ERANGE and the value's length,
// which is how a caller with an empty buffer learns the size. A missing
// attribute is ENODATA, a damaged attribute block EIO.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	ino, e := n.acquire()
	if e != 0 {
		return 0, e
	}
	defer n.m.fs.Iput(ino)
	v, err := n.m.fs.GetXattr(ino, attr)
	if err != nil {
		return 0, errno(err)
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Listxattr copies the attribute names, each ending in a NUL byte, into
// dest and returns their length (fs/ext2/xattr.c:ext2_xattr_list), or
// ERANGE and the length needed when dest is too small. As in Linux, the
// trusted.* names are shown only to a caller with CAP_SYS_ADMIN, here
// taken to be uid 0.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	ino, e := n.acquire()
	if e != 0 {
		return 0, e
	}
	defer n.m.fs.Iput(ino)
	names, err := n.m.fs.ListXattr(ino)
	if err != nil {
		return 0, errno(err)
	}
	uid, _ := caller(ctx)
	var b []byte
	for _, name := range names {
		if uid != 0 && strings.HasPrefix(name, "trusted.") {
			continue
		}
		b = append(b, name...)
		b = append(b, 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// Setxattr sets attribute attr to data (fs/xattr.c:vfs_setxattr through
// fs/ext2/xattr.c:ext2_xattr_set); flags are XATTR_CREATE (EEXIST if the
// attribute exists) and XATTR_REPLACE (ENODATA if it does not). No room
// left in the attribute block is ENOSPC, a name in no namespace ext2
// stores EOPNOTSUPP, a read-only mount EROFS.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return n.changeXattr(attr, data, flags, false)
}

// Removexattr removes attribute attr (vfs_removexattr): ENODATA if it is
// not there, except a POSIX ACL, whose removal succeeds either way as in
// Linux.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.changeXattr(attr, nil, 0, true)
}

func (n *node) changeXattr(attr string, data []byte, flags uint32, remove bool) syscall.Errno {
	if n.m.readOnly {
		return syscall.EROFS
	}
	ino, e := n.acquire()
	if e != 0 {
		return e
	}
	defer n.m.fs.Iput(ino)
	var err error
	if remove {
		err = n.m.fs.RemoveXattr(ino, attr)
	} else {
		if data == nil {
			data = []byte{}
		}
		err = n.m.fs.SetXattr(ino, attr, data, int(flags))
	}
	return errno(err)
}
