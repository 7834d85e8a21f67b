package block

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// iovMax is the most iovecs one preadv/pwritev takes (IOV_MAX, UIO_MAXIOV).
const iovMax = 1024

// FileLimits are the request limits of a File: one vectored call of 1024
// pages.
var FileLimits = Limits{MaxRequestBytes: 4 << 20, MaxSegments: iovMax}

// File is a Device backed by a regular file (a disk image) or a raw block
// device, read and written with preadv/pwritev straight into the callers'
// buffers.
type File struct {
	// Never change after open.
	path     string
	f        *os.File
	fd       int
	size     int64 // bytes, a multiple of SectorSize
	readOnly bool

	mu     sync.RWMutex // held shared by every call that uses fd; guards closed
	closed bool
}

var (
	_ Device  = (*File)(nil)
	_ Limiter = (*File)(nil)
)

// OpenFile opens the disk image or block device at path. The device size
// is the file size for a regular file and BLKGETSIZE64 for a block device,
// rounded down to a whole sector. A read-only File refuses writes with
// ErrReadOnly.
func OpenFile(path string, readOnly bool) (*File, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("block: open: %w", err)
	}
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("block: open %s: fstat: %w", path, err)
	}
	file := &File{path: path, f: f, fd: fd, readOnly: readOnly}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		file.size = st.Size
	case unix.S_IFBLK:
		n, err := unix.IoctlGetUint64(fd, unix.BLKGETSIZE64)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("block: open %s: BLKGETSIZE64: %w", path, err)
		}
		file.size = int64(n)
	default:
		f.Close()
		return nil, fmt.Errorf("block: open %s: mode %#o is neither a regular file nor a block device: %w",
			path, st.Mode&unix.S_IFMT, ErrInvalid)
	}
	file.size &^= SectorSize - 1
	return file, nil
}

// CreateFile creates (or truncates) the disk image at path with size bytes
// of zeros, sparse where the filesystem allows, and opens it read-write.
// size must be a non-negative multiple of SectorSize.
func CreateFile(path string, size int64) (*File, error) {
	if size < 0 || size%SectorSize != 0 {
		return nil, fmt.Errorf("block: create %s: size %d is not a multiple of %d: %w", path, size, SectorSize, ErrInvalid)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("block: create: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("block: create %s: %w", path, err)
	}
	return &File{path: path, f: f, fd: int(f.Fd()), size: size}, nil
}

// Path is the file name the File was opened with.
func (f *File) Path() string { return f.path }

// Size is the device size in bytes.
func (f *File) Size() int64 { return f.size }

// Limits are FileLimits.
func (f *File) Limits() Limits { return FileLimits }

// check validates a transfer of bufs at off. Preconditions: f.mu is held.
func (f *File) checkLocked(op Op, bufs [][]byte, off int64) (int64, error) {
	n := int64(0)
	for _, b := range bufs {
		n += int64(len(b))
	}
	if f.closed {
		return n, fmt.Errorf("block: %s %s: %d bytes at offset %d: %w", op, f.path, n, off, ErrClosed)
	}
	if op == Write && f.readOnly {
		return n, fmt.Errorf("block: %s %s: %d bytes at offset %d: %w", op, f.path, n, off, ErrReadOnly)
	}
	if off < 0 || off > f.size || n > f.size-off {
		return n, fmt.Errorf("block: %s %s: %d bytes at offset %d, device size %d: %w", op, f.path, n, off, f.size, ErrOutOfRange)
	}
	return n, nil
}

// ReadVecAt fills bufs from the bytes at off with preadv, looping over
// short reads and EINTR and splitting vectors longer than IOV_MAX. Reaching
// the end of the file before the end of the transfer (the file shrank
// underneath) is an error wrapping io.ErrUnexpectedEOF.
func (f *File) ReadVecAt(bufs [][]byte, off int64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, err := f.checkLocked(Read, bufs, off)
	if err != nil {
		return err
	}
	return f.transfer(Read, bufs, off, n)
}

// WriteVecAt writes bufs to the bytes at off with pwritev, looping over
// short writes and EINTR and splitting vectors longer than IOV_MAX.
func (f *File) WriteVecAt(bufs [][]byte, off int64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, err := f.checkLocked(Write, bufs, off)
	if err != nil {
		return err
	}
	return f.transfer(Write, bufs, off, n)
}

// transfer moves n bytes between bufs and the file at off.
//
// Preconditions: f.mu is held shared.
func (f *File) transfer(op Op, bufs [][]byte, off, n int64) error {
	start, total := off, n
	owned := false // bufs is our copy and may be edited
	for n > 0 {
		chunk := bufs
		if len(chunk) > iovMax {
			chunk = chunk[:iovMax]
		}
		var done int
		var err error
		if op == Write {
			done, err = unix.Pwritev(f.fd, chunk, off)
		} else {
			done, err = unix.Preadv(f.fd, chunk, off)
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("block: %s %s: %d bytes at offset %d (transfer of %d at %d): %w", op, f.path, n, off, total, start, err)
		}
		if done == 0 {
			cause := io.ErrUnexpectedEOF
			if op == Write {
				cause = io.ErrShortWrite
			}
			return fmt.Errorf("block: %s %s: %d bytes at offset %d (transfer of %d at %d): %w", op, f.path, n, off, total, start, cause)
		}
		off += int64(done)
		n -= int64(done)
		// Step past the bytes moved, copying the vector before editing
		// the caller's slice headers.
		for done > 0 && len(bufs) > 0 {
			if done >= len(bufs[0]) {
				done -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			if !owned {
				bufs = append([][]byte(nil), bufs...)
				owned = true
			}
			bufs[0] = bufs[0][done:]
			done = 0
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return nil
}

// Flush makes completed writes durable with fdatasync.
func (f *File) Flush() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return fmt.Errorf("block: flush %s: %w", f.path, ErrClosed)
	}
	for {
		err := unix.Fdatasync(f.fd)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("block: flush %s: fdatasync: %w", f.path, err)
		}
		return nil
	}
}

// Close closes the file once calls in progress have returned. Later calls
// fail with ErrClosed.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("block: close %s: %w", f.path, ErrClosed)
	}
	f.closed = true
	if err := f.f.Close(); err != nil {
		return fmt.Errorf("block: close: %w", err)
	}
	return nil
}
