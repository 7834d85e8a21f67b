package ext2

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
)

// Sentinel errors of package ext2.
var (
	// ErrCorrupt is wrapped by every error that reports on-disk metadata
	// which cannot be right. Test for it with errors.Is; a *CorruptError
	// says where.
	ErrCorrupt = errors.New("ext2: filesystem is corrupt")
	// ErrUnsupported is returned by Mount for a filesystem with features
	// this package does not implement; the error names them.
	ErrUnsupported = errors.New("ext2: unsupported filesystem feature")
	// ErrReadOnly is returned for a change to a filesystem mounted
	// read-only, or remounted read-only after an error. It wraps
	// syscall.EROFS.
	ErrReadOnly = fmt.Errorf("ext2: filesystem is read-only: %w", syscall.EROFS)
	// ErrClosed is returned after Close.
	// It wraps fs.ErrClosed.
	ErrClosed = fmt.Errorf("ext2: filesystem is unmounted: %w", fs.ErrClosed)
	// ErrNoSpace is wrapped by allocation failures for lack of free blocks
	// or inodes. It wraps syscall.ENOSPC, so errors.Is(err,
	// syscall.ENOSPC) holds as well.
	ErrNoSpace = fmt.Errorf("ext2: no space left on device: %w", syscall.ENOSPC)
	// ErrFileTooBig is returned for a write or truncate beyond the
	// largest offset the block map can address (EFBIG).
	ErrFileTooBig = fmt.Errorf("ext2: file too large: %w", syscall.EFBIG)
	// ErrNotExist is returned by lookups of a name that is not there.
	ErrNotExist = fmt.Errorf("ext2: no such file or directory: %w", syscall.ENOENT)
	// ErrNotDir is returned for a path component that is not a directory.
	ErrNotDir = fmt.Errorf("ext2: not a directory: %w", syscall.ENOTDIR)
	// ErrIsDir is returned for a file operation on a directory.
	ErrIsDir = fmt.Errorf("ext2: is a directory: %w", syscall.EISDIR)
	// ErrInvalid is returned for bad arguments (negative offsets, a
	// whence SeekData cannot honour).
	ErrInvalid = fmt.Errorf("ext2: invalid argument: %w", syscall.EINVAL)
	// ErrPermission is returned for a change to an immutable file (EPERM).
	ErrPermission = fmt.Errorf("ext2: operation not permitted: %w", syscall.EPERM)
	// ErrNoData is returned by SeekData past the last data (ENXIO).
	ErrNoData = fmt.Errorf("ext2: no data at or after offset: %w", syscall.ENXIO)
)

// CorruptError describes one inconsistency found in the filesystem's
// metadata: where it is (group, inode, block, byte offset) and what was
// wrong. It wraps ErrCorrupt and, when there is one, the cause (often a
// *layout.CorruptError, so errors.Is(err, layout.ErrCorrupt) holds too).
type CorruptError struct {
	// Device names the image or device, when known.
	Device string
	// Group is the block group, or -1.
	Group int64
	// Inode is the inode number, or 0.
	Inode uint32
	// Block is the device block number, or -1.
	Block int64
	// Offset is the byte offset on the device of the bad field, or -1.
	Offset int64
	// Reason says what was wrong, with the values involved.
	Reason string
	// Err is the underlying error, or nil.
	Err error
}

// Error implements error.
func (e *CorruptError) Error() string {
	var b strings.Builder
	b.WriteString("ext2: corrupt filesystem")
	if e.Device != "" {
		fmt.Fprintf(&b, " %s", e.Device)
	}
	if e.Inode != 0 {
		fmt.Fprintf(&b, ": inode %d", e.Inode)
	}
	if e.Group >= 0 {
		fmt.Fprintf(&b, ": group %d", e.Group)
	}
	if e.Block >= 0 {
		fmt.Fprintf(&b, ": block %d", e.Block)
	}
	if e.Offset >= 0 {
		fmt.Fprintf(&b, ": byte offset %d", e.Offset)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns ErrCorrupt and the cause.
func (e *CorruptError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrCorrupt}
	}
	return []error{ErrCorrupt, e.Err}
}

// where locates a corruption report. Zero-value fields mean "not known";
// newWhere gives the "not known" values.
type where struct {
	group  int64
	ino    uint32
	block  int64
	offset int64
}

func nowhere() where { return where{group: -1, block: -1, offset: -1} }

func atGroup(g uint32) where { w := nowhere(); w.group = int64(g); return w }

func atBlock(blk int64) where { w := nowhere(); w.block = blk; return w }

// corrupt builds a *CorruptError at w, records the error against the
// filesystem as its error behaviour says (fs.handleError) and returns it.
func (fs *FS) corrupt(w where, cause error, format string, args ...any) error {
	e := &CorruptError{
		Device: fs.opts.Name,
		Group:  w.group,
		Inode:  w.ino,
		Block:  w.block,
		Offset: w.offset,
		Reason: fmt.Sprintf(format, args...),
		Err:    cause,
	}
	fs.handleError(e)
	return e
}
