package ext2fs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpagefs/mpage/ext2"
)

// The two sources and two destinations of the copier.
var (
	_ copySource = hostSource{}
	_ copySource = imageSource{}
	_ copyDest   = hostDest{}
	_ copyDest   = imageDest{}
)

// hostSource reads host files by their paths.
type hostSource struct{}

// hostNode reads a copyNode from a host FileInfo.
func hostNode(fi fs.FileInfo) copyNode {
	n := copyNode{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime(), atime: fi.ModTime(), nlink: 1, blocks: (fi.Size() + 511) / 512}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		n.uid, n.gid = st.Uid, st.Gid
		n.atime = time.Unix(st.Atim.Sec, st.Atim.Nsec)
		n.mtime = time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
		n.blocks = st.Blocks
		n.nlink = uint64(st.Nlink)
		n.key = fileKey{st.Dev, st.Ino}
		n.rdev = st.Rdev
	}
	return n
}

func (hostSource) top(name string, follow bool) (*srcEnt, error) {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(name)
	if err != nil {
		return nil, err
	}
	return &srcEnt{name: name, node: hostNode(fi), h: name}, nil
}

// children lists a host directory in name order.
func (hostSource) children(dir *srcEnt) ([]srcChild, error) {
	f, err := os.Open(dir.h.(string))
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
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
	p := filepath.Join(dir.h.(string), c.name)
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	return &srcEnt{name: p, node: hostNode(fi), h: p}, nil
}

func (hostSource) readlink(e *srcEnt) (string, error) { return os.Readlink(e.h.(string)) }
func (hostSource) open(e *srcEnt) (srcData, error)    { return os.Open(e.h.(string)) }
func (hostSource) release(*srcEnt)                    {}

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
// symbolic link met on the way leads outside it.
type hostDest struct{ root *os.Root }

func (h hostDest) lstat(name string) (fs.FileMode, error) {
	fi, err := h.root.Lstat(name)
	if err != nil {
		return 0, err
	}
	return fi.Mode(), nil
}

func (h hostDest) mkdir(name string) error { return h.root.Mkdir(name, 0o700) }

// createFlag is the open flag of copyDest.create.
func createFlag(trunc bool) int {
	if trunc {
		return os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	return os.O_WRONLY | os.O_CREATE | os.O_EXCL
}

func (h hostDest) create(name string, trunc bool) (dstData, error) {
	return h.root.OpenFile(name, createFlag(trunc), 0o600)
}

func (h hostDest) symlink(target, name string) error  { return h.root.Symlink(target, name) }
func (h hostDest) link(oldname, newname string) error { return h.root.Link(oldname, newname) }
func (h hostDest) remove(name string) error           { return h.root.Remove(name) }

func (h hostDest) chmod(name string, mode fs.FileMode) error { return h.root.Chmod(name, mode) }

func (h hostDest) lchown(name string, uid, gid uint32) error {
	err := h.root.Lchown(name, int(uid), int(gid))
	if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		return nil // as cp -a does for an ordinary user: keep going
	}
	return err
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

func (h hostDest) mknod(name string, mode fs.FileMode, rdev uint64) error {
	d, base, err := h.parent(name)
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
		return &fs.PathError{Op: "mknod", Path: name, Err: err}
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

// imageDest writes into an image by absolute names; names never lead
// outside the image, as the image resolves symbolic links inside it.
type imageDest struct{ fsys *FS }

func (m imageDest) lstat(name string) (fs.FileMode, error) {
	fi, err := m.fsys.Lstat(name)
	if err != nil {
		return 0, err
	}
	return fi.Mode(), nil
}

func (m imageDest) mkdir(name string) error { return m.fsys.Mkdir(name, 0o700) }

func (m imageDest) create(name string, trunc bool) (dstData, error) {
	f, err := m.fsys.OpenFile(name, createFlag(trunc), 0o600)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (m imageDest) symlink(target, name string) error  { return m.fsys.Symlink(target, name) }
func (m imageDest) link(oldname, newname string) error { return m.fsys.Link(oldname, newname) }
func (m imageDest) remove(name string) error           { return m.fsys.Remove(name) }

func (m imageDest) mknod(name string, mode fs.FileMode, rdev uint64) error {
	return m.fsys.Mknod(name, mode, rdev)
}

func (m imageDest) chmod(name string, mode fs.FileMode) error { return m.fsys.Chmod(name, mode) }

func (m imageDest) lchown(name string, uid, gid uint32) error {
	return m.fsys.Lchown(name, int(uid), int(gid))
}

func (m imageDest) lchtimes(name string, atime, mtime time.Time) error {
	return m.fsys.Lchtimes(name, atime, mtime)
}
