package main

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// hostNode reads a node from a host FileInfo.
func hostNode(fi fs.FileInfo) node {
	n := node{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime(), atime: fi.ModTime(), nlink: 1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		n.uid, n.gid = st.Uid, st.Gid
		n.atime = time.Unix(st.Atim.Sec, st.Atim.Nsec)
		n.mtime = time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
		n.blocks = st.Blocks
		n.nlink = uint64(st.Nlink)
		n.ino = st.Ino
		n.rdev = st.Rdev
	} else {
		n.blocks = (n.size + 511) / 512
	}
	return n
}

// hostSrc is a host directory tree read through its path; names are
// relative to base (which may itself be a file: name "." is base).
type hostSrc struct{ base string }

func (h hostSrc) full(name string) string { return filepath.Join(h.base, filepath.FromSlash(name)) }

func (h hostSrc) lstat(name string) (node, error) {
	fi, err := os.Lstat(h.full(name))
	if err != nil {
		return node{}, err
	}
	return hostNode(fi), nil
}

func (h hostSrc) stat(name string) (node, error) {
	fi, err := os.Stat(h.full(name))
	if err != nil {
		return node{}, err
	}
	return hostNode(fi), nil
}

func (h hostSrc) readDir(name string) ([]string, error) {
	f, err := os.Open(h.full(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (h hostSrc) readlink(name string) (string, error) { return os.Readlink(h.full(name)) }

func (h hostSrc) open(name string) (srcFile, error) {
	f, err := os.Open(h.full(name))
	if err != nil {
		return nil, err
	}
	return hostFile{f}, nil
}

// hostFile is an open host file with SEEK_DATA and SEEK_HOLE.
type hostFile struct{ *os.File }

func (f hostFile) seekData(off int64) (int64, error) {
	return unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
}

func (f hostFile) seekHole(off int64) (int64, error) {
	return unix.Seek(int(f.Fd()), off, unix.SEEK_HOLE)
}

// hostDst is a host directory every write is confined to (os.Root): no
// name or symbolic link met on the way leads outside it.
type hostDst struct{ root *os.Root }

func rootName(name string) string {
	if name == "" {
		return "."
	}
	return filepath.FromSlash(name)
}

func (h hostDst) lstat(name string) (node, error) {
	fi, err := h.root.Lstat(rootName(name))
	if err != nil {
		return node{}, err
	}
	return hostNode(fi), nil
}

func (h hostDst) mkdir(name string, perm fs.FileMode) error {
	return h.root.Mkdir(rootName(name), perm)
}

func (h hostDst) create(name string, perm fs.FileMode) (dstFile, error) {
	return h.root.OpenFile(rootName(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
}

func (h hostDst) symlink(target, name string) error { return h.root.Symlink(target, rootName(name)) }

func (h hostDst) link(oldname, newname string) error {
	return h.root.Link(rootName(oldname), rootName(newname))
}

// parentFD opens the directory holding name inside the root, and returns
// it with name's last element, for the *at calls os.Root lacks.
func (h hostDst) parentFD(name string) (*os.File, string, error) {
	dir, base := path.Split(name)
	if dir == "" {
		dir = "."
	}
	if !validName(base) {
		return nil, "", &fs.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
	}
	d, err := h.root.Open(rootName(path.Clean(dir)))
	if err != nil {
		return nil, "", err
	}
	return d, base, nil
}

func (h hostDst) mknod(name string, mode fs.FileMode, rdev uint64) error {
	d, base, err := h.parentFD(name)
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

func (h hostDst) remove(name string) error { return h.root.Remove(rootName(name)) }

func (h hostDst) chmod(name string, mode fs.FileMode) error {
	return h.root.Chmod(rootName(name), mode)
}

func (h hostDst) lchown(name string, uid, gid uint32) error {
	err := h.root.Lchown(rootName(name), int(uid), int(gid))
	if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		return nil // as cp -a does for an ordinary user: keep going
	}
	return err
}

func (h hostDst) lchtimes(name string, atime, mtime time.Time) error {
	var d *os.File
	var base string
	var err error
	if path.Clean(name) == "." {
		// The destination directory itself.
		base = "."
		d, err = h.root.Open(".")
	} else {
		d, base, err = h.parentFD(name)
	}
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
