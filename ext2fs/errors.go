package ext2fs

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/mpagefs/mpage/ext2"
)

// edgeError adds the io/fs and errno meanings an ext2 error lacks to the
// chain, keeping the ext2 error (and its message) as the first cause.
type edgeError struct {
	err  error
	also []error
}

func (e *edgeError) Error() string   { return e.err.Error() }
func (e *edgeError) Unwrap() []error { return append([]error{e.err}, e.also...) }

// errnoError is a bare errno with our own message.
func errnoError(errno syscall.Errno, msg string) error {
	return mapErr(&edgeError{err: errors.New("ext2fs: " + msg), also: []error{errno}})
}

// mapErr makes an error of package ext2 answer errors.Is for the io/fs
// sentinel its errno stands for: EINVAL is fs.ErrInvalid as well.
// ENOENT, EEXIST, ENOTEMPTY and EPERM already answer for fs.ErrNotExist,
// fs.ErrExist and fs.ErrPermission through syscall.Errno.Is, and
// ext2.ErrReadOnly and ext2.ErrClosed wrap EROFS and fs.ErrClosed.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var also []error
	if errors.Is(err, syscall.EINVAL) && !errors.Is(err, fs.ErrInvalid) {
		also = append(also, fs.ErrInvalid)
	}
	if len(also) == 0 {
		return err
	}
	return &edgeError{err: err, also: also}
}

// pathErr wraps err (mapped) in an *fs.PathError.
func pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == op && pe.Path == name {
		return err
	}
	return &fs.PathError{Op: op, Path: name, Err: mapErr(err)}
}

// linkErr wraps err (mapped) in an *os.LinkError.
func linkErr(op, oldname, newname string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &os.LinkError{Op: op, Old: oldname, New: newname, Err: mapErr(err)}
}

var (
	errInvalidName = errnoError(syscall.EINVAL, "invalid name")
	errNameTooLong = errnoError(syscall.ENAMETOOLONG, "file name too long")
	errLoop        = errnoError(syscall.ELOOP, "too many levels of symbolic links")
	errNotDir      = errnoError(syscall.ENOTDIR, "not a directory")
	errIsDir       = errnoError(syscall.EISDIR, "is a directory")
	errExist       = errnoError(syscall.EEXIST, "file exists")
	errBadFD       = errnoError(syscall.EBADF, "file not open for this operation")
	errReadOnly    = mapErr(ext2.ErrReadOnly)
	errClosed      = fs.ErrClosed
)

var errInvalidLink = errnoError(syscall.EINVAL, "not a symbolic link")
