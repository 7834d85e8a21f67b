package fusemount

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpagefs/mpage/ext2fs"
)

// node is a file of the mount: any type, named by its place in the
// go-fuse tree (see the package documentation).
type node struct {
	gofs.Inode
	m *mount // never changes

	// verified is the last path found to name this inode, and the
	// namespace generation (mount.nsGen) it was found at.
	verified atomic.Pointer[verifiedPath]
}

// verifiedPath is a path checked to name a node's inode at a namespace
// generation: while no name is removed or moved (the generation stays),
// the same path still names the same inode.
type verifiedPath struct {
	path string
	gen  uint64
}

var (
	_ gofs.NodeLookuper   = (*node)(nil)
	_ gofs.NodeGetattrer  = (*node)(nil)
	_ gofs.NodeSetattrer  = (*node)(nil)
	_ gofs.NodeOpener     = (*node)(nil)
	_ gofs.NodeCreater    = (*node)(nil)
	_ gofs.NodeMkdirer    = (*node)(nil)
	_ gofs.NodeMknoder    = (*node)(nil)
	_ gofs.NodeUnlinker   = (*node)(nil)
	_ gofs.NodeRmdirer    = (*node)(nil)
	_ gofs.NodeRenamer    = (*node)(nil)
	_ gofs.NodeSymlinker  = (*node)(nil)
	_ gofs.NodeReadlinker = (*node)(nil)
	_ gofs.NodeLinker     = (*node)(nil)
	_ gofs.NodeStatfser   = (*node)(nil)
	_ gofs.NodeFsyncer    = (*node)(nil)
	_ gofs.NodeFlusher    = (*node)(nil)
)

// maxDepth bounds the walk up the go-fuse tree (a name is at most 4096
// bytes, so no path has more elements).
const maxDepth = 4096

// moveRetry is how long after a rename or unlink a stale path is looked
// up again, and how often.
const (
	moveRetry  = 20 * time.Millisecond
	moveTries  = 4
	retryPause = time.Millisecond
)

// path returns the name of n in the image ("/" for the root) from the
// last known parents in the go-fuse tree; ok is false for a node that is
// in no directory any more.
func (n *node) path() (p string, ok bool) {
	var parts []string
	cur := &n.Inode
	for !cur.IsRoot() {
		name, parent := cur.Parent()
		if parent == nil || len(parts) >= maxDepth {
			return "", false
		}
		parts = append(parts, name)
		cur = parent
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "/" + strings.Join(parts, "/"), true
}

// parentPath is the name of the directory holding p.
func parentPath(p string) string { return path.Dir(p) }

// resolveLocked returns the path of n, having made sure that it names
// n's inode (number and generation): either it was checked at the current
// namespace generation, or statLocked checks it now.
//
// Preconditions: n.m.ns is held, shared or exclusively.
func (n *node) resolveLocked() (string, syscall.Errno) {
	if p, ok := n.path(); ok {
		if v := n.verified.Load(); v != nil && v.gen == n.m.nsGen && v.path == p {
			return p, 0
		}
	}
	p, _, e := n.statLocked()
	return p, e
}

// statLocked returns the path of n and its attributes, having checked
// with Lstat that the path names n's inode (number and generation). A
// node whose path is gone or names another inode fails with ENOENT: it
// was unlinked or moved. Just after a rename or unlink go-fuse may not
// have moved its tree yet, so then the check is retried for a moment.
//
// Preconditions: n.m.ns is held, shared or exclusively.
func (n *node) statLocked() (string, fs.FileInfo, syscall.Errno) {
	want := n.StableAttr()
	for try := 0; ; try++ {
		p, ok := n.path()
		var err error
		if ok {
			var fi fs.FileInfo
			fi, err = n.m.fsys.Lstat(p)
			if err == nil {
				ii, e := inodeInfo(fi)
				if e != 0 {
					return "", nil, e
				}
				if uint64(ii.Ino) == want.Ino && uint64(ii.Generation) == want.Gen {
					n.verified.Store(&verifiedPath{path: p, gen: n.m.nsGen})
					return p, fi, 0
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", nil, errno(err)
			}
		}
		if try+1 >= moveTries || time.Since(time.Unix(0, n.m.lastMove.Load())) > moveRetry {
			return "", nil, syscall.ENOENT
		}
		time.Sleep(retryPause)
	}
}

// childPath joins a directory path and a name from the kernel.
func childPath(dir, name string) (string, syscall.Errno) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return "", syscall.EINVAL
	}
	if len(name) > 255 {
		return "", syscall.ENAMETOOLONG
	}
	return path.Join(dir, name), 0
}

// newChild makes (or finds, for a hard link) the node of an inode that
// fi describes and fills out with its attributes.
func (n *node) newChild(ctx context.Context, fi fs.FileInfo, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ii, e := inodeInfo(fi)
	if e != 0 {
		return nil, e
	}
	n.m.fillAttr(ii, &out.Attr)
	return n.NewInode(ctx, &node{m: n.m}, stableAttr(ii)), 0
}

// Lookup finds name in the directory.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.m.ns.RLock()
	defer n.m.ns.RUnlock()
	p, e := n.resolveLocked()
	if e != 0 {
		return nil, e
	}
	cp, e := childPath(p, name)
	if e != 0 {
		return nil, e
	}
	fi, err := n.m.fsys.Lstat(cp)
	if err != nil {
		return nil, errno(err)
	}
	return n.newChild(ctx, fi, out)
}

// Getattr reports the attributes: through the open file when the kernel
// names one (so a file unlinked while open still answers), else by path.
func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var of *ext2fs.File
	switch h := f.(type) {
	case *handle:
		of = h.f
	case *dirHandle:
		of = h.f
	}
	if of != nil {
		fi, err := of.Stat()
		if err != nil {
			return errno(err)
		}
		return n.fillOut(fi, out)
	}
	n.m.ns.RLock()
	defer n.m.ns.RUnlock()
	_, fi, e := n.statLocked()
	if e != 0 {
		return e
	}
	return n.fillOut(fi, out)
}

func (n *node) fillOut(fi fs.FileInfo, out *fuse.AttrOut) syscall.Errno {
	ii, e := inodeInfo(fi)
	if e != 0 {
		return e
	}
	n.m.fillAttr(ii, &out.Attr)
	return 0
}

// Setattr changes the size, mode, owner and times. A size change goes
// through the open file when the kernel names one that is writable
// (ftruncate), the rest by path.
func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.m.readOnly {
		return syscall.EROFS
	}
	h, _ := f.(*handle)
	size, setSize := in.GetSize()
	mode, setMode := in.GetMode()
	uid, setUID := in.GetUID()
	gid, setGID := in.GetGID()
	atime, setAtime := in.GetATime()
	mtime, setMtime := in.GetMTime()
	byHandle := h != nil && h.write
	needPath := setMode || setUID || setGID || setAtime || setMtime || (setSize && !byHandle) || h == nil

	n.m.ns.RLock()
	defer n.m.ns.RUnlock()
	var p string
	if needPath {
		var e syscall.Errno
		if p, e = n.resolveLocked(); e != 0 {
			return e
		}
	}
	fsys := n.m.fsys
	if setSize {
		if size > 1<<63-1 {
			return syscall.EFBIG
		}
		if n.StableAttr().Mode == syscall.S_IFDIR {
			return syscall.EISDIR
		}
		var err error
		if byHandle {
			err = h.f.Truncate(int64(size))
		} else {
			err = fsys.Truncate(p, int64(size))
		}
		if err != nil {
			return errno(err)
		}
	}
	if setUID || setGID {
		u, g := -1, -1
		if setUID {
			u = int(uid)
		}
		if setGID {
			g = int(gid)
		}
		if err := fsys.Lchown(p, u, g); err != nil {
			return errno(err)
		}
	}
	if setMode {
		if n.StableAttr().Mode == syscall.S_IFLNK {
			return syscall.EOPNOTSUPP // Linux has no lchmod
		}
		if err := fsys.Chmod(p, permMode(mode)); err != nil {
			return errno(err)
		}
	}
	if setAtime || setMtime {
		// A zero time.Time leaves that time as it is.
		var at, mt time.Time
		if setAtime {
			at = atime
		}
		if setMtime {
			mt = mtime
		}
		if err := fsys.Lchtimes(p, at, mt); err != nil {
			return errno(err)
		}
	}
	var fi fs.FileInfo
	var err error
	if h != nil {
		fi, err = h.f.Stat()
	} else {
		fi, err = fsys.Lstat(p)
	}
	if err != nil {
		return errno(err)
	}
	out.SetTimeout(attrTimeout)
	return n.fillOut(fi, out)
}

// openFlags converts the kernel's open flags to those of
// ext2fs.OpenFile.
func openFlags(flags uint32) int {
	of := int(flags) & syscall.O_ACCMODE
	if flags&syscall.O_APPEND != 0 {
		of |= os.O_APPEND
	}
	if flags&syscall.O_TRUNC != 0 {
		of |= os.O_TRUNC
	}
	return of
}

func wantsWrite(flags uint32) bool {
	return int(flags)&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
}

// Open opens the file. The reply does not set FOPEN_KEEP_CACHE, so the
// kernel drops the pages it cached of the file and reads them from us
// again (see the package documentation).
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if n.m.readOnly && wantsWrite(flags) {
		return nil, 0, syscall.EROFS
	}
	if n.StableAttr().Mode == syscall.S_IFLNK {
		return nil, 0, syscall.ELOOP
	}
	n.m.ns.RLock()
	defer n.m.ns.RUnlock()
	p, e := n.resolveLocked()
	if e != 0 {
		return nil, 0, e
	}
	of := openFlags(flags)
	f, err := n.m.fsys.OpenFile(p, of, 0)
	if err != nil {
		return nil, 0, errno(err)
	}
	return n.m.newHandle(f, of), 0, 0
}

// caller returns the uid and gid of the process that made the request.
func caller(ctx context.Context) (uid, gid uint32, ok bool) {
	c, ok := fuse.FromContext(ctx)
	if !ok || c == nil {
		return 0, 0, false
	}
	return c.Uid, c.Gid, true
}

// ownLocked gives the new file at cp the caller's uid, and its gid unless
// its directory is set-group-ID (then package ext2 gave it the
// directory's group, as inode_init_owner does). fi is its attributes;
// the returned attributes are current.
//
// Preconditions: n.m.ns is held.
func (n *node) ownLocked(ctx context.Context, cp string, fi fs.FileInfo, stat func() (fs.FileInfo, error)) (fs.FileInfo, syscall.Errno) {
	uid, gid, ok := caller(ctx)
	if !ok {
		return fi, 0
	}
	ii, e := inodeInfo(fi)
	if e != 0 {
		return nil, e
	}
	u, g := -1, -1
	if ii.UID != uid {
		u = int(uid)
	}
	if ii.GID != gid {
		dir, err := n.m.fsys.Lstat(parentPath(cp))
		if err != nil {
			return nil, errno(err)
		}
		if dir.Mode()&fs.ModeSetgid == 0 {
			g = int(gid)
		}
	}
	if u == -1 && g == -1 {
		return fi, 0
	}
	if err := n.m.fsys.Lchown(cp, u, g); err != nil {
		return nil, errno(err)
	}
	fi, err := stat()
	if err != nil {
		return nil, errno(err)
	}
	return fi, 0
}

// created gives the file just made at cp its owner and returns its
// node.
//
// Preconditions: n.m.ns is held.
func (n *node) created(ctx context.Context, cp string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	stat := func() (fs.FileInfo, error) { return n.m.fsys.Lstat(cp) }
	fi, err := stat()
	if err != nil {
		return nil, errno(err)
	}
	fi, e := n.ownLocked(ctx, cp, fi, stat)
	if e != 0 {
		return nil, e
	}
	return n.newChild(ctx, fi, out)
}

// begin starts a change of the directory: it refuses a read-only mount,
// takes the namespace lock shared and resolves the directory and the new
// name. The caller calls n.m.ns.RUnlock when done.
func (n *node) begin(name string) (cp string, e syscall.Errno) {
	if n.m.readOnly {
		return "", syscall.EROFS
	}
	n.m.ns.RLock()
	p, e := n.resolveLocked()
	if e == 0 {
		cp, e = childPath(p, name)
	}
	if e != 0 {
		n.m.ns.RUnlock()
	}
	return cp, e
}

// Create creates and opens a regular file. Without O_EXCL an existing
// file of the name is opened instead (a race with another creator).
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	cp, e := n.begin(name)
	if e != 0 {
		return nil, nil, 0, e
	}
	defer n.m.ns.RUnlock()
	fsys := n.m.fsys
	of := openFlags(flags)
	f, err := fsys.OpenFile(cp, of|os.O_CREATE|os.O_EXCL, permMode(mode))
	made := err == nil
	if errors.Is(err, fs.ErrExist) && flags&syscall.O_EXCL == 0 {
		f, err = fsys.OpenFile(cp, of, 0)
	}
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	fi, err := f.Stat()
	if err == nil && made {
		fi, e = n.ownLocked(ctx, cp, fi, f.Stat)
		if e != 0 {
			f.Close()
			return nil, nil, 0, e
		}
	}
	if err != nil {
		f.Close()
		return nil, nil, 0, errno(err)
	}
	child, e := n.newChild(ctx, fi, out)
	if e != 0 {
		f.Close()
		return nil, nil, 0, e
	}
	return child, n.m.newHandle(f, of), 0, 0
}

// Mkdir makes a directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	cp, e := n.begin(name)
	if e != 0 {
		return nil, e
	}
	defer n.m.ns.RUnlock()
	if err := n.m.fsys.Mkdir(cp, permMode(mode)); err != nil {
		return nil, errno(err)
	}
	return n.created(ctx, cp, out)
}

// Mknod makes a device node, fifo, socket or empty regular file.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	typ, ok := typeMode(mode)
	if !ok {
		return nil, syscall.EINVAL
	}
	cp, e := n.begin(name)
	if e != 0 {
		return nil, e
	}
	defer n.m.ns.RUnlock()
	if err := n.m.fsys.Mknod(cp, typ|permMode(mode), uint64(dev)); err != nil {
		return nil, errno(err)
	}
	return n.created(ctx, cp, out)
}

// Symlink makes a symbolic link to target.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	cp, e := n.begin(name)
	if e != 0 {
		return nil, e
	}
	defer n.m.ns.RUnlock()
	if err := n.m.fsys.Symlink(target, cp); err != nil {
		return nil, errno(err)
	}
	return n.created(ctx, cp, out)
}

// Link makes name another link to target.
func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	cp, e := n.begin(name)
	if e != 0 {
		return nil, e
	}
	defer n.m.ns.RUnlock()
	tp, e := t.resolveLocked()
	if e != 0 {
		return nil, e
	}
	if err := n.m.fsys.Link(tp, cp); err != nil {
		return nil, errno(err)
	}
	fi, err := n.m.fsys.Lstat(cp)
	if err != nil {
		return nil, errno(err)
	}
	return n.newChild(ctx, fi, out)
}

// Readlink returns the target of a symbolic link.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	n.m.ns.RLock()
	defer n.m.ns.RUnlock()
	p, e := n.resolveLocked()
	if e != 0 {
		return nil, e
	}
	target, err := n.m.fsys.Readlink(p)
	if err != nil {
		return nil, errno(err)
	}
	return []byte(target), 0
}

// beginMove starts a removal or rename in the directory: it refuses a
// read-only mount and takes the namespace lock exclusively. The caller
// calls n.m.endMove when done.
func (n *node) beginMove() syscall.Errno {
	if n.m.readOnly {
		return syscall.EROFS
	}
	n.m.ns.Lock()
	return 0
}

func (m *mount) endMove() {
	m.nsGen++
	m.lastMove.Store(time.Now().UnixNano())
	m.ns.Unlock()
}

// remove removes name, which must be a directory if dir is set and must
// not be one otherwise.
func (n *node) remove(name string, dir bool) syscall.Errno {
	if e := n.beginMove(); e != 0 {
		return e
	}
	defer n.m.endMove()
	p, e := n.resolveLocked()
	if e != 0 {
		return e
	}
	cp, e := childPath(p, name)
	if e != 0 {
		return e
	}
	fi, err := n.m.fsys.Lstat(cp)
	if err != nil {
		return errno(err)
	}
	switch {
	case dir && !fi.IsDir():
		return syscall.ENOTDIR
	case !dir && fi.IsDir():
		return syscall.EISDIR
	}
	return errno(n.m.fsys.Remove(cp))
}

// Unlink removes a name that is not a directory's.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno { return n.remove(name, false) }

// Rmdir removes an empty directory.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno { return n.remove(name, true) }

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
	if !ok {
		return syscall.EXDEV
	}
	if e := n.beginMove(); e != 0 {
		return e
	}
	defer n.m.endMove()
	p, e := n.resolveLocked()
	if e != 0 {
		return e
	}
	npp, e := np.resolveLocked()
	if e != 0 {
		return e
	}
	from, e := childPath(p, name)
	if e != 0 {
		return e
	}
	to, e := childPath(npp, newName)
	if e != 0 {
		return e
	}
	if flags&renameNoReplace != 0 {
		// With the namespace lock held exclusively, no name can
		// appear between this check and the rename.
		_, err := n.m.fsys.Lstat(to)
		if err == nil {
			return syscall.EEXIST
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return errno(err)
		}
	}
	return errno(n.m.fsys.Rename(from, to))
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
	return errno(n.m.fsys.Sync())
}

// Flush is called at each close(2); see handle.Flush.
func (n *node) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return h.Flush(ctx)
	}
	return 0
}
