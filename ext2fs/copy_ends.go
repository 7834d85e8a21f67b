package ext2fs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2/layout"
)

// The two sources and two destinations of the copier.
var (
	_ copySource = hostSource{}
	_ copySource = imageSource{}
	_ copyDest   = hostDest{}
	_ copyDest   = imageDest{}
)

// hostSource reads host files. A directory being copied is held open,
// and its entries are stat'ed and opened relative to it (fstatat,
// openat): the kernel resolves one name per call, not the whole path.
type hostSource struct{}

// hostEnt is the handle of a host file: its path, and the open
// directory it was found in.
type hostEnt struct {
	path   string
	parent int    // the directory's descriptor, -1 for the top
	base   string // the name in parent
	self   *os.File
}

// statNode reads a copyNode from a stat(2) result.
func statNode(st *unix.Stat_t) copyNode {
	return copyNode{
		mode: fileMode(uint16(st.Mode)), size: st.Size,
		uid: st.Uid, gid: st.Gid,
		atime: time.Unix(st.Atim.Sec, st.Atim.Nsec), mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		blocks: st.Blocks, nlink: uint64(st.Nlink), key: fileKey{st.Dev, st.Ino}, rdev: st.Rdev,
	}
}

func (hostSource) top(name string, follow bool) (*srcEnt, error) {
	var st unix.Stat_t
	op, stat := "lstat", unix.Lstat
	if follow {
		op, stat = "stat", unix.Stat
	}
	if err := ignoringEINTR(func() error { return stat(name, &st) }); err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return &srcEnt{name: name, node: statNode(&st), h: &hostEnt{path: name, parent: -1}}, nil
}

// children lists a host directory in name order, and keeps it open for
// child and open until release.
func (hostSource) children(dir *srcEnt) ([]srcChild, error) {
	h := dir.h.(*hostEnt)
	if h.self == nil {
		f, err := os.Open(h.path)
		if err != nil {
			return nil, err
		}
		h.self = f
	}
	names, err := h.self.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	kids := make([]srcChild, len(names))
	for i, name := range names {
		kids[i] = srcChild{name: name}
	}
	return kids, nil
}

func (hostSource) child(dir *srcEnt, c srcChild) (*srcEnt, error) {
	d := dir.h.(*hostEnt)
	p := filepath.Join(d.path, c.name)
	fd := int(d.self.Fd())
	var st unix.Stat_t
	err := ignoringEINTR(func() error { return unix.Fstatat(fd, c.name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	return &srcEnt{name: p, node: statNode(&st), h: &hostEnt{path: p, parent: fd, base: c.name}}, nil
}

func (hostSource) readlink(e *srcEnt) (string, error) { return os.Readlink(e.h.(*hostEnt).path) }

func (hostSource) open(e *srcEnt) (srcData, error) {
	h := e.h.(*hostEnt)
	var fd int
	err := ignoringEINTR(func() (err error) {
		if h.parent >= 0 {
			fd, err = unix.Openat(h.parent, h.base, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		} else {
			fd, err = unix.Open(h.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		}
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: h.path, Err: err}
	}
	// A file with a block for each byte has no holes to look for (cp's
	// test for a sparse file): SEEK_DATA and SEEK_HOLE are answered
	// without asking.
	dense := e.node.blocks*512 >= e.node.size
	return &hostSrcFile{fd: fd, name: h.path, dense: dense, size: e.node.size}, nil
}

// release closes a directory held open by children.
func (hostSource) release(e *srcEnt) {
	if h := e.h.(*hostEnt); h.self != nil {
		h.self.Close()
		h.self = nil
	}
}

// hostSrcFile is a host regular file open for a copy, read with pread(2)
// into the copy's buffer.
type hostSrcFile struct {
	fd    int
	name  string
	dense bool  // no holes: SEEK_DATA and SEEK_HOLE answered from size
	size  int64 // as stat'ed
}

// ReadAt reads len(p) bytes at off, as os.File.ReadAt: fewer only at
// the end of the file (io.EOF) or on an error.
func (f *hostSrcFile) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		var m int
		err := ignoringEINTR(func() (err error) {
			m, err = unix.Pread(f.fd, p[n:], off+int64(n))
			return err
		})
		if err != nil {
			return n, &fs.PathError{Op: "read", Path: f.name, Err: err}
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

func (f *hostSrcFile) Seek(off int64, whence int) (int64, error) {
	if f.dense && (whence == SeekData || whence == SeekHole) {
		switch {
		case off >= f.size:
			return 0, &fs.PathError{Op: "seek", Path: f.name, Err: syscall.ENXIO}
		case whence == SeekData:
			return off, nil
		default:
			return f.size, nil
		}
	}
	n, err := unix.Seek(f.fd, off, whence)
	if err != nil {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: err}
	}
	return n, nil
}

func (f *hostSrcFile) Close() error {
	if err := unix.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

// ignoringEINTR retries fn while it fails with EINTR.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}

// imageSource reads an image by inodes: a directory's entries are taken
// as they are, in directory order, whatever their names.
type imageSource struct{ fsys *FS }

func imageNode(st ext2.Stat) copyNode {
	return copyNode{
		mode: fileMode(st.Mode), uid: st.UID, gid: st.GID, atime: st.Atime, mtime: st.Mtime,
		size: st.Size, blocks: int64(st.Blocks), nlink: uint64(st.Nlink),
		key: fileKey{0, uint64(st.Ino)}, rdev: mkdev(st.RdevMajor, st.RdevMinor),
	}
}

func (s imageSource) ino(e *srcEnt) *ext2.Inode { return e.h.(*ext2.Inode) }

func (s imageSource) top(name string, follow bool) (*srcEnt, error) {
	rel, err := osName(name)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	ino, err := s.fsys.walk(rel, follow)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return &srcEnt{name: path.Join("/", rel), node: imageNode(ino.Stat()), h: ino}, nil
}

func (s imageSource) children(dir *srcEnt) ([]srcChild, error) {
	ents, err := s.fsys.fs.ReadDir(s.ino(dir))
	if err != nil {
		return nil, pathErr("readdir", dir.name, err)
	}
	kids := make([]srcChild, 0, len(ents))
	for _, ent := range ents {
		if ent.Name != "." && ent.Name != ".." {
			kids = append(kids, srcChild{name: ent.Name, ino: ent.Ino})
		}
	}
	return kids, nil
}

func (s imageSource) child(dir *srcEnt, c srcChild) (*srcEnt, error) {
	name := path.Join(dir.name, c.name)
	ino, err := s.fsys.fs.Iget(c.ino)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return &srcEnt{name: name, node: imageNode(ino.Stat()), h: ino}, nil
}

func (s imageSource) readlink(e *srcEnt) (string, error) {
	target, err := s.fsys.fs.ReadLink(s.ino(e))
	return target, pathErr("readlink", e.name, err)
}

func (s imageSource) open(e *srcEnt) (srcData, error) {
	f, err := s.fsys.fs.Open(s.ino(e), false)
	if err != nil {
		return nil, pathErr("open", e.name, err)
	}
	return f, nil
}

func (s imageSource) release(e *srcEnt) { s.fsys.fs.Iput(s.ino(e)) }

// hostDest writes below a host directory through an os.Root: no name or
// symbolic link met on the way leads outside it. It works by whole
// names; its directory handles are nil.
type hostDest struct{ root *os.Root }

func (h hostDest) lstat(n dstName) (fs.FileMode, error) {
	fi, err := h.root.Lstat(n.full)
	if err != nil {
		return 0, err
	}
	return fi.Mode(), nil
}

func (h hostDest) mkdir(n dstName) (dstDir, error) { return nil, h.root.Mkdir(n.full, 0o700) }
func (h hostDest) openDir(dstName) (dstDir, error) { return nil, nil }
func (h hostDest) closeDir(dstDir)                 {}

// createFlag is the open flag of copyDest.create.
func createFlag(trunc bool) int {
	if trunc {
		return os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	return os.O_WRONLY | os.O_CREATE | os.O_EXCL
}

func (h hostDest) create(n dstName, trunc bool) (dstData, error) {
	return h.root.OpenFile(n.full, createFlag(trunc), 0o600)
}

func (h hostDest) symlink(target string, n dstName) error { return h.root.Symlink(target, n.full) }
func (h hostDest) link(oldname string, n dstName) error   { return h.root.Link(oldname, n.full) }
func (h hostDest) remove(n dstName) error                 { return h.root.Remove(n.full) }

// setAttrs sets owner, mode and times by name, in that order (chown
// clears setuid and setgid, so chmod comes after it).
func (h hostDest) setAttrs(n dstName, _ any, a dstAttrs) error {
	if a.owner {
		err := h.root.Lchown(n.full, int(a.uid), int(a.gid))
		if err != nil && !(errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0) {
			return err // an ordinary user keeps going, as cp -a does
		}
	}
	if a.chmod {
		if err := h.root.Chmod(n.full, a.mode); err != nil {
			return err
		}
	}
	if a.times {
		return h.lchtimes(n.full, a.atime, a.mtime)
	}
	return nil
}

// parent opens the directory holding name inside the root, and returns
// it with name's last element, for the *at calls os.Root lacks.
func (h hostDest) parent(name string) (*os.File, string, error) {
	name = path.Clean(name)
	dir, base := path.Split(name)
	if name == "." {
		dir, base = ".", "."
	} else if !validName(base) {
		return nil, "", &fs.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
	}
	if dir == "" {
		dir = "."
	}
	d, err := h.root.Open(path.Clean(dir))
	if err != nil {
		return nil, "", err
	}
	return d, base, nil
}

func (h hostDest) mknod(n dstName, mode fs.FileMode, rdev uint64) error {
	d, base, err := h.parent(n.full)
	if err != nil {
		return err
	}
	defer d.Close()
	m := uint32(mode.Perm())
	switch {
	case mode&fs.ModeNamedPipe != 0:
		m |= unix.S_IFIFO
	case mode&fs.ModeSocket != 0:
		m |= unix.S_IFSOCK
	case mode&fs.ModeCharDevice != 0:
		m |= unix.S_IFCHR
	case mode&fs.ModeDevice != 0:
		m |= unix.S_IFBLK
	}
	if err := unix.Mknodat(int(d.Fd()), base, m, int(rdev)); err != nil {
		return &fs.PathError{Op: "mknod", Path: n.full, Err: err}
	}
	return nil
}

func (h hostDest) lchtimes(name string, atime, mtime time.Time) error {
	d, base, err := h.parent(name)
	if err != nil {
		return err
	}
	defer d.Close()
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(int(d.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "chtimes", Path: name, Err: err}
	}
	return nil
}

// imageDest writes into an image. Inside a directory it holds (a
// dstDir: the directory's *ext2.Inode) it works on that inode and a name
// in it, with no path walk; the top of a copy, which has no handle, goes
// by its whole name through FS's os-style methods, and names never lead
// outside the image, as the image resolves symbolic links inside it.
// Files are made with the owner of FS's new files until setAttrs.
type imageDest struct {
	fsys     *FS
	uid, gid uint32 // the owner of new files (FS.owner, asked once)
}

func newImageDest(fsys *FS) imageDest {
	uid, gid := fsys.owner()
	return imageDest{fsys: fsys, uid: uid, gid: gid}
}

// dirOf returns the directory inode of a handle.
func dirOf(d dstDir) *ext2.Inode { return d.(*ext2.Inode) }

// lookup returns the inode of n, held by the directory handle n.dir,
// with a reference.
func (m imageDest) lookup(n dstName) (*ext2.Inode, error) {
	e := m.fsys.fs
	num, err := e.LookupIn(dirOf(n.dir), n.base)
	if err != nil {
		return nil, err
	}
	return e.Iget(num)
}

func (m imageDest) lstat(n dstName) (fs.FileMode, error) {
	if n.dir == nil {
		fi, err := m.fsys.Lstat(n.full)
		if err != nil {
			return 0, err
		}
		return fi.Mode(), nil
	}
	ino, err := m.lookup(n)
	if err != nil {
		return 0, pathErr("lstat", n.full, err)
	}
	defer m.fsys.fs.Iput(ino)
	return fileMode(ino.Stat().Mode), nil
}

func (m imageDest) mkdir(n dstName) (dstDir, error) {
	if n.dir == nil {
		if err := m.fsys.Mkdir(n.full, 0o700); err != nil {
			return nil, err
		}
		return m.openDir(n)
	}
	ino, err := m.fsys.fs.Mkdir(dirOf(n.dir), n.base, extMode(0o700), m.uid, m.gid)
	if err != nil {
		return nil, pathErr("mkdir", n.full, err)
	}
	return ino, nil
}

// openDir returns the directory n, not following a final symbolic link.
func (m imageDest) openDir(n dstName) (dstDir, error) {
	var ino *ext2.Inode
	var err error
	if n.dir == nil {
		var rel string
		if rel, err = osName(n.full); err == nil {
			ino, err = m.fsys.walk(rel, false)
		}
	} else {
		ino, err = m.lookup(n)
	}
	if err != nil {
		return nil, pathErr("open", n.full, err)
	}
	if !ino.IsDir() {
		m.fsys.fs.Iput(ino)
		return nil, &fs.PathError{Op: "open", Path: n.full, Err: errNotDir}
	}
	return ino, nil
}

func (m imageDest) closeDir(d dstDir) {
	if d != nil {
		m.fsys.fs.Iput(dirOf(d))
	}
}

func (m imageDest) create(n dstName, trunc bool) (dstData, error) {
	if n.dir != nil {
		// Made in the directory held; a name that is there already
		// (Replace) is opened by its whole name below, as OpenFile
		// does it.
		ino, err := m.fsys.fs.Create(dirOf(n.dir), n.base, extMode(0o600), m.uid, m.gid)
		if err == nil {
			f, err := m.fsys.newFile(n.full, ino, os.O_WRONLY|os.O_CREATE)
			if err != nil {
				return nil, pathErr("open", n.full, err)
			}
			return f, nil
		}
		if !trunc || !errors.Is(err, fs.ErrExist) {
			return nil, pathErr("open", n.full, err)
		}
	}
	f, err := m.fsys.OpenFile(n.full, createFlag(trunc), 0o600)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (m imageDest) symlink(target string, n dstName) error {
	if n.dir == nil {
		return m.fsys.Symlink(target, n.full)
	}
	ino, err := m.fsys.fs.Symlink(dirOf(n.dir), n.base, target, m.uid, m.gid)
	if err != nil {
		return linkErr("symlink", target, n.full, err)
	}
	m.fsys.fs.Iput(ino)
	return nil
}

// link, mknod: rare in a tree; by whole names.
func (m imageDest) link(oldname string, n dstName) error { return m.fsys.Link(oldname, n.full) }

func (m imageDest) mknod(n dstName, mode fs.FileMode, rdev uint64) error {
	return m.fsys.Mknod(n.full, mode, rdev)
}

func (m imageDest) remove(n dstName) error {
	if n.dir == nil {
		return m.fsys.Remove(n.full)
	}
	e := m.fsys.fs
	err := e.Unlink(dirOf(n.dir), n.base)
	if errors.Is(err, syscall.EISDIR) {
		err = e.Rmdir(dirOf(n.dir), n.base)
	}
	return pathErr("remove", n.full, err)
}

// setAttrs sets owner, mode and times in one change of the inode: self
// (the directory or open file the copy holds) or n looked up in its
// directory; the top without a handle goes by name.
func (m imageDest) setAttrs(n dstName, self any, a dstAttrs) error {
	var ino *ext2.Inode
	switch s := self.(type) {
	case *ext2.Inode:
		ino = s
	case *File:
		ino = s.ino
	default:
		if n.dir == nil {
			return m.setAttrsByName(n.full, a)
		}
		var err error
		if ino, err = m.lookup(n); err != nil {
			return pathErr("chmod", n.full, err)
		}
		defer m.fsys.fs.Iput(ino)
	}
	if err := m.fsys.checkWritable(); err != nil {
		return &fs.PathError{Op: "chmod", Path: n.full, Err: err}
	}
	ino.Lock()
	defer ino.Unlock()
	if m.fsys.fs.ReadOnly() {
		return &fs.PathError{Op: "chmod", Path: n.full, Err: errReadOnly}
	}
	now := time.Now()
	ino.UpdateLocked(func(d *layout.Inode) {
		if a.owner {
			d.SetUID(a.uid)
			d.SetGID(a.gid)
		}
		if a.chmod {
			d.Mode = d.Mode&layout.ModeFmt | extMode(a.mode)
		}
		if a.times && !a.atime.IsZero() {
			setTime(&d.Atime, &d.AtimeExtra, a.atime)
		}
		if a.times && !a.mtime.IsZero() {
			setTime(&d.Mtime, &d.MtimeExtra, a.mtime)
		}
		setTime(&d.Ctime, &d.CtimeExtra, now)
	})
	return nil
}

// setAttrsByName is setAttrs through the os-style methods.
func (m imageDest) setAttrsByName(name string, a dstAttrs) error {
	if a.owner {
		if err := m.fsys.Lchown(name, int(a.uid), int(a.gid)); err != nil {
			return err
		}
	}
	if a.chmod {
		if err := m.fsys.Chmod(name, a.mode); err != nil {
			return err
		}
	}
	if a.times {
		return m.fsys.Lchtimes(name, a.atime, a.mtime)
	}
	return nil
}
