package main

import (
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/mpagefs/mpage/ext2fs"
)

// imageNode reads a node from the FileInfo of an image file.
func imageNode(fi fs.FileInfo) node {
	n := node{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime(), atime: fi.ModTime(), nlink: 1}
	if ii, ok := fi.Sys().(*ext2fs.InodeInfo); ok {
		n.uid, n.gid = ii.UID, ii.GID
		n.atime, n.mtime = ii.Atime, ii.Mtime
		n.blocks = int64(ii.Blocks)
		n.nlink = uint64(ii.Nlink)
		n.ino = uint64(ii.Ino)
		n.rdev = ii.Rdev()
	}
	return n
}

// imgSrc is a tree inside an image, below base (an absolute image path;
// name "." is base itself).
type imgSrc struct {
	fsys *ext2fs.FS
	base string
}

func (m imgSrc) full(name string) string { return ioPath(path.Join(m.base, name)) }

func (m imgSrc) lstat(name string) (node, error) {
	fi, err := m.fsys.Lstat(m.full(name))
	if err != nil {
		return node{}, err
	}
	return imageNode(fi), nil
}

func (m imgSrc) stat(name string) (node, error) {
	fi, err := m.fsys.Stat(m.full(name))
	if err != nil {
		return node{}, err
	}
	return imageNode(fi), nil
}

func (m imgSrc) readDir(name string) ([]string, error) {
	ents, err := m.fsys.ReadDir(m.full(name))
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

func (m imgSrc) readlink(name string) (string, error) { return m.fsys.ReadLink(m.full(name)) }

func (m imgSrc) open(name string) (srcFile, error) {
	f, err := m.fsys.Open(m.full(name))
	if err != nil {
		return nil, err
	}
	return imgFile{f.(*ext2fs.File)}, nil
}

// imgFile is an open image file with SEEK_DATA and SEEK_HOLE.
type imgFile struct{ *ext2fs.File }

func (f imgFile) seekData(off int64) (int64, error) { return f.Seek(off, ext2fs.SeekData) }
func (f imgFile) seekHole(off int64) (int64, error) { return f.Seek(off, ext2fs.SeekHole) }

// imgDst is a tree inside an image, below base (an absolute image path;
// name "." is base itself). Names never lead outside the image: ext2fs
// resolves symbolic links inside it.
type imgDst struct {
	fsys *ext2fs.FS
	base string
}

func (m imgDst) full(name string) string { return path.Join(m.base, name) }

func (m imgDst) lstat(name string) (node, error) {
	fi, err := m.fsys.Lstat(m.full(name))
	if err != nil {
		return node{}, err
	}
	return imageNode(fi), nil
}

func (m imgDst) mkdir(name string, perm fs.FileMode) error { return m.fsys.Mkdir(m.full(name), perm) }

func (m imgDst) create(name string, perm fs.FileMode) (dstFile, error) {
	f, err := m.fsys.OpenFile(m.full(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (m imgDst) symlink(target, name string) error { return m.fsys.Symlink(target, m.full(name)) }

func (m imgDst) link(oldname, newname string) error {
	return m.fsys.Link(m.full(oldname), m.full(newname))
}

func (m imgDst) mknod(name string, mode fs.FileMode, rdev uint64) error {
	return m.fsys.Mknod(m.full(name), mode, rdev)
}

func (m imgDst) remove(name string) error { return m.fsys.Remove(m.full(name)) }

func (m imgDst) chmod(name string, mode fs.FileMode) error { return m.fsys.Chmod(m.full(name), mode) }

func (m imgDst) lchown(name string, uid, gid uint32) error {
	return m.fsys.Lchown(m.full(name), int(uid), int(gid))
}

func (m imgDst) lchtimes(name string, atime, mtime time.Time) error {
	return m.fsys.Lchtimes(m.full(name), atime, mtime)
}
