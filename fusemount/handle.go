package fusemount

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpagefs/mpage/ext2fs"
)

// handle is an open regular file: the kernel's file handle.
type handle struct {
	m      *mount
	f      *ext2fs.File // never changes
	append bool         // opened with O_APPEND; never changes
	write  bool         // opened for writing; never changes

	closeOnce sync.Once
	closeErr  error
}

var (
	_ gofs.FileReader   = (*handle)(nil)
	_ gofs.FileWriter   = (*handle)(nil)
	_ gofs.FileFsyncer  = (*handle)(nil)
	_ gofs.FileFlusher  = (*handle)(nil)
	_ gofs.FileReleaser = (*handle)(nil)
	_ gofs.FileLseeker  = (*handle)(nil)
)

// newHandle registers an open file of the mount.
func (m *mount) newHandle(f *ext2fs.File, flags int) *handle {
	h := &handle{m: m, f: f, append: flags&os.O_APPEND != 0, write: flags&(os.O_WRONLY|os.O_RDWR) != 0}
	m.register(h)
	return h
}

// closer is an open file or directory of the mount.
type closer interface{ close() error }

func (m *mount) register(c closer) {
	m.mu.Lock()
	m.handles[c] = struct{}{}
	m.mu.Unlock()
}

func (m *mount) unregister(c closer) {
	m.mu.Lock()
	delete(m.handles, c)
	m.mu.Unlock()
}

// Read reads at off from the file's page cache.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.f.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write writes data at off, or at the end of file for a file opened with
// O_APPEND: the end is found under the inode lock, as the kernel's own
// offset may be stale when another handle appended meanwhile.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	var n int
	var err error
	if h.append {
		n, err = h.f.Write(data)
	} else {
		n, err = h.f.WriteAt(data, off)
	}
	if err != nil && n == 0 {
		return 0, errno(err)
	}
	return uint32(n), 0
}

// Fsync makes the file durable: data, inode and the metadata they need.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return errno(h.f.Sync())
}

// Flush is called at each close(2) of a descriptor. As on a local
// filesystem, closing does not write back: data becomes durable at fsync,
// at writeback and at unmount.
func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

// Release closes the file when the kernel drops its last reference. The
// inode of a file unlinked while open is deleted then.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	return errno(h.close())
}

// Lseek answers SEEK_DATA and SEEK_HOLE (the kernel handles the other
// whence values itself) from the block map.
func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	if off > 1<<63-1 {
		return 0, syscall.ENXIO
	}
	var w int
	switch whence {
	case 3: // SEEK_DATA
		w = ext2fs.SeekData
	case 4: // SEEK_HOLE
		w = ext2fs.SeekHole
	default:
		return 0, syscall.EINVAL
	}
	pos, err := h.f.Seek(int64(off), w)
	if err != nil {
		return 0, errno(err)
	}
	return uint64(pos), 0
}

func (h *handle) close() error {
	h.closeOnce.Do(func() {
		h.closeErr = h.f.Close()
		h.m.unregister(h)
	})
	return h.closeErr
}

// dirHandle is an open directory. It holds the directory open in ext2fs,
// so fstat and readdir of a directory that was removed or renamed over
// while open keep working. The listing is a snapshot taken at the first
// read and again at each rewind, with "." and ".." first and the entries
// in on-disk order; the offset of an entry is its index + 1, so seekdir to
// an offset telldir gave finds the same entry.
type dirHandle struct {
	m         *mount
	f         *ext2fs.File // never changes
	ino       uint64       // never changes
	parentIno uint64       // at open; never changes

	mu     sync.Mutex // guards ents, idx and loaded
	ents   []fuse.DirEntry
	idx    int
	loaded bool

	closeOnce sync.Once
	closeErr  error
}

var (
	_ gofs.FileReaddirenter   = (*dirHandle)(nil)
	_ gofs.FileSeekdirer      = (*dirHandle)(nil)
	_ gofs.FileReleasedirer   = (*dirHandle)(nil)
	_ gofs.FileFsyncdirer     = (*dirHandle)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
)

// OpendirHandle opens the directory for reading. It replaces
// NodeReaddirer, so that the handle can hold the directory open.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	n.m.ns.RLock()
	defer n.m.ns.RUnlock()
	p, e := n.resolveLocked()
	if e != 0 {
		return nil, 0, e
	}
	parentIno := n.StableAttr().Ino
	if !n.IsRoot() {
		pfi, err := n.m.fsys.Lstat(parentPath(p))
		if err != nil {
			return nil, 0, errno(err)
		}
		pii, e := inodeInfo(pfi)
		if e != 0 {
			return nil, 0, e
		}
		parentIno = uint64(pii.Ino)
	}
	f, err := n.m.fsys.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return nil, 0, errno(err)
	}
	d := &dirHandle{m: n.m, f: f, ino: n.StableAttr().Ino, parentIno: parentIno}
	n.m.register(d)
	return d, 0, 0
}

// Readdirent returns the next entry, or nil at the end.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		if e := d.loadLocked(); e != 0 {
			return nil, e
		}
	}
	if d.idx >= len(d.ents) {
		return nil, 0
	}
	e := d.ents[d.idx]
	d.idx++
	e.Off = uint64(d.idx)
	return &e, 0
}

// Seekdir moves to an offset Readdirent gave; 0 rewinds and lists the
// directory again, as rewinddir(3) must show the changes made since.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 {
		d.loaded, d.idx = false, 0
		return 0
	}
	if !d.loaded {
		if e := d.loadLocked(); e != 0 {
			return e
		}
	}
	if off > uint64(len(d.ents)) {
		return syscall.EINVAL
	}
	d.idx = int(off)
	return 0
}

// loadLocked reads the directory: ".", ".." and its entries.
//
// Preconditions: d.mu is held.
func (d *dirHandle) loadLocked() syscall.Errno {
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		return errno(err)
	}
	ents, err := d.f.ReadDir(-1)
	if err != nil {
		return errno(err)
	}
	out := make([]fuse.DirEntry, 0, len(ents)+2)
	out = append(out,
		fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.ino},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: d.parentIno})
	for _, de := range ents {
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since it was listed
		}
		if err != nil {
			return errno(err)
		}
		ii, e := inodeInfo(fi)
		if e != 0 {
			return e
		}
		out = append(out, fuse.DirEntry{Name: de.Name(), Mode: direntMode(de.Type()), Ino: uint64(ii.Ino)})
	}
	d.ents, d.idx, d.loaded = out, 0, true
	return 0
}

// Fsyncdir writes back the whole filesystem (ext2fs syncs everything
// for a directory).
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if d.m.readOnly {
		return 0
	}
	return errno(d.f.Sync())
}

// Releasedir closes the directory.
func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) { d.close() }

func (d *dirHandle) close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.f.Close()
		d.m.unregister(d)
	})
	return d.closeErr
}
