package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"
)

// node is what the copier knows of one file of a tree, on the host or in
// an image.
type node struct {
	mode         fs.FileMode
	uid, gid     uint32
	atime, mtime time.Time
	size         int64
	blocks       int64 // 512-byte units allocated
	nlink        uint64
	ino          uint64
	rdev         uint64 // Linux encoding
}

// srcTree is a tree files are copied from. Names are slash-separated and
// relative to the tree's own root ("." for it).
type srcTree interface {
	lstat(name string) (node, error)
	stat(name string) (node, error)
	readDir(name string) ([]string, error) // names, without "." and ".."
	readlink(name string) (string, error)
	open(name string) (srcFile, error)
}

// srcFile is an open regular file of a srcTree.
type srcFile interface {
	io.ReaderAt
	// seekData and seekHole are lseek's SEEK_DATA and SEEK_HOLE.
	seekData(off int64) (int64, error)
	seekHole(off int64) (int64, error)
	Close() error
}

// dstTree is a tree files are copied to.
type dstTree interface {
	lstat(name string) (node, error)
	mkdir(name string, perm fs.FileMode) error
	create(name string, perm fs.FileMode) (dstFile, error) // write only, truncated
	symlink(target, name string) error
	link(oldname, newname string) error
	mknod(name string, mode fs.FileMode, rdev uint64) error
	remove(name string) error
	chmod(name string, mode fs.FileMode) error
	lchown(name string, uid, gid uint32) error
	// lchtimes sets the times of name, of a symlink itself.
	lchtimes(name string, atime, mtime time.Time) error
}

// dstFile is an open regular file of a dstTree.
type dstFile interface {
	io.WriterAt
	Truncate(size int64) error
	Close() error
}

// copier copies trees from src to dst.
type copier struct {
	src      srcTree
	dst      dstTree
	recurse  bool // copy directories
	preserve bool // -a: owners, times, hard links (and full modes)
	follow   bool // follow a symlink named on the command line
	prog     *progress
	buf      []byte
	links    map[uint64]string // source inode → first destination name
	dirs     []pendingDir      // directories whose attributes are set at the end
	files    int64             // regular files copied
	bytes    int64             // bytes of data copied
}

type pendingDir struct {
	name string
	n    node
}

const copyBufSize = 1 << 20

// errSkipDir is returned for a directory named without -r.
var errSkipDir = errors.New("is a directory (not copied; use -r)")

// copyTop copies src name from to dst name to, then sets the attributes
// of the directories it made (deepest first).
func (c *copier) copyTop(from, to string) error {
	if c.links == nil {
		c.links = map[uint64]string{}
	}
	var n node
	var err error
	if c.follow {
		n, err = c.src.stat(from)
	} else {
		n, err = c.src.lstat(from)
	}
	if err != nil {
		return err
	}
	if n.mode.IsDir() && !c.recurse {
		return &fs.PathError{Op: "copy", Path: from, Err: errSkipDir}
	}
	err = c.copyNode(from, to, n)
	if ferr := c.finishDirs(); err == nil {
		err = ferr
	}
	return err
}

// finishDirs sets the modes (and with preserve owners and times) of the
// directories made, children before parents so that times stay.
func (c *copier) finishDirs() error {
	var first error
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := c.setAttrs(d.name, d.n); err != nil && first == nil {
			first = err
		}
	}
	c.dirs = nil
	return first
}

// validName refuses directory entry names that could lead outside the
// directory: a hostile image can hold names with slashes, "." or "..".
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

func (c *copier) copyNode(from, to string, n node) error {
	switch {
	case n.mode.IsDir():
		return c.copyDir(from, to, n)
	case n.mode.IsRegular():
		if c.preserve && n.nlink > 1 {
			if first, ok := c.links[n.ino]; ok {
				return c.hardlink(first, to)
			}
			c.links[n.ino] = to
		}
		if err := c.copyFile(from, to, n); err != nil {
			return err
		}
		return c.setAttrs(to, n)
	case n.mode&fs.ModeSymlink != 0:
		target, err := c.src.readlink(from)
		if err != nil {
			return err
		}
		if err := c.replace(to); err != nil {
			return err
		}
		if err := c.dst.symlink(target, to); err != nil {
			return err
		}
		return c.setAttrs(to, n)
	case n.mode&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
		if c.preserve && n.nlink > 1 {
			if first, ok := c.links[n.ino]; ok {
				return c.hardlink(first, to)
			}
			c.links[n.ino] = to
		}
		if err := c.replace(to); err != nil {
			return err
		}
		if err := c.dst.mknod(to, n.mode, n.rdev); err != nil {
			return err
		}
		return c.setAttrs(to, n)
	}
	return &fs.PathError{Op: "copy", Path: from, Err: fmt.Errorf("unsupported file type %v", n.mode.Type())}
}

func (c *copier) hardlink(first, to string) error {
	if err := c.replace(to); err != nil {
		return err
	}
	return c.dst.link(first, to)
}

// replace removes a non-directory at name, so that a new file can take
// its place (never following a symlink there).
func (c *copier) replace(name string) error {
	old, err := c.dst.lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if old.mode.IsDir() {
		return &fs.PathError{Op: "copy", Path: name, Err: syscall.EISDIR}
	}
	return c.dst.remove(name)
}

func (c *copier) copyDir(from, to string, n node) error {
	old, err := c.dst.lstat(to)
	switch {
	case err == nil && old.mode.IsDir():
		// Copy into the directory that is there.
	case err == nil:
		return &fs.PathError{Op: "mkdir", Path: to, Err: syscall.EEXIST}
	case errors.Is(err, fs.ErrNotExist):
		// Owner-writable until its attributes are set at the end.
		if err := c.dst.mkdir(to, 0o700); err != nil {
			return err
		}
	default:
		return err
	}
	c.dirs = append(c.dirs, pendingDir{name: to, n: n})
	names, err := c.src.readDir(from)
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		if !validName(name) {
			return &fs.PathError{Op: "copy", Path: path.Join(from, fmt.Sprintf("%q", name)), Err: errors.New("refusing a directory entry name that is not a plain name")}
		}
		cf := path.Join(from, name)
		cn, err := c.src.lstat(cf)
		if err != nil {
			return err
		}
		if err := c.copyNode(cf, path.Join(to, name), cn); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies the data of a regular file, keeping its holes: only the
// ranges SEEK_DATA finds are written, and the size set at the end.
func (c *copier) copyFile(from, to string, n node) error {
	in, err := c.src.open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := c.replaceNonRegular(to); err != nil {
		return err
	}
	out, err := c.dst.create(to, 0o600)
	if err != nil {
		return err
	}
	err = c.copyData(in, out, n.size)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A file that could not be copied whole (out of space, a read
		// error) is removed rather than left looking like a copy.
		_ = c.dst.remove(to)
		return fmt.Errorf("%s: %w", to, err)
	}
	c.files++
	return nil
}

func (c *copier) replaceNonRegular(name string) error {
	old, err := c.dst.lstat(name)
	if err != nil || old.mode.IsRegular() {
		return nil
	}
	if old.mode.IsDir() {
		return &fs.PathError{Op: "copy", Path: name, Err: syscall.EISDIR}
	}
	return c.dst.remove(name)
}

func (c *copier) copyData(in srcFile, out dstFile, size int64) error {
	if c.buf == nil {
		c.buf = make([]byte, copyBufSize)
	}
	off := int64(0)
	for off < size {
		start, err := in.seekData(off)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) {
				break // only holes follow
			}
			return err
		}
		if start >= size {
			break
		}
		end, err := in.seekHole(start)
		if err != nil || end > size {
			end = size
		}
		for pos := start; pos < end; {
			chunk := c.buf[:min(int64(len(c.buf)), end-pos)]
			k, rerr := in.ReadAt(chunk, pos)
			if k > 0 {
				if _, werr := out.WriteAt(chunk[:k], pos); werr != nil {
					return werr
				}
				pos += int64(k)
				c.bytes += int64(k)
				c.prog.add(int64(k))
			}
			if rerr == io.EOF {
				if k == 0 {
					end = pos // the file shrank while copied
				}
				continue
			}
			if rerr != nil {
				return rerr
			}
		}
		off = end
	}
	return out.Truncate(size)
}

// setAttrs gives name the mode of n, and with preserve its owner and
// times.
func (c *copier) setAttrs(name string, n node) error {
	isLink := n.mode&fs.ModeSymlink != 0
	if c.preserve {
		if err := c.dst.lchown(name, n.uid, n.gid); err != nil {
			return err
		}
	}
	if !isLink {
		mode := n.mode.Perm()
		if c.preserve {
			mode |= n.mode & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		}
		if err := c.dst.chmod(name, mode); err != nil {
			return err
		}
	}
	if c.preserve {
		if err := c.dst.lchtimes(name, n.atime, n.mtime); err != nil {
			return err
		}
	}
	return nil
}

// treeUsage is what a tree needs in an image, for mkfs sizing.
type treeUsage struct {
	files, dirs, symlinks, others int64
	dataBytes                     int64 // bytes of data, holes left out
	dirEntryBytes                 int64
	longLinkTargets               int64 // symlinks that need a block
	blocksByFile                  []int64
}

// measure walks a source tree and counts what it holds.
func measure(src srcTree, name string, u *treeUsage) error {
	n, err := src.lstat(name)
	if err != nil {
		return err
	}
	switch {
	case n.mode.IsDir():
		u.dirs++
		names, err := src.readDir(name)
		if err != nil {
			return err
		}
		for _, child := range names {
			u.dirEntryBytes += int64(8 + (len(child)+3)&^3)
			if err := measure(src, path.Join(name, child), u); err != nil {
				return err
			}
		}
	case n.mode.IsRegular():
		u.files++
		data := n.size
		if alloc := n.blocks * 512; alloc < data {
			data = alloc // sparse
		}
		u.dataBytes += data
		u.blocksByFile = append(u.blocksByFile, data)
	case n.mode&fs.ModeSymlink != 0:
		u.symlinks++
		if n.size > 59 {
			u.longLinkTargets++
		}
	default:
		u.others++
	}
	return nil
}
