package ext2fs

import (
	"io/fs"
	"os"

	"github.com/mpagefs/mpage/ext2"
)

// OpenTmpfile makes a regular file with the permission bits of perm in
// the directory dir and opens it read-write, as open(2) with O_TMPFILE
// does (package ext2's Tmpfile, after Linux's ext2_tmpfile): the file
// has no name and no link. Write it, then give it a name with LinkTo, so
// that it appears whole or not at all; a file still without a name when
// it is closed is deleted, its inode and blocks freed. It is owned as
// files Create makes are, and takes the group of a set-group-ID dir.
//
// A final symbolic link in dir is followed. The File's Name is dir.
// Errors are *fs.PathError: fs.ErrNotExist for a missing dir,
// syscall.ENOTDIR when it is not a directory, syscall.ENOSPC when no
// inode is free, syscall.EROFS on a read-only filesystem.
func (f *FS) OpenTmpfile(dir string, perm fs.FileMode) (*File, error) {
	const op = "open"
	rel, err := osName(dir)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: dir, Err: err}
	}
	if err := f.checkWritable(); err != nil {
		return nil, &fs.PathError{Op: op, Path: dir, Err: err}
	}
	d, err := f.walk(rel, true)
	if err != nil {
		return nil, pathErr(op, dir, err)
	}
	uid, gid := f.owner()
	ino, err := f.fs.Tmpfile(d, extMode(perm), uid, gid)
	f.fs.Iput(d)
	if err != nil {
		return nil, pathErr(op, dir, err)
	}
	file, err := f.newFile(dir, ino, os.O_RDWR)
	if err != nil {
		return nil, pathErr(op, dir, err)
	}
	return file, nil
}

// LinkTo makes newname (an os-style name) a name of the open file, as
// linkat(2) with AT_EMPTY_PATH does: a file made by OpenTmpfile gets its
// first name, after which it is an ordinary file that stays when closed;
// any other open file gets another hard link. A file whose last name was
// removed while it was open cannot be linked again (fs.ErrNotExist, as
// Linux's vfs_link answers ENOENT), nor can a directory
// (fs.ErrPermission); an existing newname fails with fs.ErrExist. Errors
// are *os.LinkError, as Link's, with the File's Name as the old name.
func (file *File) LinkTo(newname string) error {
	if err := file.check("link"); err != nil {
		return linkErr("link", file.name, newname, err)
	}
	err := file.fsys.parentOp(newname, func(dir *ext2.Inode, base string) error {
		return file.fsys.fs.Link(file.ino, dir, base)
	})
	return linkErr("link", file.name, newname, err)
}
