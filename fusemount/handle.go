package fusemount

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2/layout"
)

// handle is an open regular file: the kernel's file handle, an ext2 file
// handle on the inode (which holds its own reference).
type handle struct {
	m      *mount
	f      *ext2.File  // never changes
	append bool        // opened with O_APPEND; never changes
	in     *gofs.Inode // the kernel's inode of the file; never changes after open

	// Random-access detection (noteRead): where the last READ ended,
	// how many small READs in a row started elsewhere, and whether the
	// handle's readahead is off for that.
	lastEnd   atomic.Int64
	randomRun atomic.Int32
	random    atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

var (
	_ gofs.FileReader   = (*handle)(nil)
	_ gofs.FileWriter   = (*handle)(nil)
	_ gofs.FileFsyncer  = (*handle)(nil)
	_ gofs.FileReleaser = (*handle)(nil)
	_ gofs.FileLseeker  = (*handle)(nil)
)

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

// Random-access detection: the kernel keeps posix_fadvise to itself (a
// FUSE server never hears of POSIX_FADV_RANDOM, which fio's random jobs
// set), so the handle infers it from the READs it gets. The kernel sends
// a sequential reader's data in READs that continue each other, and
// grows them with its own readahead; a random reader's are small and
// each starts elsewhere. After randomReadRun such READs in a row the
// handle's readahead is turned off (ext2.File.SetRandom), as
// FMODE_RANDOM would: every page our cache misses is then read alone,
// not with a window of pages around it that a random reader never
// reads (our readahead guesses a stream from cached pages next to a
// miss, try_context_readahead, and from readahead markers it meets).
// A READ that continues the last one, or a large one, turns it on again.
const (
	randomReadRun = 4
	randomReadMax = 16 << 10 // larger READs count as sequential
)

// noteRead feeds a READ of n bytes at off to the detection. Concurrent
// READs may race in it; that only delays a switch.
func (h *handle) noteRead(off int64, n int) {
	prev := h.lastEnd.Swap(off + int64(n))
	if off == prev || n > randomReadMax {
		h.randomRun.Store(0)
		if h.random.Load() && h.random.Swap(false) {
			h.f.SetRandom(false)
		}
		return
	}
	if h.randomRun.Add(1) >= randomReadRun && !h.random.Load() && !h.random.Swap(true) {
		h.f.SetRandom(true)
	}
}

// Read reads at off from the file's page cache.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.noteRead(off, len(dest))
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
	if h.m.kills.has(ctx) {
		if e := h.m.killSetID(h.f.Inode(), h.in); e != 0 {
			return 0, e
		}
	}
	var n int
	var err error
	if h.append {
		_, n, err = h.f.Append(data)
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

// Release closes the file when the kernel drops its last reference. The
// inode of a file unlinked while open is deleted then, unless a node
// still holds it.
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
		w = ext2.SeekData
	case 4: // SEEK_HOLE
		w = ext2.SeekHole
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

// dirHandle is an open directory. It holds a reference to the directory's
// inode, so fstat and readdir of a directory that was removed or renamed
// over while open keep working (a removed directory lists nothing).
// Entries are read from the directory as the kernel asks for them, "."
// and ".." first as they are on disk, and the offset (the kernel's
// cookie) of an entry is its byte position in the directory + 1: the
// position to continue after it, which stays valid while entries come
// and go (ext2_readdir's positions), so a listing interleaved with
// changes neither repeats nor skips the entries that stay.
type dirHandle struct {
	m   *mount
	ino *ext2.Inode // the handle's reference; never changes

	mu   sync.Mutex // guards pos, ents and err
	pos  int64      // where the next read of the directory starts
	ents []ext2.DirEntryAt
	err  syscall.Errno // to return once ents are given out: the block after them is bad

	closeOnce sync.Once
}

var (
	_ gofs.FileReaddirenter   = (*dirHandle)(nil)
	_ gofs.FileSeekdirer      = (*dirHandle)(nil)
	_ gofs.FileReleasedirer   = (*dirHandle)(nil)
	_ gofs.FileFsyncdirer     = (*dirHandle)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
)

// dirBatch is how many entries one read of the directory returns.
const dirBatch = 128

// OpendirHandle opens the directory for reading. It replaces
// NodeReaddirer, so that the handle can hold the directory.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ino, e := n.acquire()
	if e != 0 {
		return nil, 0, e
	}
	if !ino.IsDir() {
		n.m.fs.Iput(ino)
		return nil, 0, syscall.ENOTDIR
	}
	d := &dirHandle{m: n.m, ino: ino}
	n.m.register(d)
	return d, 0, 0
}

// Readdirent returns the next entry, or nil at the end.
//
// A directory block that cannot be read or is corrupt is skipped as
// fs/ext2/dir.c:ext2_readdir() skips a bad page: the entries before it
// are returned, then the error, once, and the next read goes on with
// the block after it. So a program that reads on after the EIO (the
// kernel asks again at the same offset) lists the rest of the
// directory, and one that stops has the entries before the bad block.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.readdirentLocked(ctx)
}

// readdirentLocked is Readdirent.
// Preconditions: d.mu is held.
func (d *dirHandle) readdirentLocked(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	for {
		if len(d.ents) == 0 {
			if e := d.err; e != 0 {
				d.err = 0
				return nil, e
			}
			ents, next, err := d.m.fs.ReadDirFrom(d.ino, d.pos, dirBatch)
			if err != nil {
				// next is in the bad block: go on at the block after it.
				bs := int64(d.m.blockSize)
				next = (next/bs + 1) * bs
				if len(ents) == 0 {
					d.pos = next
					return nil, errno(err)
				}
				d.err = errno(err)
			}
			d.ents, d.pos = ents, next
			if len(ents) == 0 {
				return nil, 0
			}
		}
		e := d.ents[0]
		d.ents = d.ents[1:]
		if !fuseName(e.Name) {
			// The kernel refuses a whole READDIR reply that holds such
			// a name (fuse_parse_dirfile: EIO), and would again at
			// every retry from the same offset, hiding every entry
			// after it. No path can reach the entry anyway: leave it
			// out.
			continue
		}
		return &fuse.DirEntry{Name: e.Name, Ino: uint64(e.Ino), Mode: direntMode(e.Type), Off: uint64(e.Off) + 1}, 0
	}
}

// fuseName reports whether the kernel's FUSE accepts name in a directory
// listing: not empty, and without '/' or NUL (which a damaged ext2
// directory can hold; e2fsck calls them illegal characters).
func fuseName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "/\x00")
}

// Seekdir moves to an offset Readdirent gave, or to the start for 0.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off > 1<<62 {
		return syscall.EINVAL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pos, d.ents, d.err = int64(off), nil, 0
	return 0
}

// Fsyncdir makes the directory durable (ext2_fsync on a directory):
// its inode and blocks, with the metadata they need, then a device
// flush (ext2.FS.SyncInode), so that names added, removed or renamed in
// it survive a crash. The inodes it names, and other files' data, are
// not written: they have their own fsync.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if d.m.readOnly {
		return 0
	}
	return errno(d.m.fs.SyncInode(d.ino))
}

// Releasedir closes the directory.
func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) { d.close() }

func (d *dirHandle) close() error {
	d.closeOnce.Do(func() {
		d.m.fs.Iput(d.ino)
		d.m.unregister(d)
	})
	return nil
}

// direntMode is the S_IF* type of a directory entry's file type (0, for
// the kernel to ask, without the filetype feature).
func direntMode(ft uint8) uint32 {
	switch ft {
	case layout.FtRegFile:
		return syscall.S_IFREG
	case layout.FtDir:
		return syscall.S_IFDIR
	case layout.FtSymlink:
		return syscall.S_IFLNK
	case layout.FtChrdev:
		return syscall.S_IFCHR
	case layout.FtBlkdev:
		return syscall.S_IFBLK
	case layout.FtFifo:
		return syscall.S_IFIFO
	case layout.FtSock:
		return syscall.S_IFSOCK
	}
	return 0
}
