package fusemount

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/mpagefs/mpage/ext2"
)

// errno maps an error of ext2 or ext2fs to the errno the kernel gets. It
// is the only place errors become errno values. It looks through wrapped
// errors:
// an errno anywhere in the chain wins (ext2fs wraps the exact one, e.g.
// ENOTEMPTY, which is also fs.ErrExist), then corruption is EIO, then the
// io/fs sentinels, and anything else is EIO.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if errors.Is(err, ext2.ErrCorrupt) {
		// Whatever errno a corruption error carries (ENOENT for a
		// bad entry, say), the caller must learn the filesystem is
		// damaged, as Linux's ext2 answers with EIO.
		return syscall.EIO
	}
	var e syscall.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, fs.ErrPermission):
		return syscall.EPERM
	case errors.Is(err, fs.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, fs.ErrClosed):
		return syscall.EBADF
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	return syscall.EIO
}
