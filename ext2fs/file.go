package ext2fs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mpagefs/mpage/ext2"
)

// Whence values of File.Seek beyond io.Seek*: find the next data or the
// next hole at or after the offset (SEEK_DATA and SEEK_HOLE of lseek(2)).
const (
	SeekData = ext2.SeekData
	SeekHole = ext2.SeekHole
)

// File is an open file of an FS: a regular file, a directory, or a
// special file (a device node, fifo or socket, whose contents are not in
// the image: it reads as empty). It implements fs.File,
// fs.ReadDirFile, io.Reader, io.ReaderAt, io.Writer, io.WriterAt and
// io.Seeker. See the package documentation for concurrent use.
type File struct {
	fsys *FS
	name string      // the name it was opened by
	ino  *ext2.Inode // holds a reference until Close
	ef   *ext2.File  // the ext2 handle of a regular file, else nil
	flag int         // the open flags; never changes

	closed atomic.Bool

	mu     sync.Mutex // guards off and the directory listing
	off    int64
	dir    []fs.DirEntry // read at the first ReadDir, in on-disk order
	dirOK  bool          // dir is read
	dirPos int           // entries of dir returned so far
}

var (
	_ fs.File        = (*File)(nil)
	_ fs.ReadDirFile = (*File)(nil)
	_ io.ReaderAt    = (*File)(nil)
	_ io.WriterAt    = (*File)(nil)
	_ io.ReadWriter  = (*File)(nil)
	_ io.Seeker      = (*File)(nil)
)

// newFile opens inode ino (the caller's reference passes to the File).
func (f *FS) newFile(name string, ino *ext2.Inode, flag int) (*File, error) {
	file := &File{fsys: f, name: name, ino: ino, flag: flag}
	if ino.IsRegular() {
		writable := flag&(os.O_WRONLY|os.O_RDWR) != 0 || flag&os.O_TRUNC != 0
		ef, err := f.fs.Open(ino, writable)
		if err != nil {
			f.fs.Iput(ino)
			return nil, err
		}
		file.ef = ef
	}
	return file, nil
}

func (file *File) readable() bool { return file.flag&(os.O_WRONLY|os.O_RDWR) != os.O_WRONLY }
func (file *File) writable() bool { return file.flag&(os.O_WRONLY|os.O_RDWR) != 0 }

// Name returns the name the file was opened by.
func (file *File) Name() string { return file.name }

func (file *File) check(op string) error {
	if file.closed.Load() {
		return &fs.PathError{Op: op, Path: file.name, Err: errClosed}
	}
	if err := file.fsys.checkOpen(); err != nil {
		return &fs.PathError{Op: op, Path: file.name, Err: err}
	}
	return nil
}

// Stat returns the file's attributes.
func (file *File) Stat() (fs.FileInfo, error) {
	if err := file.check("stat"); err != nil {
		return nil, err
	}
	return newFileInfo(path.Base(file.name), file.ino), nil
}

// Read reads from the file offset, as io.Reader: at end of file it
// returns 0, io.EOF.
func (file *File) Read(p []byte) (int, error) {
	file.mu.Lock()
	defer file.mu.Unlock()
	n, err := file.readAt("read", p, file.off)
	file.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt. It does not use or
// change the file offset.
func (file *File) ReadAt(p []byte, off int64) (int, error) {
	return file.readAt("read", p, off)
}

func (file *File) readAt(op string, p []byte, off int64) (int, error) {
	if err := file.check(op); err != nil {
		return 0, err
	}
	if !file.readable() {
		return 0, &fs.PathError{Op: op, Path: file.name, Err: errBadFD}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: op, Path: file.name, Err: errnoError(syscall.EINVAL, "negative offset")}
	}
	switch {
	case file.ef != nil:
		n, err := file.ef.ReadAt(p, off)
		if err != nil && err != io.EOF {
			err = pathErr(op, file.name, err)
		}
		return n, err
	case file.ino.IsDir():
		return 0, &fs.PathError{Op: op, Path: file.name, Err: errIsDir}
	}
	if len(p) == 0 {
		return 0, nil
	}
	return 0, io.EOF
}

// Write writes at the file offset, or at the end of file for a file
// opened with O_APPEND (then the offset moves to the new end).
func (file *File) Write(p []byte) (int, error) {
	if err := file.checkWrite("write"); err != nil {
		return 0, err
	}
	file.mu.Lock()
	defer file.mu.Unlock()
	if file.flag&os.O_APPEND != 0 {
		off, n, err := file.ef.Append(p)
		file.off = off + int64(n)
		return n, pathErr("write", file.name, err)
	}
	n, err := file.ef.WriteAt(p, file.off)
	file.off += int64(n)
	return n, pathErr("write", file.name, err)
}

// WriteAt writes p at off, as io.WriterAt. As with *os.File, a file
// opened with O_APPEND refuses it (fs.ErrInvalid).
func (file *File) WriteAt(p []byte, off int64) (int, error) {
	if err := file.checkWrite("write"); err != nil {
		return 0, err
	}
	if file.flag&os.O_APPEND != 0 {
		return 0, &fs.PathError{Op: "write", Path: file.name, Err: errnoError(syscall.EINVAL, "WriteAt on a file opened with O_APPEND")}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: file.name, Err: errnoError(syscall.EINVAL, "negative offset")}
	}
	n, err := file.ef.WriteAt(p, off)
	return n, pathErr("write", file.name, err)
}

// WriteString is Write of a string.
func (file *File) WriteString(s string) (int, error) { return file.Write([]byte(s)) }

func (file *File) checkWrite(op string) error {
	if err := file.check(op); err != nil {
		return err
	}
	if !file.writable() {
		return &fs.PathError{Op: op, Path: file.name, Err: errBadFD}
	}
	if file.ef == nil {
		if file.ino.IsDir() {
			return &fs.PathError{Op: op, Path: file.name, Err: errIsDir}
		}
		return &fs.PathError{Op: op, Path: file.name, Err: errnoError(syscall.EINVAL, "not a regular file")}
	}
	if err := file.fsys.checkWritable(); err != nil {
		return &fs.PathError{Op: op, Path: file.name, Err: err}
	}
	return nil
}

// Seek sets the file offset, as io.Seeker, and returns it. whence may
// also be SeekData or SeekHole: the offset moves to the first data, or
// the first hole, at or after offset (holes are whole unallocated
// blocks; the end of file counts as a hole). Both fail with an error
// wrapping syscall.ENXIO for an offset at or past the end of file, and
// SeekData when only holes follow. A directory can only be rewound with
// Seek(0, io.SeekStart), which restarts ReadDir.
func (file *File) Seek(offset int64, whence int) (int64, error) {
	if err := file.check("seek"); err != nil {
		return 0, err
	}
	file.mu.Lock()
	defer file.mu.Unlock()
	einval := func(msg string) error {
		return &fs.PathError{Op: "seek", Path: file.name, Err: errnoError(syscall.EINVAL, msg)}
	}
	if file.ino.IsDir() {
		if offset != 0 || whence != io.SeekStart {
			return 0, einval("a directory can only be rewound")
		}
		file.off, file.dir, file.dirOK, file.dirPos = 0, nil, false, 0
		return 0, nil
	}
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = file.off + offset
	case io.SeekEnd:
		pos = file.ino.Size() + offset
	case SeekData, SeekHole:
		if file.ef == nil {
			return 0, &fs.PathError{Op: "seek", Path: file.name, Err: errnoError(syscall.ENXIO, "no data")}
		}
		p, err := file.ef.Seek(offset, whence)
		if err != nil {
			return 0, pathErr("seek", file.name, err)
		}
		pos = p
	default:
		return 0, einval("bad whence")
	}
	if pos < 0 {
		return 0, einval("negative offset")
	}
	file.off = pos
	return pos, nil
}

// Truncate changes the size of the file, which must be open for
// writing: shrinking frees the blocks past the end, growing leaves a
// hole.
func (file *File) Truncate(size int64) error {
	if err := file.checkWrite("truncate"); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: file.name, Err: errnoError(syscall.EINVAL, "negative size")}
	}
	return pathErr("truncate", file.name, file.ef.Truncate(size))
}

// Sync makes the file durable (fsync): its data, its inode and the
// metadata they need. A writeback error that happened since the file was
// opened, or since the last Sync, is reported once. For a directory it
// writes the directory's blocks and inode (ext2.FS.SyncInode), so that
// names added, removed or renamed in it survive a crash; the inodes they
// name are synced by their own Sync. Other files' data is not written:
// FS.Sync does that.
func (file *File) Sync() error {
	if err := file.check("sync"); err != nil {
		return err
	}
	if file.ef != nil {
		return pathErr("sync", file.name, file.ef.Sync())
	}
	if file.fsys.ReadOnly() {
		return nil
	}
	return pathErr("sync", file.name, file.fsys.fs.SyncInode(file.ino))
}

// Close releases the file. The inode of a file unlinked while open is
// deleted at its last close. A second Close fails with fs.ErrClosed.
func (file *File) Close() error {
	if file.closed.Swap(true) {
		return &fs.PathError{Op: "close", Path: file.name, Err: errClosed}
	}
	if file.fsys.closed.Load() {
		return nil // the unmount has released everything
	}
	var err error
	if file.ef != nil {
		err = file.ef.Close()
	}
	file.fsys.fs.Iput(file.ino)
	return pathErr("close", file.name, err)
}

// ReadDir reads the directory's entries, without "." and "..", in
// on-disk order, as fs.ReadDirFile: with n > 0 at most n entries and
// io.EOF at the end; with n <= 0 all the remaining entries and a nil
// error.
func (file *File) ReadDir(n int) ([]fs.DirEntry, error) {
	if err := file.check("readdir"); err != nil {
		return nil, err
	}
	if !file.ino.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: file.name, Err: errNotDir}
	}
	file.mu.Lock()
	defer file.mu.Unlock()
	if !file.dirOK {
		ents, err := file.fsys.dirEntries(file.ino)
		if err != nil {
			return nil, pathErr("readdir", file.name, err)
		}
		file.dir, file.dirOK = ents, true
	}
	rest := file.dir[file.dirPos:]
	if n <= 0 {
		file.dirPos = len(file.dir)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	file.dirPos += len(rest)
	return rest, nil
}

// Readdir is ReadDir returning fs.FileInfo values, as *os.File's
// Readdir (Lstat of each entry).
func (file *File) Readdir(n int) ([]fs.FileInfo, error) {
	ents, err := file.ReadDir(n)
	out := make([]fs.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, ierr := e.Info()
		if ierr != nil {
			if errors.Is(ierr, fs.ErrNotExist) {
				continue // removed since it was listed
			}
			return out, ierr
		}
		out = append(out, fi)
	}
	return out, err
}

// Readdirnames is ReadDir returning the names only.
func (file *File) Readdirnames(n int) ([]string, error) {
	ents, err := file.ReadDir(n)
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out, err
}
