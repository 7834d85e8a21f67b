package ext2fs

import (
	"io/fs"
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
