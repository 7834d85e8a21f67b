package ext2fs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2/layout"
)

// CopyOptions tune CopyOut and CopyIn.
type CopyOptions struct {
	// NoOwners leaves owners as the copy makes them. Otherwise CopyIn
	// always copies owners, and CopyOut copies them when the process
	// runs as root (chown needs it).
	NoOwners bool
	// Warn, if set, is told of each entry that cannot be reproduced and
	// is skipped: a device node when CopyOut does not run as root, a
	// name in the image that cannot be a file name ("..", "a/b", NUL),
	// a directory reached twice (a loop in a corrupt image). Without
	// Warn these are errors.
	Warn func(name string, err error)
}

// copyBuf is the size of the copy buffer.
const copyBuf = 256 << 10

// CopyOut copies the file or tree at root in the image (an os-style
// name; a final symbolic link is followed) to dst on the host. For a
// directory, dst is created if missing (an existing dst must be a
// directory) and receives root's contents; otherwise dst is created as
// a copy of the file.
//
// The copy is faithful: regular files (holes stay holes, found with
// SeekData and SeekHole), directories, symbolic links (created as they
// are, never followed), hard links (made as links again), fifos, sockets
// and, as root, device nodes; permission bits with setuid, setgid and
// sticky, modification and access times and, as root, owners.
//
// Every host change goes through an os.Root opened at dst (or at dst's
// parent for a single file), so nothing is ever written outside it,
// whatever names and symbolic links the image holds. Directory loops and
// entries whose names are not file names are refused (see
// CopyOptions.Warn). Extended attributes are not copied.
func CopyOut(fsys *FS, root string, dst string, opts CopyOptions) error {
	rel, err := osName(root)
	if err != nil {
		return &fs.PathError{Op: "copyout", Path: root, Err: err}
	}
	ino, err := fsys.walk(rel, true)
	if err != nil {
		return pathErr("copyout", root, err)
	}
	defer fsys.fs.Iput(ino)
	c := &outCopier{
		fsys:   fsys,
		opts:   opts,
		owners: !opts.NoOwners && os.Geteuid() == 0,
		isRoot: os.Geteuid() == 0,
		links:  map[uint32]string{},
		onPath: map[uint32]bool{},
	}
	if ino.IsDir() {
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return err
		}
		if c.root, err = os.OpenRoot(dst); err != nil {
			return err
		}
		defer c.root.Close()
		c.onPath[ino.Ino()] = true
		if err := c.dirContents(ino, "."); err != nil {
			return err
		}
		return c.setAttrs(".", ino.Stat())
	}
	if c.root, err = os.OpenRoot(filepath.Dir(dst)); err != nil {
		return err
	}
	defer c.root.Close()
	return c.entry(ino, filepath.Base(dst))
}

type outCopier struct {
	fsys   *FS
	root   *os.Root
	opts   CopyOptions
	owners bool              // copy owners
	isRoot bool              // may make device nodes
	links  map[uint32]string // inode → the first host name made for it
	onPath map[uint32]bool   // directories being copied (loop guard)
	buf    []byte
}

func (c *outCopier) warn(name string, err error) error {
	if c.opts.Warn == nil {
		return fmt.Errorf("ext2fs: copyout %s: %w", name, err)
	}
	c.opts.Warn(name, err)
	return nil
}

// dirContents copies the entries of directory dir into host directory
// rel.
func (c *outCopier) dirContents(dir *ext2.Inode, rel string) error {
	e := c.fsys.fs
	ents, err := e.ReadDir(dir)
	if err != nil {
		return pathErr("copyout", rel, err)
	}
	for _, ent := range ents {
		if ent.Name == "." || ent.Name == ".." {
			continue
		}
		name := path.Join(rel, ent.Name)
		if ent.Name == "" || strings.ContainsAny(ent.Name, "/\x00") {
			if err := c.warn(name, errnoError(syscall.EINVAL, "not a file name")); err != nil {
				return err
			}
			continue
		}
		child, err := e.Iget(ent.Ino)
		if err != nil {
			return pathErr("copyout", name, err)
		}
		err = c.entry(child, name)
		e.Iput(child)
		if err != nil {
			return err
		}
	}
	return nil
}

// entry copies inode ino to host name rel.
func (c *outCopier) entry(ino *ext2.Inode, rel string) error {
	err := c.entryNoSkip(ino, rel)
	if err == errSkipped {
		return nil
	}
	return err
}

func (c *outCopier) entryNoSkip(ino *ext2.Inode, rel string) (err error) {
	st := ino.Stat()
	r := c.root
	if st.Mode&layout.ModeFmt != layout.ModeDir && st.Nlink > 1 {
		if first, ok := c.links[st.Ino]; ok {
			return c.exists(rel, r.Link(first, rel))
		}
		defer func() {
			if err == nil {
				c.links[st.Ino] = rel
			}
		}()
	}
	switch st.Mode & layout.ModeFmt {
	case layout.ModeDir:
		if c.onPath[st.Ino] {
			if err := c.warn(rel, errnoError(syscall.ELOOP, "directory reached twice")); err != nil {
				return err
			}
			return errSkipped
		}
		c.onPath[st.Ino] = true
		defer delete(c.onPath, st.Ino)
		if err := r.Mkdir(rel, 0o700); err != nil {
			return c.exists(rel, err)
		}
		if err := c.dirContents(ino, rel); err != nil {
			return err
		}
	case layout.ModeReg:
		if err := c.file(ino, rel, st.Size); err != nil {
			return err
		}
	case layout.ModeLnk:
		target, err := c.fsys.fs.ReadLink(ino)
		if err != nil {
			return pathErr("copyout", rel, err)
		}
		if err := r.Symlink(target, rel); err != nil {
			return c.exists(rel, err)
		}
		if c.owners {
			return r.Lchown(rel, int(st.UID), int(st.GID))
		}
		return nil
	default:
		if err := c.special(rel, st); err != nil {
			return err
		}
	}
	return c.setAttrs(rel, st)
}

// file copies the data of regular file ino to a new host file rel,
// writing only the data the block map has: holes stay holes.
func (c *outCopier) file(ino *ext2.Inode, rel string, size int64) error {
	src, err := c.fsys.fs.Open(ino, false)
	if err != nil {
		return pathErr("copyout", rel, err)
	}
	defer src.Close()
	dst, err := c.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return c.exists(rel, err)
	}
	if c.buf == nil {
		c.buf = make([]byte, copyBuf)
	}
	for off := int64(0); off < size; {
		data, err := src.Seek(off, SeekData)
		if errors.Is(err, syscall.ENXIO) {
			break
		}
		if err != nil {
			dst.Close()
			return pathErr("copyout", rel, err)
		}
		hole, err := src.Seek(data, SeekHole)
		if err != nil {
			dst.Close()
			return pathErr("copyout", rel, err)
		}
		for off = data; off < hole; {
			n := int(min(int64(len(c.buf)), hole-off))
			m, err := src.ReadAt(c.buf[:n], off)
			if m > 0 {
				if _, werr := dst.WriteAt(c.buf[:m], off); werr != nil {
					dst.Close()
					return werr
				}
				off += int64(m)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				dst.Close()
				return pathErr("copyout", rel, err)
			}
		}
		off = hole
	}
	if err := dst.Truncate(size); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// special makes a fifo, socket or device node with mknodat in its parent
// directory, opened through the root.
func (c *outCopier) special(rel string, st ext2.Stat) error {
	typ := st.Mode & layout.ModeFmt
	if (typ == layout.ModeChr || typ == layout.ModeBlk) && !c.isRoot {
		if err := c.warn(rel, errnoError(syscall.EPERM, "device nodes need root")); err != nil {
			return err
		}
		return errSkipped
	}
	dir, err := c.root.Open(filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer dir.Close()
	mode := uint32(typ) | 0o600
	dev := mkdev(st.RdevMajor, st.RdevMinor)
	err = syscall.Mknodat(int(dir.Fd()), filepath.Base(rel), mode, int(dev))
	if err != nil {
		return c.exists(rel, &fs.PathError{Op: "mknod", Path: rel, Err: err})
	}
	return nil
}

// errSkipped tells entry that file or special skipped the entry.
var errSkipped = errors.New("ext2fs: entry skipped")

// exists turns the failure to create rel because the name is taken
// (twice the same name in an image directory, or a name already in the
// destination) into a warning, when there is a Warn.
func (c *outCopier) exists(rel string, err error) error {
	if !errors.Is(err, fs.ErrExist) || c.opts.Warn == nil {
		return err
	}
	c.opts.Warn(rel, err)
	return errSkipped
}

// setAttrs gives host file rel (not a symbolic link) the owner, mode and
// times of st.
func (c *outCopier) setAttrs(rel string, st ext2.Stat) error {
	r := c.root
	if c.owners {
		if err := r.Lchown(rel, int(st.UID), int(st.GID)); err != nil {
			return err
		}
	}
	if err := r.Chmod(rel, fileMode(st.Mode)&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return r.Chtimes(rel, st.Atime, st.Mtime)
}

// CopyIn copies the file or tree at src on the host (a final symbolic
// link is not followed) to dst in the image (an os-style name). For a
// directory, dst is created if missing (an existing dst must be a
// directory, which keeps its entries) and receives src's contents;
// otherwise dst is created as a copy of src.
//
// The copy is as faithful as CopyOut's: holes of regular files (found
// with SEEK_DATA and SEEK_HOLE on the host file) stay holes, symbolic
// links are copied as they are, hard links within src are made as
// links, fifos, sockets and device nodes are made, and permission bits,
// owners (unless opts.NoOwners) and access and modification times are
// kept. Extended attributes are not copied.
func CopyIn(fsys *FS, src, dst string, opts CopyOptions) error {
	if err := fsys.checkWritable(); err != nil {
		return &fs.PathError{Op: "copyin", Path: dst, Err: err}
	}
	rel, err := osName(dst)
	if err != nil {
		return &fs.PathError{Op: "copyin", Path: dst, Err: err}
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	c := &inCopier{fsys: fsys, opts: opts, links: map[[2]uint64]string{}}
	if fi.IsDir() {
		if efi, err := fsys.Lstat(rel); err == nil {
			if !efi.IsDir() {
				return &fs.PathError{Op: "copyin", Path: dst, Err: errNotDir}
			}
		} else if err := fsys.Mkdir(rel, 0o700); err != nil {
			return err
		}
		if err := c.dirContents(src, rel); err != nil {
			return err
		}
		return c.setAttrs(rel, fi)
	}
	return c.entry(src, rel, fi)
}

type inCopier struct {
	fsys  *FS
	opts  CopyOptions
	links map[[2]uint64]string // host device and inode → the first image name
	buf   []byte
}

func (c *inCopier) dirContents(hostDir, rel string) error {
	ents, err := os.ReadDir(hostDir)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		fi, err := ent.Info()
		if err != nil {
			return err
		}
		if err := c.entry(filepath.Join(hostDir, ent.Name()), path.Join(rel, ent.Name()), fi); err != nil {
			return err
		}
	}
	return nil
}

func (c *inCopier) entry(host, rel string, fi fs.FileInfo) error {
	f := c.fsys
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st != nil && !fi.IsDir() && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok {
			return f.Link(first, rel)
		}
		defer func() { c.links[key] = rel }()
	}
	mode := fi.Mode()
	switch {
	case mode.IsDir():
		if err := f.Mkdir(rel, 0o700); err != nil {
			return err
		}
		if err := c.dirContents(host, rel); err != nil {
			return err
		}
	case mode.IsRegular():
		if err := c.file(host, rel, fi.Size()); err != nil {
			return err
		}
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(host)
		if err != nil {
			return err
		}
		if err := f.Symlink(target, rel); err != nil {
			return err
		}
		if st != nil && !c.opts.NoOwners {
			if err := f.Lchown(rel, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		return f.Lchtimes(rel, atime(fi), fi.ModTime())
	default:
		var dev uint64
		if st != nil {
			dev = st.Rdev
		}
		if err := f.Mknod(rel, mode.Type()|mode.Perm(), dev); err != nil {
			return err
		}
	}
	return c.setAttrs(rel, fi)
}

// file copies host file host to a new image file rel, writing only the
// host file's data: its holes stay holes.
func (c *inCopier) file(host, rel string, size int64) error {
	src, err := os.Open(host)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := c.fsys.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if c.buf == nil {
		c.buf = make([]byte, copyBuf)
	}
	seekable := true
	for off := int64(0); off < size; {
		data, hole := off, size
		if seekable {
			d, err := src.Seek(off, SeekData)
			switch {
			case errors.Is(err, syscall.ENXIO):
				d = size // only a hole is left
			case err != nil:
				seekable = false // SEEK_DATA unsupported: copy everything
				d = off
			}
			data = d
			if seekable && data < size {
				if h, err := src.Seek(data, SeekHole); err == nil {
					hole = h
				}
			}
		}
		for off = data; off < hole; {
			n := int(min(int64(len(c.buf)), hole-off))
			m, err := src.ReadAt(c.buf[:n], off)
			if m > 0 {
				if _, werr := dst.WriteAt(c.buf[:m], off); werr != nil {
					dst.Close()
					return werr
				}
				off += int64(m)
			}
			if err == io.EOF {
				hole = off // the file shrank
				break
			}
			if err != nil {
				dst.Close()
				return err
			}
		}
		off = max(hole, data)
	}
	if err := dst.Truncate(size); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// setAttrs gives image file rel (not a symbolic link) the mode, owner
// and times of host file fi.
func (c *inCopier) setAttrs(rel string, fi fs.FileInfo) error {
	f := c.fsys
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && !c.opts.NoOwners {
		if err := f.Lchown(rel, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if err := f.Chmod(rel, fi.Mode()); err != nil {
		return err
	}
	return f.Chtimes(rel, atime(fi), fi.ModTime())
}

// atime is the access time of a host file, or its modification time.
func atime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Atim.Sec, st.Atim.Nsec)
	}
	return fi.ModTime()
}
