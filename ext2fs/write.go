package ext2fs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2/layout"
)

// The os-style methods of FS. Names are os-style (see the package
// documentation): absolute or relative to the root, cleaned with
// path.Clean. New files get the owner of Options.Owner (default: the
// calling process's uid and gid) and the permission bits given, with no
// umask applied.

// owner returns the owner of new files.
func (f *FS) owner() (uid, gid uint32) {
	if f.own != nil {
		return f.own.UID, f.own.GID
	}
	return uint32(os.Getuid()), uint32(os.Getgid())
}

// Create creates or truncates the named file, as os.Create: mode 0666,
// opened read-write.
func (f *FS) Create(name string) (*File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// OpenFile opens the named file as os.OpenFile does, with flag a
// combination of os.O_RDONLY, O_WRONLY or O_RDWR with O_CREATE, O_EXCL,
// O_TRUNC and O_APPEND (other flags are ignored). With O_CREATE a
// missing file is created with the permission bits of perm; with
// O_CREATE|O_EXCL an existing name (even a symbolic link) fails with
// fs.ErrExist. A final symbolic link is followed, also to create its
// missing target. Directories can be opened read-only, for ReadDir.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	rel, err := osName(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	wantWrite := flag&(os.O_WRONLY|os.O_RDWR) != 0 || flag&os.O_TRUNC != 0
	if wantWrite || flag&os.O_CREATE != 0 {
		if err := f.checkWritable(); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	var ino *ext2.Inode
	if flag&os.O_CREATE != 0 {
		ino, err = f.openCreate(rel, flag, perm)
	} else {
		ino, err = f.walk(rel, true)
	}
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	if ino.IsDir() && wantWrite {
		f.fs.Iput(ino)
		return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
	}
	file, err := f.newFile(name, ino, flag)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	if flag&os.O_TRUNC != 0 && file.ef != nil {
		if err := file.ef.Truncate(0); err != nil {
			file.Close()
			return nil, pathErr("open", name, err)
		}
	}
	return file, nil
}

// openCreate finds or creates rel for OpenFile with O_CREATE and
// returns its inode with a reference.
func (f *FS) openCreate(rel string, flag int, perm fs.FileMode) (*ext2.Inode, error) {
	for hops := 0; ; hops++ {
		if hops > maxSymlinks {
			return nil, errLoop
		}
		if rel == "." {
			if flag&os.O_EXCL != 0 {
				return nil, errExist
			}
			return f.walk(rel, true)
		}
		dir, base, err := f.walkParent(rel)
		if err != nil {
			return nil, err
		}
		ino, err := f.step(dir, base)
		switch {
		case err == nil && flag&os.O_EXCL != 0:
			f.fs.Iput(ino)
			f.fs.Iput(dir)
			return nil, errExist
		case err == nil && ino.IsSymlink():
			// Follow the link, creating its target if missing
			// (open(2) with O_CREAT on a dangling link).
			target, err := f.fs.ReadLink(ino)
			f.fs.Iput(ino)
			f.fs.Iput(dir)
			if err != nil {
				return nil, err
			}
			if target == "" {
				return nil, errnoError(syscall.ENOENT, "empty symbolic link")
			}
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(rel), target)
			}
			if rel, err = osName(target); err != nil {
				return nil, err
			}
			continue
		case err == nil:
			f.fs.Iput(dir)
			return ino, nil
		case !errors.Is(err, syscall.ENOENT):
			f.fs.Iput(dir)
			return nil, err
		}
		uid, gid := f.owner()
		ino, err = f.fs.Create(dir, base, extMode(perm), uid, gid)
		f.fs.Iput(dir)
		if errors.Is(err, syscall.EEXIST) && flag&os.O_EXCL == 0 {
			continue // created by someone else meanwhile: open it
		}
		return ino, err
	}
}

// parentOp resolves the parent of an os-style name for a change and
// calls fn with it.
func (f *FS) parentOp(name string, fn func(dir *ext2.Inode, base string) error) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	rel, err := osName(name)
	if err != nil {
		return err
	}
	dir, base, err := f.walkParent(rel)
	if err != nil {
		return err
	}
	defer f.fs.Iput(dir)
	return fn(dir, base)
}

// Mkdir creates a directory with the permission bits of perm, as
// os.Mkdir.
func (f *FS) Mkdir(name string, perm fs.FileMode) error {
	rel, err := osName(name)
	if err == nil && rel == "." {
		err = errExist
	}
	if err == nil {
		err = f.parentOp(rel, func(dir *ext2.Inode, base string) error {
			uid, gid := f.owner()
			ino, err := f.fs.Mkdir(dir, base, extMode(perm), uid, gid)
			if err == nil {
				f.fs.Iput(ino)
			}
			return err
		})
	}
	return pathErr("mkdir", name, err)
}

// MkdirAll creates a directory and every missing parent, as
// os.MkdirAll; an existing directory is not an error.
func (f *FS) MkdirAll(name string, perm fs.FileMode) error {
	rel, err := osName(name)
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	if fi, err := f.Stat(rel); err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: name, Err: errNotDir}
	}
	if parent := path.Dir(rel); parent != "." {
		if err := f.MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := f.Mkdir(rel, perm); err != nil {
		// Made meanwhile by someone else?
		if fi, serr := f.Stat(rel); serr == nil && fi.IsDir() {
			return nil
		}
		return pathErr("mkdir", name, unwrapPath(err))
	}
	return nil
}

// Remove removes the named file or empty directory, as os.Remove.
func (f *FS) Remove(name string) error {
	err := f.parentOp(name, func(dir *ext2.Inode, base string) error {
		err := f.fs.Unlink(dir, base)
		if errors.Is(err, syscall.EISDIR) {
			err = f.fs.Rmdir(dir, base)
		}
		return err
	})
	return pathErr("remove", name, err)
}

// RemoveAll removes name and everything below it, as os.RemoveAll: a
// missing name is not an error. Symbolic links are removed, not
// followed. The root cannot be removed (fs.ErrInvalid).
func (f *FS) RemoveAll(name string) error {
	rel, err := osName(name)
	if err == nil && rel == "." {
		err = errnoError(syscall.EINVAL, "RemoveAll of the root")
	}
	if err == nil {
		err = f.checkWritable()
	}
	if err != nil {
		return &fs.PathError{Op: "removeall", Path: name, Err: err}
	}
	return f.removeAll(rel)
}

func (f *FS) removeAll(rel string) error {
	fi, err := f.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		for {
			d, err := f.OpenFile(rel, os.O_RDONLY, 0)
			if err != nil {
				return err
			}
			names, err := d.Readdirnames(-1)
			d.Close()
			if err != nil {
				return err
			}
			if len(names) == 0 {
				break
			}
			for _, n := range names {
				if err := f.removeAll(path.Join(rel, n)); err != nil {
					return err
				}
			}
		}
	}
	err = f.Remove(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Rename moves oldname to newname, as os.Rename: an existing newname is
// replaced if it is a file (by a file) or an empty directory (by a
// directory). Moving a directory into its own subtree fails with
// fs.ErrInvalid (EINVAL). Errors are *os.LinkError.
func (f *FS) Rename(oldname, newname string) error {
	err := f.parentOp(oldname, func(oldDir *ext2.Inode, oldBase string) error {
		return f.parentOp(newname, func(newDir *ext2.Inode, newBase string) error {
			return f.fs.Rename(oldDir, oldBase, newDir, newBase, 0)
		})
	})
	return linkErr("rename", oldname, newname, err)
}

// Symlink makes newname a symbolic link to oldname, as os.Symlink. The
// target is stored as given. Errors are *os.LinkError.
func (f *FS) Symlink(oldname, newname string) error {
	err := f.parentOp(newname, func(dir *ext2.Inode, base string) error {
		uid, gid := f.owner()
		ino, err := f.fs.Symlink(dir, base, oldname, uid, gid)
		if err == nil {
			f.fs.Iput(ino)
		}
		return err
	})
	return linkErr("symlink", oldname, newname, err)
}

// Link makes newname a hard link to oldname, as os.Link (a final
// symbolic link in oldname is not followed: the link is linked).
// Directories cannot be linked (fs.ErrPermission). Errors are
// *os.LinkError.
func (f *FS) Link(oldname, newname string) error {
	err := f.checkWritable()
	var ino *ext2.Inode
	if err == nil {
		var rel string
		if rel, err = osName(oldname); err == nil {
			ino, err = f.walk(rel, false)
		}
	}
	if err == nil {
		err = f.parentOp(newname, func(dir *ext2.Inode, base string) error {
			return f.fs.Link(ino, dir, base)
		})
		f.fs.Iput(ino)
	}
	return linkErr("link", oldname, newname, err)
}

// Readlink returns the target of the named symbolic link, as
// os.Readlink (an os-style name; ReadLink is the io/fs one).
func (f *FS) Readlink(name string) (string, error) {
	rel, err := osName(name)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return f.readlink(name, rel)
}

// walkWritable resolves name for a change of its inode: the filesystem
// must be writable. The caller puts the inode (Iput) when done; errors
// are *fs.PathError for op.
func (f *FS) walkWritable(op, name string, follow bool) (*ext2.Inode, error) {
	if err := f.checkWritable(); err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	rel, err := osName(name)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	ino, err := f.walk(rel, follow)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	return ino, nil
}

// change resolves name and calls fn with its inode locked.
func (f *FS) change(op, name string, follow bool, fn func(ino *ext2.Inode) error) error {
	ino, err := f.walkWritable(op, name, follow)
	if err != nil {
		return err
	}
	defer f.fs.Iput(ino)
	ino.Lock()
	defer ino.Unlock()
	if f.fs.ReadOnly() {
		return &fs.PathError{Op: op, Path: name, Err: errReadOnly}
	}
	return pathErr(op, name, fn(ino))
}

// Chmod sets the permission bits (with setuid, setgid and sticky) of the
// named file, following symbolic links, as os.Chmod.
func (f *FS) Chmod(name string, mode fs.FileMode) error {
	return f.change("chmod", name, true, func(ino *ext2.Inode) error {
		now := time.Now()
		ino.UpdateLocked(func(d *layout.Inode) {
			d.Mode = d.Mode&layout.ModeFmt | extMode(mode)
			setTime(&d.Ctime, &d.CtimeExtra, now)
		})
		return nil
	})
}

// Chown sets the owner of the named file, following symbolic links, as
// os.Chown: a uid or gid of -1 is left unchanged.
func (f *FS) Chown(name string, uid, gid int) error {
	return f.change("chown", name, true, chown(uid, gid))
}

// Lchown is Chown of a symbolic link itself.
func (f *FS) Lchown(name string, uid, gid int) error {
	return f.change("lchown", name, false, chown(uid, gid))
}

func chown(uid, gid int) func(ino *ext2.Inode) error {
	return func(ino *ext2.Inode) error {
		now := time.Now()
		ino.UpdateLocked(func(d *layout.Inode) {
			if uid != -1 {
				d.SetUID(uint32(uid))
			}
			if gid != -1 {
				d.SetGID(uint32(gid))
			}
			setTime(&d.Ctime, &d.CtimeExtra, now)
		})
		return nil
	}
}

// Chtimes sets the access and modification times of the named file,
// following symbolic links, as os.Chtimes: a zero time.Time leaves that
// time unchanged. The change time becomes now.
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	return f.change("chtimes", name, true, chtimes(atime, mtime))
}

// Lchtimes is Chtimes of a symbolic link itself.
func (f *FS) Lchtimes(name string, atime, mtime time.Time) error {
	return f.change("lchtimes", name, false, chtimes(atime, mtime))
}

func chtimes(atime, mtime time.Time) func(ino *ext2.Inode) error {
	return func(ino *ext2.Inode) error {
		now := time.Now()
		ino.UpdateLocked(func(d *layout.Inode) {
			if !atime.IsZero() {
				setTime(&d.Atime, &d.AtimeExtra, atime)
			}
			if !mtime.IsZero() {
				setTime(&d.Mtime, &d.MtimeExtra, mtime)
			}
			setTime(&d.Ctime, &d.CtimeExtra, now)
		})
		return nil
	}
}

// setTime stores t in an inode time and its _extra field (nanoseconds and
// epoch bits; kept only by inodes large enough to have it).
func setTime(sec, extra *uint32, t time.Time) {
	s := t.Unix()
	*sec = uint32(s)
	*extra = uint32(t.Nanosecond())<<2 | uint32((s-int64(int32(uint32(s))))>>32)&3
}

// Truncate changes the size of the named regular file, following
// symbolic links, as os.Truncate.
func (f *FS) Truncate(name string, size int64) error {
	if err := f.checkWritable(); err != nil {
		return &fs.PathError{Op: "truncate", Path: name, Err: err}
	}
	file, err := f.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return &fs.PathError{Op: "truncate", Path: name, Err: unwrapPath(err)}
	}
	err = file.Truncate(size)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	return err
}

// Mknod makes a special file: mode's type is fs.ModeDevice (a block
// device), fs.ModeDevice|fs.ModeCharDevice (a character device),
// fs.ModeNamedPipe, fs.ModeSocket, or none (an empty regular file), with
// its permission bits. dev is the device number of a device node in
// Linux's encoding (unix.Mkdev, InodeInfo.Rdev).
func (f *FS) Mknod(name string, mode fs.FileMode, dev uint64) error {
	var typ uint16
	switch mode.Type() {
	case 0:
		typ = layout.ModeReg
	case fs.ModeDevice | fs.ModeCharDevice:
		typ = layout.ModeChr
	case fs.ModeDevice:
		typ = layout.ModeBlk
	case fs.ModeNamedPipe:
		typ = layout.ModeFifo
	case fs.ModeSocket:
		typ = layout.ModeSock
	default:
		return &fs.PathError{Op: "mknod", Path: name, Err: errnoError(syscall.EINVAL, "mknod of file type "+mode.Type().String())}
	}
	err := f.parentOp(name, func(dir *ext2.Inode, base string) error {
		uid, gid := f.owner()
		major, minor := splitDev(dev)
		ino, err := f.fs.Mknod(dir, base, typ|extMode(mode), major, minor, uid, gid)
		if err == nil {
			f.fs.Iput(ino)
		}
		return err
	})
	return pathErr("mknod", name, err)
}
