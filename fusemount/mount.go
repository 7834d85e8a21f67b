package fusemount

import (
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2fs"
	"golang.org/x/sys/unix"
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
	// NoXattr turns extended attributes off: the kernel answers
	// EOPNOTSUPP to every xattr call without asking. (With them on,
	// the kernel asks for security.capability before the first write
	// to a file, not before every write: see killpriv.go.)
	NoXattr bool
	// ReadAhead is the kernel's readahead for files of the mount, in
	// bytes: 0 means DefaultReadAhead, a negative value leaves the
	// kernel's own (128 KiB). See setReadAhead.
	ReadAhead int
	// Atime, unless ext2.AtimeDefault, sets when reads update access
	// times (ext2.Relatime, ext2.Noatime, ext2.Strictatime) for the
	// filesystem, as a remount would: the mode stays the filesystem's
	// after unmount. AtimeDefault keeps the mode fsys was opened with
	// (ext2fs.Options.Atime, relatime by default). The kernel keeps no
	// access times of its own for FUSE files (S_NOATIME): it sends the
	// READ, READDIR and READLINK requests and, after a read, asks for
	// the attributes again (fuse_invalidate_atime), so stat shows what
	// ext2 recorded. A noatime mount shows noatime among its options.
	Atime ext2.AtimeMode
}

// DefaultReadAhead is the readahead of a mount whose Options leave it 0:
// 1 MiB, one READ of MaxWrite.
const DefaultReadAhead = 1 << 20

// Timeouts of the kernel's name and attribute caches: an hour, since
// nothing but this mount changes the image while it is mounted and the
// kernel drops or refreshes what its own requests change. See the
// package documentation.
const (
	entryTimeout = time.Hour
	attrTimeout  = time.Hour
	// negativeTimeout keeps "no such name" answers: every name made
	// goes through the kernel, which then drops them.
	negativeTimeout = time.Hour
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

	waitOnce   sync.Once
	lowerProcs func() // gives back the Ps raised for the readers (procs.go)
}

// mount is the state shared by every node of one mount.
//
// Lock order: node.mu → mount.nodesMu; mount.mu is a leaf. Package ext2
// locks inodes itself, below all of these, and no lock of ours is held
// while ext2 changes the namespace.
type mount struct {
	fsys      *ext2fs.FS // never changes
	fs        *ext2.FS   // fsys.Ext2(); never changes
	readOnly  bool       // never changes
	blockSize uint32     // never changes

	nodesMu sync.Mutex
	held    map[*node]struct{} // nodes holding an inode reference
	byIno   map[uint32]*node   // the node of each inode number, for lookups to share

	mu      sync.Mutex          // guards handles
	handles map[closer]struct{} // open files and directories, closed at the end of Wait

	kills killMarks // requests in progress that must clear set-ID bits (killpriv.go)

	reads  atomic.Int64 // READ requests, counted by rawFS to yield now and then (yield.go)
	copies copyCounters // COPY_FILE_RANGE requests served (copyrange.go)
}

// Mount mounts fsys at dir, an existing directory, and serves it until it
// is unmounted (fusermount3 -u, umount, or Unmount). It returns once the
// kernel has the mount. Mount does not close fsys: after Wait returns,
// the caller closes it, which writes everything back and marks the
// filesystem clean.
//
// While the mount is served the process's GOMAXPROCS is raised by the
// go-fuse readers that sleep in read(2) on /dev/fuse, and restored when
// Wait returns (see procs.go), unless the GOMAXPROCS environment variable
// is set.
func Mount(fsys *ext2fs.FS, dir string, opts Options) (*Server, error) {
	if fsys == nil {
		return nil, errors.New("fusemount: nil filesystem")
	}
	e2 := fsys.Ext2()
	root, err := e2.Root()
	if err != nil {
		return nil, fmt.Errorf("fusemount: reading the root directory: %w", err)
	}
	st := root.Stat()
	u, err := fsys.Statfs()
	if err != nil {
		e2.Iput(root)
		return nil, fmt.Errorf("fusemount: statfs: %w", err)
	}
	m := &mount{
		fsys:      fsys,
		fs:        e2,
		readOnly:  opts.ReadOnly || fsys.ReadOnly(),
		blockSize: uint32(u.BlockSize),
		held:      map[*node]struct{}{},
		byIno:     map[uint32]*node{},
		handles:   map[closer]struct{}{},
	}
	rootNode := &node{m: m, ino: st.Ino, gen: st.Generation, ref: root}
	m.hold(rootNode)
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
		// Extended attributes are read from and written to the image
		// (xattr.go).
		DisableXAttrs: opts.NoXattr,
		// Read replies are written to the device with one writev.
		// go-fuse would otherwise splice them: copy the data into a
		// pipe and splice the pipe to /dev/fuse, three system calls
		// instead of one, for data that is in our memory anyway, not
		// in a file whose pages could be moved. fio 4 KiB random
		// reads (O_DIRECT): about 19,400 -> 27,400 per second.
		DisableSplice: true,
		Options:       []string{"default_permissions"},
		// We clear set-user-ID and set-group-ID bits on writes,
		// truncates and chowns, so that the kernel stops asking for
		// security.capability before every write (killpriv.go).
		ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2,
	}
	if m.readOnly {
		mo.Options = append(mo.Options, "ro")
	}
	if opts.Atime != ext2.AtimeDefault {
		_, noDir := e2.AtimeMode()
		if err := e2.SetAtimeMode(opts.Atime, noDir); err != nil {
			m.releaseNodes()
			return nil, fmt.Errorf("fusemount: %w", err)
		}
	}
	// fusermount3 knows noatime but not relatime, strictatime or
	// nodiratime (it would hand them to the kernel's FUSE, which refuses
	// them); a mount is relatime unless told otherwise.
	if mode, _ := e2.AtimeMode(); mode == ext2.Noatime {
		mo.Options = append(mo.Options, "noatime")
	}
	entry, attr, negative := entryTimeout, attrTimeout, negativeTimeout
	gopts := &gofs.Options{
		MountOptions:    mo,
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &negative,
		// Report modes as stored, also 0.
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: uint64(st.Ino), Gen: uint64(st.Generation)},
	}
	if opts.Debug {
		gopts.Logger = log.New(os.Stderr, "fusemount: ", log.LstdFlags)
	}
	// gofs.Mount, with the node API's raw filesystem wrapped (rawFS).
	raw := &rawFS{RawFileSystem: gofs.NewNodeFS(rootNode, gopts), m: m}
	srv, err := fuse.NewServer(raw, dir, &gopts.MountOptions)
	if err != nil {
		m.releaseNodes()
		return nil, fmt.Errorf("fusemount: mounting %s: %w", dir, err)
	}
	lowerProcs := raiseProcs() // see procs.go
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		// As gofs.Mount: the serving loop ends by itself when the
		// mount does not come up.
		lowerProcs()
		m.releaseNodes()
		return nil, fmt.Errorf("fusemount: mounting %s: %w", dir, err)
	}
	if ra := opts.ReadAhead; ra >= 0 {
		if ra == 0 {
			ra = DefaultReadAhead
		}
		if err := setReadAhead(dir, ra); err != nil && gopts.Logger != nil {
			gopts.Logger.Printf("keeping the kernel's readahead: %v", err)
		}
	}
	return &Server{srv: srv, m: m, dir: dir, lowerProcs: lowerProcs}, nil
}

// setReadAhead sets the readahead of the mount at dir to n bytes,
// rounded down to KiB: read_ahead_kb of its backing device info
// (/sys/class/bdi/MAJOR:MINOR, the device number of the mount), as
// blockdev --setra does for a disk. The kernel starts a FUSE mount with
// 128 KiB (VM_READAHEAD_PAGES) and lets the server only lower it in the
// INIT reply (max_readahead); the sysfs file is the one way up, and only
// root may write it (for others the kernel's stays). With 128 KiB a
// sequential reader's data comes in 256 KiB READs; with 1 MiB it comes
// in 1 MiB READs (MaxWrite), a quarter of the requests, while our own
// readahead reads the image ahead of them. More is not better: larger
// windows put several READs in flight at once, out of order, and were
// slower. fio 1 MiB sequential reads of a cold 1 GiB file, 6 runs
// alternated on a busy 2-core machine (fio and daemon at nice -20),
// median MB/s and daemon CPU s: 128 KiB 620 and 1.40; 1 MiB 708 and
// 1.19; 2 MiB 676 and 1.31; 4 MiB 657 and 1.23; 16 MiB was slower
// still in another set (392 against 560 for 4 MiB).
func setReadAhead(dir string, n int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(strconv.Itoa(n>>10)), 0); err != nil {
		return fmt.Errorf("setting the readahead: %w", err)
	}
	return nil
}

// Dir returns the mount point.
func (s *Server) Dir() string { return s.dir }

// Wait serves until the filesystem is unmounted. Then it closes the
// files the kernel left open (a lazy unmount may leave some) and gives
// back the inode references of the nodes it knew, so that the caller can
// close the filesystem (and inodes unlinked while in use are deleted).
func (s *Server) Wait() {
	s.srv.Wait()
	s.waitOnce.Do(func() {
		s.lowerProcs()
		s.m.closeHandles()
		s.m.releaseNodes()
	})
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
