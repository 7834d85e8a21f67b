package fusemount

import (
	"context"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// Extended attributes are read from the inode (package ext2: in-inode
// attributes of large inodes and the attribute block, POSIX ACLs in the
// VFS xattr format). Writing them is not implemented: setxattr and
// removexattr fail with EOPNOTSUPP. The server answers the first of each
// with ENOSYS, which the kernel turns into EOPNOTSUPP and remembers for
// the mount (fc->no_setxattr, fc->no_removexattr in fs/fuse/xattr.c), so
// it answers every later one itself: cp -a sets system.posix_acl_access
// on every file it copies, and each answer from us was one more round
// trip per file. (Once writing is implemented, these must answer for
// real, not ENOSYS.)
//
// The mount does not ask for FUSE_POSIX_ACL, so the kernel reads POSIX ACLs
// through getxattr for getfacl and getfattr but does not enforce them in
// its permission checks (default_permissions looks at the mode bits
// only).
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

// Setxattr is not implemented yet: changing extended attributes (and
// ACLs) of an ext2 image through the mount fails with EOPNOTSUPP, which
// the kernel makes of our ENOSYS (see above).
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if n.m.readOnly {
		return syscall.EROFS
	}
	return syscall.ENOSYS
}

// Removexattr is not implemented yet (EOPNOTSUPP through ENOSYS), as
// Setxattr.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if n.m.readOnly {
		return syscall.EROFS
	}
	return syscall.ENOSYS
}
