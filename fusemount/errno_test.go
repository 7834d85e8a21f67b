package fusemount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/ext2"
)

func TestErrno(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"bare ErrNotExist", fs.ErrNotExist, syscall.ENOENT},
		{"path error over ErrNotExist", &fs.PathError{Op: "open", Path: "/a", Err: fs.ErrNotExist}, syscall.ENOENT},
		{"wrapped twice ErrExist", fmt.Errorf("outer: %w", &fs.PathError{Op: "mkdir", Path: "/a", Err: fs.ErrExist}), syscall.EEXIST},
		{"ErrPermission", fmt.Errorf("x: %w", fs.ErrPermission), syscall.EPERM},
		{"ErrInvalid", &os.LinkError{Op: "rename", Old: "/a", New: "/a/b", Err: fs.ErrInvalid}, syscall.EINVAL},
		{"ErrClosed", fmt.Errorf("close: %w", fs.ErrClosed), syscall.EBADF},
		// An errno in the chain is more precise than the io/fs class
		// it belongs to.
		{"ENOTEMPTY is not EEXIST", &fs.PathError{Op: "remove", Path: "/d", Err: syscall.ENOTEMPTY}, syscall.ENOTEMPTY},
		{"EACCES is not EPERM", fmt.Errorf("x: %w", syscall.EACCES), syscall.EACCES},
		{"link error over ENOSPC", &os.LinkError{Op: "link", Old: "a", New: "b", Err: fmt.Errorf("ext2: %w", syscall.ENOSPC)}, syscall.ENOSPC},
		{"errno among joined errors", errors.Join(errors.New("first"), fmt.Errorf("second: %w", syscall.EROFS)), syscall.EROFS},
		{"corruption is EIO even over ENOENT", fmt.Errorf("lookup: %w", errors.Join(ext2.ErrCorrupt, syscall.ENOENT)), syscall.EIO},
		{"unknown error", errors.New("something else"), syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errno(tt.err); got != tt.want {
				t.Errorf("errno(%v) = %v (%d), want %v (%d)", tt.err, got, int(got), tt.want, int(tt.want))
			}
		})
	}
}
