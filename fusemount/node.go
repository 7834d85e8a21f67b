package fusemount

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2/layout"
	"golang.org/x/sys/unix"
)

// node is a file of the mount, of any type: one ext2 inode (number and
// generation). While the kernel knows the node it holds a reference to
// the inode (see the package documentation), so that the inode stays
// what the node names, with or without a name, until OnForget.
type node struct {
	gofs.Inode
	m   *mount // never changes
	ino uint32 // never changes
	gen uint32 // never changes

	mu  sync.Mutex  // guards ref
	ref *ext2.Inode // the node's reference; nil once forgotten
}

var (
	_ gofs.NodeLookuper    = (*node)(nil)
	_ gofs.NodeGetattrer   = (*node)(nil)
	_ gofs.NodeSetattrer   = (*node)(nil)
	_ gofs.NodeOpener      = (*node)(nil)
	_ gofs.NodeCreater     = (*node)(nil)
	_ gofs.NodeMkdirer     = (*node)(nil)
	_ gofs.NodeMknoder     = (*node)(nil)
	_ gofs.NodeUnlinker    = (*node)(nil)
	_ gofs.NodeRmdirer     = (*node)(nil)
	_ gofs.NodeRenamer     = (*node)(nil)
	_ gofs.NodeSymlinker   = (*node)(nil)
	_ gofs.NodeReadlinker  = (*node)(nil)
	_ gofs.NodeLinker      = (*node)(nil)
	_ gofs.NodeStatfser    = (*node)(nil)
	_ gofs.NodeFsyncer     = (*node)(nil)
	_ gofs.NodeFlusher     = (*node)(nil)
	_ gofs.NodeOnForgetter = (*node)(nil)
)

// acquire returns the node's inode with a reference of the operation's
// own, which the caller gives back with m.fs.Iput. A node revived by a
// lookup after OnForget (go-fuse may hand out a node that is being
// forgotten) takes its reference again, by number, and fails with ENOENT
// if the inode has been deleted or its number reused meanwhile: never
// does it act on another file.
func (n *node) acquire() (*ext2.Inode, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ref != nil {
		if ino := n.m.fs.Igrab(n.ref); ino != nil {
			return ino, 0
		}
		n.ref = nil // cannot happen while held; revive below
	}
	ino, err := n.m.fs.Iget(n.ino)
	if errors.Is(err, syscall.ESTALE) {
		return nil, syscall.ENOENT
	}
	if err != nil {
		return nil, errno(err)
	}
	if ino.Stat().Generation != n.gen {
		n.m.fs.Iput(ino)
		return nil, syscall.ENOENT
	}
	n.ref = ino
	n.m.hold(n)
	return n.m.fs.Igrab(ino), 0
}

// OnForget gives back the node's reference: the kernel no longer knows
// the node. An inode with no links left is deleted then, unless a file
// is still open on it.
func (n *node) OnForget() {
	n.mu.Lock()
	ref := n.ref
	n.ref = nil
	n.mu.Unlock()
	n.m.drop(n)
	if ref != nil {
		n.m.fs.Iput(ref)
	}
}

// hold records n as holding a reference, the node of its inode number.
func (m *mount) hold(n *node) {
	m.nodesMu.Lock()
	m.held[n] = struct{}{}
	if m.byIno[n.ino] == nil {
		m.byIno[n.ino] = n
	}
	m.nodesMu.Unlock()
}

// drop forgets n in the tables of hold.
func (m *mount) drop(n *node) {
	m.nodesMu.Lock()
	delete(m.held, n)
	if m.byIno[n.ino] == n {
		delete(m.byIno, n.ino)
	}
	m.nodesMu.Unlock()
}

// releaseNodes gives back the references of the nodes the kernel left
// (it sends no FORGET at unmount), so that inodes unlinked while known
// are deleted before the filesystem is closed.
func (m *mount) releaseNodes() {
	m.nodesMu.Lock()
	ns := make([]*node, 0, len(m.held))
	for n := range m.held {
		ns = append(ns, n)
	}
	m.nodesMu.Unlock()
	for _, n := range ns {
		n.OnForget()
	}
}

// child returns the node of ino, whose reference passes to the node (or
// is given back when the inode already has one: a hard link, or a name
// looked up again), and fills out with its attributes.
func (n *node) child(ctx context.Context, ino *ext2.Inode, out *fuse.EntryOut) *gofs.Inode {
	st := ino.Stat()
	n.m.fillAttr(st, &out.Attr)
	m := n.m
	m.nodesMu.Lock()
	if c := m.byIno[st.Ino]; c != nil && c.gen == st.Generation {
		m.nodesMu.Unlock()
		m.fs.Iput(ino) // c holds one
		return c.EmbeddedInode()
	}
	c := &node{m: m, ino: st.Ino, gen: st.Generation, ref: ino}
	m.held[c] = struct{}{}
	m.byIno[st.Ino] = c
	// Under nodesMu, so that no other lookup hands out c before go-fuse
	// has given it its identity.
	in := n.NewInode(ctx, c, stableAttr(st))
	m.nodesMu.Unlock()
	return in
}

// Lookup finds name in the directory: one lookup in the directory inode
// (package ext2's name cache answers it in large directories).
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	dir, e := n.acquire()
	if e != 0 {
		return nil, e
	}
	defer n.m.fs.Iput(dir)
	ino, err := n.m.fs.LookupInode(dir, name)
	if err != nil {
		return nil, errno(err)
	}
	return n.child(ctx, ino, out), 0
}

// Getattr reports the attributes of the inode (through the open file
// when the kernel names one).
func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if ino := handleInode(f); ino != nil {
		n.m.fillAttr(ino.Stat(), &out.Attr)
		return 0
	}
	ino, e := n.acquire()
	if e != 0 {
		return e
	}
	defer n.m.fs.Iput(ino)
	n.m.fillAttr(ino.Stat(), &out.Attr)
	return 0
}

// handleInode is the inode of an open file or directory of ours, nil for
// none.
func handleInode(f gofs.FileHandle) *ext2.Inode {
	switch h := f.(type) {
	case *handle:
		return h.f.Inode()
	case *dirHandle:
		return h.ino
	}
	return nil
}

// Setattr changes the size, mode, owner and times of the inode. It needs
// no name, so it works on a file unlinked while open (fchmod, futimens,
// ftruncate).
func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.m.readOnly {
		return syscall.EROFS
	}
	ino := handleInode(f)
	if ino == nil {
		var e syscall.Errno
		if ino, e = n.acquire(); e != 0 {
			return e
		}
		defer n.m.fs.Iput(ino)
	}
	fsys := n.m.fs
	if size, ok := in.GetSize(); ok {
		if size > 1<<63-1 {
			return syscall.EFBIG
		}
		if err := fsys.Truncate(ino, int64(size)); err != nil {
			return errno(err)
		}
	}
	var c ext2.AttrChange
	var mode uint32
	if mode, c.SetMode = in.GetMode(); c.SetMode {
		if n.StableAttr().Mode == syscall.S_IFLNK {
			return syscall.EOPNOTSUPP // Linux has no lchmod
		}
		c.Mode = uint16(mode & 0o7777)
	}
	c.UID, c.SetUID = in.GetUID()
	c.GID, c.SetGID = in.GetGID()
	c.Atime, c.SetAtime = in.GetATime()
	c.Mtime, c.SetMtime = in.GetMTime()
	if c.SetMode || c.SetUID || c.SetGID || c.SetAtime || c.SetMtime {
		if err := fsys.SetAttr(ino, c); err != nil {
			return errno(err)
		}
	}
	// A truncate by a caller without CAP_FSETID, or a chown, of a file
	// that is not a directory (killpriv.go). The reply carries the new
	// mode.
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 && !ino.IsDir() {
		if _, err := fsys.KillSetID(ino); err != nil {
			return errno(err)
		}
	}
	n.m.fillAttr(ino.Stat(), &out.Attr)
	out.SetTimeout(attrTimeout)
	return 0
}

func wantsWrite(flags uint32) bool {
	return int(flags)&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
}

// Open opens the file's inode: whatever name it has now, or none. The
// reply sets FOPEN_KEEP_CACHE: the kernel keeps the pages it cached of
// the file from earlier opens, since nothing but its own requests
// changes the file (see the package documentation).
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if n.m.readOnly && wantsWrite(flags) {
		return nil, 0, syscall.EROFS
	}
	if n.StableAttr().Mode == syscall.S_IFLNK {
		return nil, 0, syscall.ELOOP
	}
	ino, e := n.acquire()
	if e != 0 {
		return nil, 0, e
	}
	defer n.m.fs.Iput(ino)
	h, e := n.m.open(ino, flags)
	if e != 0 {
		return nil, 0, e
	}
	h.in = n.EmbeddedInode()
	if flags&syscall.O_TRUNC != 0 && n.m.kills.has(ctx) {
		// Truncated by a caller without CAP_FSETID (killpriv.go).
		if e := n.m.killSetID(ino, h.in); e != 0 {
			h.close()
			return nil, 0, e
		}
	}
	return h, openFlags, 0
}

// openFlags are the FOPEN flags of every OPEN and CREATE reply.
const openFlags = fuse.FOPEN_KEEP_CACHE

// open opens ino (the caller keeps its reference; the handle takes its
// own) for the kernel's open flags, truncating it for O_TRUNC.
func (m *mount) open(ino *ext2.Inode, flags uint32) (*handle, syscall.Errno) {
	write := wantsWrite(flags)
	f, err := m.fs.Open(ino, write)
	if err != nil {
		return nil, errno(err)
	}
	if flags&syscall.O_TRUNC != 0 {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, errno(err)
		}
	}
	h := &handle{m: m, f: f, append: flags&syscall.O_APPEND != 0}
	m.register(h)
	return h, 0
}

// caller returns the uid and gid of the process that made the request,
// the owner of what it creates (package ext2 gives the directory's group
// instead below a set-group-ID directory, as inode_init_owner does).
// Without one (not from the kernel) it is this process's.
func caller(ctx context.Context) (uid, gid uint32) {
	if c, ok := fuse.FromContext(ctx); ok && c != nil {
		return c.Uid, c.Gid
	}
	return uint32(os.Getuid()), uint32(os.Getgid())
}

// beginChange starts a change of the directory: it refuses a read-only
// mount and returns the directory's inode with a reference.
func (n *node) beginChange() (*ext2.Inode, syscall.Errno) {
	if n.m.readOnly {
		return nil, syscall.EROFS
	}
	return n.acquire()
}

// Create creates and opens a regular file owned by the caller. Without
// O_EXCL, a regular file another process made meanwhile is opened
// instead.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	dir, e := n.beginChange()
	if e != 0 {
		return nil, nil, 0, e
	}
	defer n.m.fs.Iput(dir)
	fsys := n.m.fs
	uid, gid := caller(ctx)
	ino, err := fsys.Create(dir, name, uint16(mode&0o7777), uid, gid)
	existed := false
	if errors.Is(err, syscall.EEXIST) && flags&syscall.O_EXCL == 0 {
		existed = true
		// Made by another process since the kernel looked: open it,
		// checking the access the kernel could not (it saw no file).
		ino, err = fsys.LookupInode(dir, name)
		if err == nil {
			switch {
			case ino.IsDir():
				err = ext2.ErrIsDir
			case !ino.IsRegular():
				err = ext2.ErrExist
			case !mayOpen(ino.Stat(), uid, gid, flags):
				err = syscall.EACCES
			}
			if err != nil {
				fsys.Iput(ino)
			}
		}
	} else {
		flags &^= syscall.O_TRUNC // new and empty
	}
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	h, e := n.m.open(ino, flags)
	if e != 0 {
		fsys.Iput(ino)
		return nil, nil, 0, e
	}
	if existed && flags&syscall.O_TRUNC != 0 && n.m.kills.has(ctx) {
		// An existing file truncated by a caller without CAP_FSETID
		// (killpriv.go); a file just made keeps the bits it was made
		// with, as with open(2) on a local filesystem. The reply
		// below carries the new mode.
		if e := n.m.killSetID(ino, nil); e != 0 {
			h.close()
			fsys.Iput(ino)
			return nil, nil, 0, e
		}
	}
	in := n.child(ctx, ino, out)
	h.in = in
	return in, h, openFlags, 0
}

// mayOpen reports whether the caller uid:gid may open a file of
// attributes st with the kernel's open flags, by the owner, group or
// other bits (the caller's supplementary groups are not known here, so
// a group member by those alone is refused); root may always.
func mayOpen(st ext2.Stat, uid, gid uint32, flags uint32) bool {
	if uid == 0 {
		return true
	}
	var want uint16
	switch int(flags) & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
		want = 4
	case syscall.O_WRONLY:
		want = 2
	default:
		want = 6
	}
	if flags&syscall.O_TRUNC != 0 {
		want |= 2
	}
	bits := st.Mode & 7
	switch {
	case st.UID == uid:
		bits = st.Mode >> 6 & 7
	case st.GID == gid:
		bits = st.Mode >> 3 & 7
	}
	return bits&want == want
}

// made returns the node of an inode just made, or the error.
func (n *node) made(ctx context.Context, ino *ext2.Inode, err error, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if err != nil {
		return nil, errno(err)
	}
	return n.child(ctx, ino, out), 0
}

// Mkdir makes a directory owned by the caller.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	dir, e := n.beginChange()
	if e != 0 {
		return nil, e
	}
	defer n.m.fs.Iput(dir)
	uid, gid := caller(ctx)
	ino, err := n.m.fs.Mkdir(dir, name, uint16(mode&0o7777), uid, gid)
	return n.made(ctx, ino, err, out)
}

// Mknod makes a device node, fifo, socket or empty regular file owned by
// the caller.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	switch mode & syscall.S_IFMT {
	case 0, syscall.S_IFREG, syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFIFO, syscall.S_IFSOCK:
	default:
		return nil, syscall.EINVAL
	}
	dir, e := n.beginChange()
	if e != 0 {
		return nil, e
	}
	defer n.m.fs.Iput(dir)
	uid, gid := caller(ctx)
	// The kernel's S_IF* bits are ext2's i_mode type bits.
	ino, err := n.m.fs.Mknod(dir, name, uint16(mode&(syscall.S_IFMT|0o7777)),
		unix.Major(uint64(dev)), unix.Minor(uint64(dev)), uid, gid)
	return n.made(ctx, ino, err, out)
}

// Symlink makes a symbolic link to target owned by the caller.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	dir, e := n.beginChange()
	if e != 0 {
		return nil, e
	}
	defer n.m.fs.Iput(dir)
	uid, gid := caller(ctx)
	ino, err := n.m.fs.Symlink(dir, name, target, uid, gid)
	return n.made(ctx, ino, err, out)
}

// Link makes name another link to target's inode.
func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t, ok := target.(*node)
	if !ok || t.m != n.m {
		return nil, syscall.EXDEV
	}
	dir, e := n.beginChange()
	if e != 0 {
		return nil, e
	}
	defer n.m.fs.Iput(dir)
	ino, e := t.acquire()
	if e != 0 {
		return nil, e
	}
	if err := n.m.fs.Link(ino, dir, name); err != nil {
		n.m.fs.Iput(ino)
		return nil, errno(err)
	}
	return n.child(ctx, ino, out), 0
}

// Readlink returns the target of a symbolic link.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	ino, e := n.acquire()
	if e != 0 {
		return nil, e
	}
	defer n.m.fs.Iput(ino)
	target, err := n.m.fs.ReadLink(ino)
	if err != nil {
		return nil, errno(err)
	}
	return []byte(target), 0
}

// Unlink removes a name that is not a directory's. An inode left with no
// links lives on while a node or an open file holds it.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	dir, e := n.beginChange()
	if e != 0 {
		return e
	}
	defer n.m.fs.Iput(dir)
	return errno(n.m.fs.Unlink(dir, name))
}

// Rmdir removes an empty directory.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	dir, e := n.beginChange()
	if e != 0 {
		return e
	}
	defer n.m.fs.Iput(dir)
	return errno(n.m.fs.Rmdir(dir, name))
}

// renameNoReplace is RENAME_NOREPLACE of renameat2(2).
const renameNoReplace = 1

// Rename moves name to newName in newParent. RENAME_NOREPLACE is
// honoured; RENAME_EXCHANGE and RENAME_WHITEOUT fail with EINVAL, as with
// Linux's ext2.
func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags&^renameNoReplace != 0 {
		return syscall.EINVAL
	}
	np, ok := newParent.(*node)
	if !ok || np.m != n.m {
		return syscall.EXDEV
	}
	dir, e := n.beginChange()
	if e != 0 {
		return e
	}
	defer n.m.fs.Iput(dir)
	newDir, e := np.acquire()
	if e != 0 {
		return e
	}
	defer n.m.fs.Iput(newDir)
	var f uint
	if flags&renameNoReplace != 0 {
		f = ext2.RenameNoReplace
	}
	return errno(n.m.fs.Rename(dir, name, newDir, newName, f))
}

// Statfs reports the space and inodes used and free.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	u, err := n.m.fsys.Statfs()
	if err != nil {
		return errno(err)
	}
	out.Blocks = u.Blocks
	out.Bfree = u.FreeBlocks
	out.Bavail = u.AvailBlocks
	out.Files = u.Inodes
	out.Ffree = u.FreeInodes
	out.Bsize = uint32(u.BlockSize)
	out.Frsize = uint32(u.BlockSize)
	out.NameLen = uint32(u.NameMax)
	return 0
}

// Fsync makes an open file durable; for a directory (fsyncdir) or without
// a file it writes back the whole filesystem.
func (n *node) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	switch h := f.(type) {
	case *handle:
		return h.Fsync(ctx, flags)
	case *dirHandle:
		return h.Fsyncdir(ctx, flags)
	}
	if n.m.readOnly {
		return 0
	}
	return errno(n.m.fs.Sync())
}

// Flush is called at each close(2). Closing does not write back, as on a
// local filesystem (data becomes durable at fsync, at writeback and at
// unmount), and the kernel keeps file locks itself, so there is nothing
// to do: the answer is ENOSYS, which the kernel takes as success and
// remembers, sending no more FLUSH requests for the mount
// (fs/fuse/file.c:fuse_flush sets fc->no_flush).
func (n *node) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

// stableAttr is the go-fuse identity of an inode: type, number and
// generation.
func stableAttr(st ext2.Stat) gofs.StableAttr {
	return gofs.StableAttr{Mode: uint32(st.Mode) & syscall.S_IFMT, Ino: uint64(st.Ino), Gen: uint64(st.Generation)}
}

// fillAttr fills out with the attributes of an inode. i_mode is stored
// with Linux's S_IF* type bits, so it passes through as it is.
func (m *mount) fillAttr(st ext2.Stat, out *fuse.Attr) {
	out.Ino = uint64(st.Ino)
	out.Size = uint64(st.Size)
	out.Blocks = st.Blocks
	out.Mode = uint32(st.Mode)
	out.Nlink = uint32(st.Nlink)
	out.Uid = st.UID
	out.Gid = st.GID
	out.Rdev = 0
	if t := st.Mode & layout.ModeFmt; t == layout.ModeChr || t == layout.ModeBlk {
		out.Rdev = uint32(unix.Mkdev(st.RdevMajor, st.RdevMinor))
	}
	out.Blksize = m.blockSize
	atime, mtime, ctime := st.Atime, st.Mtime, st.Ctime
	out.SetTimes(&atime, &mtime, &ctime)
}
