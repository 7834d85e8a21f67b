package fusemount

import (
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpagefs/mpage/ext2fs"
)

// Options choose how a filesystem is mounted.
type Options struct {
	// ReadOnly mounts read-only ("ro"): every change fails with EROFS.
	// A filesystem that ext2fs opened read-only is always mounted so.
	ReadOnly bool
	// AllowOther lets users other than the mounter use the mount
	// (allow_other).
	AllowOther bool
	// Debug logs every FUSE request and reply on stderr.
	Debug bool
	// FsName is the source shown in /proc/mounts, e.g. the image path;
	// default "mpage".
	FsName string
}

// Timeouts of the kernel's name and attribute caches. See the package
// documentation.
const (
	entryTimeout = time.Second
	attrTimeout  = time.Second
	// negativeTimeout keeps "no such name" answers: every name made
	// goes through the kernel, which then drops them.
	negativeTimeout = time.Second
	// maxWrite is the largest READ or WRITE request: 1 MiB, the most
	// Linux allows (max_pages 256), so that sequential I/O reaches our
	// page cache in large pieces.
	maxWrite = 1 << 20
)

// Server is a mounted filesystem being served.
type Server struct {
	srv *fuse.Server
	m   *mount
	dir string

	waitOnce sync.Once
}

// mount is the state shared by every node of one mount.
//
// Lock order: mount.ns → (ext2fs's own locks); mount.mu is a leaf.
type mount struct {
	fsys      *ext2fs.FS // never changes
	readOnly  bool       // never changes
	blockSize uint32     // never changes

	// ns serialises the path-based operations against those that
	// remove or move names: Unlink, Rmdir and Rename hold it
	// exclusively, every other path-based operation shared, so that a
	// path checked by resolveLocked names the same inode until the
	// operation ends.
	ns sync.RWMutex
	// nsGen counts the operations that removed or moved names: a path
	// checked at one generation names the same inode for as long as
	// the generation stays. Written with ns held exclusively.
	nsGen uint64

	// lastMove is when the last rename, unlink or rmdir returned (Unix
	// nanoseconds): go-fuse moves its tree just after, so a stale path
	// found soon after is retried (resolveLocked).
	lastMove atomic.Int64

	mu      sync.Mutex          // guards handles
	handles map[closer]struct{} // open files and directories, closed at the end of Wait
}

// Mount mounts fsys at dir, an existing directory, and serves it until it
// is unmounted (fusermount3 -u, umount, or Unmount). It returns once the
// kernel has the mount. Mount does not close fsys: after Wait returns,
// the caller closes it, which writes everything back and marks the
// filesystem clean.
func Mount(fsys *ext2fs.FS, dir string, opts Options) (*Server, error) {
	if fsys == nil {
		return nil, errors.New("fusemount: nil filesystem")
	}
	fi, err := fsys.Lstat(".")
	if err != nil {
		return nil, fmt.Errorf("fusemount: reading the root directory: %w", err)
	}
	rootInfo, e := inodeInfo(fi)
	if e != 0 {
		return nil, fmt.Errorf("fusemount: root directory has no inode attributes")
	}
	u, err := fsys.Statfs()
	if err != nil {
		return nil, fmt.Errorf("fusemount: statfs: %w", err)
	}
	m := &mount{
		fsys:      fsys,
		readOnly:  opts.ReadOnly || fsys.ReadOnly(),
		blockSize: uint32(u.BlockSize),
		handles:   map[closer]struct{}{},
	}
	fsName := opts.FsName
	if fsName == "" {
		fsName = "mpage"
	}
	mo := fuse.MountOptions{
		AllowOther: opts.AllowOther,
		Debug:      opts.Debug,
		FsName:     fsName,
		Name:       "mpage",
		MaxWrite:   maxWrite,
		// No xattrs in ext2fs: the kernel answers EOPNOTSUPP without
		// asking.
		DisableXAttrs: true,
		Options:       []string{"default_permissions"},
	}
	if m.readOnly {
		mo.Options = append(mo.Options, "ro")
	}
	entry, attr, negative := entryTimeout, attrTimeout, negativeTimeout
	gopts := &gofs.Options{
		MountOptions:    mo,
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &negative,
		// Report modes as stored, also 0.
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: uint64(rootInfo.Ino), Gen: uint64(rootInfo.Generation)},
	}
	if opts.Debug {
		gopts.Logger = log.New(os.Stderr, "fusemount: ", log.LstdFlags)
	}
	srv, err := gofs.Mount(dir, &node{m: m}, gopts)
	if err != nil {
		return nil, fmt.Errorf("fusemount: mounting %s: %w", dir, err)
	}
	return &Server{srv: srv, m: m, dir: dir}, nil
}

// Dir returns the mount point.
func (s *Server) Dir() string { return s.dir }

// Wait serves until the filesystem is unmounted. Then it closes the
// files the kernel left open (a lazy unmount may leave some), so that the
// caller can close the filesystem.
func (s *Server) Wait() {
	s.srv.Wait()
	s.waitOnce.Do(s.m.closeHandles)
}

// Unmount unmounts the filesystem (fusermount3 -u) and waits for the
// server to stop. It fails, and the mount stays, while the mount is busy
// (a process has its current directory or an open file there).
func (s *Server) Unmount() error {
	if err := s.srv.Unmount(); err != nil {
		return fmt.Errorf("fusemount: unmounting %s: %w", s.dir, err)
	}
	return nil
}

// closeHandles closes every file still open.
func (m *mount) closeHandles() {
	m.mu.Lock()
	hs := make([]closer, 0, len(m.handles))
	for h := range m.handles {
		hs = append(hs, h)
	}
	m.mu.Unlock()
	for _, h := range hs {
		h.close()
	}
}
