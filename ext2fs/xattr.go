package ext2fs

import (
	"io/fs"

	"github.com/mpagefs/mpage/ext2"
)

// Listxattr returns the full names of the extended attributes of the
// named file ("user.comment", "security.selinux", "system.posix_acl_access",
// ...), following a final symbolic link, as listxattr(2) does. name is an
// os-style name. The list is that of ext2.FS.ListXattr: no permission or
// capability filtering (trusted.* is listed too), in-inode attributes
// first, then those of the attribute block.
func (f *FS) Listxattr(name string) ([]string, error) {
	return f.listxattr("listxattr", name, true)
}

// Llistxattr is Listxattr without following a final symbolic link
// (llistxattr(2)).
func (f *FS) Llistxattr(name string) ([]string, error) {
	return f.listxattr("llistxattr", name, false)
}

// Getxattr returns the value of the extended attribute attr of the named
// file, following a final symbolic link, as getxattr(2) does. name is an
// os-style name. A missing attribute is an *fs.PathError wrapping
// syscall.ENODATA; a name in no known namespace wraps syscall.EOPNOTSUPP
// (and errors.ErrUnsupported). POSIX ACLs come in the kernel's xattr
// format (see ext2.FS.GetXattr).
func (f *FS) Getxattr(name, attr string) ([]byte, error) {
	return f.getxattr("getxattr", name, attr, true)
}

// Lgetxattr is Getxattr without following a final symbolic link
// (lgetxattr(2)).
func (f *FS) Lgetxattr(name, attr string) ([]byte, error) {
	return f.getxattr("lgetxattr", name, attr, false)
}

func (f *FS) listxattr(op, name string, follow bool) ([]string, error) {
	rel, err := osName(name)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	ino, err := f.walk(rel, follow)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	defer f.fs.Iput(ino)
	names, err := f.fs.ListXattr(ino)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	return names, nil
}

func (f *FS) getxattr(op, name, attr string, follow bool) ([]byte, error) {
	rel, err := osName(name)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	ino, err := f.walk(rel, follow)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	defer f.fs.Iput(ino)
	v, err := f.fs.GetXattr(ino, attr)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	return v, nil
}

// Flags of Setxattr, with the values of setxattr(2)'s XATTR_CREATE and
// XATTR_REPLACE (unix.XATTR_CREATE and unix.XATTR_REPLACE may be passed
// as well).
const (
	// XattrCreate fails with EEXIST if the attribute exists.
	XattrCreate = ext2.XattrCreate
	// XattrReplace fails with ENODATA if the attribute does not exist.
	XattrReplace = ext2.XattrReplace
)

// Setxattr sets the extended attribute attr of the named file to data,
// following a final symbolic link, as setxattr(2) does; flags is 0,
// XattrCreate or XattrReplace. name is an os-style name. Attributes go
// to the inode's attribute block as Linux's ext2 writes them (see
// ext2.FS.SetXattr); POSIX ACLs ("system.posix_acl_access",
// "system.posix_acl_default") are given in the kernel's xattr format, as
// Getxattr returns them, and setting the access ACL sets the mode's
// permission bits from it.
//
// Errors are *fs.PathError values wrapping the errno setxattr(2) gives:
// syscall.EEXIST (XattrCreate, the attribute exists), syscall.ENODATA
// (XattrReplace, it does not), syscall.ENOSPC (no room in the attribute
// block, a value larger than a block, or no free block), syscall.ERANGE
// (an empty name or one of more than 255 bytes), syscall.E2BIG (a value
// over 64 KiB), syscall.EOPNOTSUPP and errors.ErrUnsupported (a name in
// no namespace ext2 stores), syscall.EINVAL and fs.ErrInvalid (an empty
// name after the prefix, bad flags, a malformed ACL), syscall.EPERM
// (immutable or append-only file; user.* on anything but a regular file
// or directory), syscall.EACCES (a default ACL on a non-directory),
// syscall.EROFS on a read-only FS, fs.ErrNotExist for a missing file.
// No caller permission check is made (trusted.* included).
func (f *FS) Setxattr(name, attr string, data []byte, flags int) error {
	return f.setxattr("setxattr", name, attr, data, flags, true, false)
}

// Lsetxattr is Setxattr without following a final symbolic link
// (lsetxattr(2)); a symbolic link takes trusted.* and security.*
// attributes but not user.* (EPERM) nor ACLs (EOPNOTSUPP).
func (f *FS) Lsetxattr(name, attr string, data []byte, flags int) error {
	return f.setxattr("lsetxattr", name, attr, data, flags, false, false)
}

// Removexattr removes the extended attribute attr of the named file,
// following a final symbolic link, as removexattr(2) does. A missing
// attribute is an *fs.PathError wrapping syscall.ENODATA, except a
// missing POSIX ACL, whose removal succeeds as in Linux. Other errors are
// those of Setxattr.
func (f *FS) Removexattr(name, attr string) error {
	return f.setxattr("removexattr", name, attr, nil, 0, true, true)
}

// Lremovexattr is Removexattr without following a final symbolic link
// (lremovexattr(2)).
func (f *FS) Lremovexattr(name, attr string) error {
	return f.setxattr("lremovexattr", name, attr, nil, 0, false, true)
}

// setxattr does the Setxattr and Removexattr calls.
func (f *FS) setxattr(op, name, attr string, data []byte, flags int, follow, remove bool) error {
	ino, err := f.walkWritable(op, name, follow)
	if err != nil {
		return err
	}
	defer f.fs.Iput(ino)
	if remove {
		err = f.fs.RemoveXattr(ino, attr)
	} else {
		err = f.fs.SetXattr(ino, attr, data, flags)
	}
	return pathErr(op, name, err)
}
