package ext2fs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
)

// CopyOptions tune CopyIn, CopyOut, CopyOutRoot and CopyBetween. The
// zero value makes a faithful copy (cp -a) that refuses to overwrite
// anything but the top directory.
type CopyOptions struct {
	// NoOwners leaves owners as the copy makes them. Otherwise owners
	// are copied; on the host, a process that is not root keeps going
	// where chown refuses it (as cp -a does).
	NoOwners bool
	// NoTimes leaves access and modification times as the copy makes
	// them.
	NoTimes bool
	// NoHardLinks copies each name of a file with several links as a
	// file of its own. Otherwise the second and later names of a file
	// met in the copied tree are made as links to the first.
	NoHardLinks bool
	// NoSpecialBits copies the permission bits alone, without setuid,
	// setgid and sticky.
	NoSpecialBits bool
	// Replace lets the copy take the place of what the destination
	// holds, as cp does: an existing regular file is overwritten in
	// place, another non-directory is removed first, and an existing
	// directory receives the entries. Otherwise any existing name but
	// the top directory is an error wrapping fs.ErrExist (a warning,
	// with Warn).
	Replace bool
	// Source says what to do with a symbolic link named as the source.
	Source SourceLink
	// Progress, if set, is told of each run of data bytes copied (holes
	// are not counted).
	Progress func(n int64)
	// Warn, if set, is told of each entry that cannot be reproduced and
	// is skipped: a device node the host refuses to make (without root),
	// a name in the image that cannot be a file name ("..", "a/b", NUL),
	// a directory reached twice (a loop in a corrupt image), a name
	// already taken in the destination. Without Warn these are errors.
	// name is the destination name.
	Warn func(name string, err error)
}

// SourceLink says what a copy does with a symbolic link named as its
// source. Links met inside a copied tree are always copied as links.
type SourceLink uint8

const (
	// SourceLinkDefault is SourceLinkCopy for CopyIn and
	// SourceLinkFollow for CopyOut, CopyOutRoot and CopyBetween.
	SourceLinkDefault SourceLink = iota
	// SourceLinkFollow copies what the link leads to (cp without -r).
	SourceLinkFollow
	// SourceLinkCopy copies the link itself (cp -r).
	SourceLinkCopy
)

// follow reports whether the source link is followed, by default def.
func (s SourceLink) follow(def bool) bool {
	switch s {
	case SourceLinkFollow:
		return true
	case SourceLinkCopy:
		return false
	}
	return def
}

// copyBuf is the size of the copy buffer.
const copyBuf = 256 << 10

// CopyOut copies the file or tree at root in the image (an os-style
// name; a final symbolic link is followed unless opts.Source says
// otherwise) to dst on the host. For a directory, dst is created if
// missing (an existing dst must be a directory) and receives root's
// contents; otherwise dst is created as a copy of the file.
//
// The copy is faithful: regular files (holes stay holes, found with
// SeekData and SeekHole), directories, symbolic links (created as they
// are, never followed), hard links (made as links again), fifos, sockets
// and, as root, device nodes; permission bits with setuid, setgid and
// sticky, modification and access times and owners (see CopyOptions for
// what can be left out).
//
// Every host change goes through an os.Root opened at dst (or at dst's
// parent for a single file), so nothing is ever written outside it,
// whatever names and symbolic links the image holds. Directory loops and
// entries whose names are not file names are refused (see
// CopyOptions.Warn). Extended attributes are not copied.
func CopyOut(fsys *FS, root string, dst string, opts CopyOptions) error {
	src := imageSource{fsys}
	top, err := src.top(root, opts.Source.follow(true))
	if err != nil {
		return err
	}
	defer src.release(top)
	dir, name := filepath.Dir(dst), filepath.Base(dst)
	if top.node.mode.IsDir() {
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return err
		}
		dir, name = dst, "."
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	return newCopier("copyout", src, hostDest{r}, opts).run(top, name)
}

// CopyOutRoot copies the file or tree at from in the image (as CopyOut
// does) to name to inside root on the host ("." for root itself). A
// directory is made at to unless one is there, which then receives the
// entries; the copy never leaves root.
func CopyOutRoot(fsys *FS, from string, root *os.Root, to string, opts CopyOptions) error {
	src := imageSource{fsys}
	top, err := src.top(from, opts.Source.follow(true))
	if err != nil {
		return err
	}
	defer src.release(top)
	return newCopier("copyout", src, hostDest{root}, opts).run(top, to)
}

// CopyIn copies the file or tree at src on the host (a final symbolic
// link is not followed unless opts.Source says otherwise) to dst in the
// image (an os-style name). For a directory, dst is created if missing
// (an existing dst must be a directory, which keeps its entries) and
// receives src's contents; otherwise dst is created as a copy of src.
//
// The copy is as faithful as CopyOut's: holes of regular files (found
// with SEEK_DATA and SEEK_HOLE on the host file) stay holes, symbolic
// links are copied as they are, hard links within src are made as
// links, fifos, sockets and device nodes are made, and permission bits,
// owners and access and modification times are kept (see CopyOptions).
// The entries of a host directory are copied in name order. A regular
// file that could not be copied whole (out of space, a read error) is
// removed. Extended attributes are not copied.
func CopyIn(fsys *FS, src, dst string, opts CopyOptions) error {
	to, err := copyDst(fsys, "copyin", dst)
	if err != nil {
		return err
	}
	s := hostSource{}
	top, err := s.top(src, opts.Source.follow(false))
	if err != nil {
		return err
	}
	defer s.release(top)
	return newCopier("copyin", s, newImageDest(fsys), opts).run(top, to)
}

// CopyBetween copies the file or tree at from in image src (a final
// symbolic link is followed unless opts.Source says otherwise) to to in
// image dst, which may be src itself, as CopyIn copies a host tree.
// Within one image, copying a file onto itself or a directory into
// itself is refused (an error wrapping syscall.EINVAL).
func CopyBetween(src *FS, from string, dst *FS, to string, opts CopyOptions) error {
	to, err := copyDst(dst, "copy", to)
	if err != nil {
		return err
	}
	s := imageSource{src}
	top, err := s.top(from, opts.Source.follow(true))
	if err != nil {
		return err
	}
	defer s.release(top)
	if src == dst {
		if err := src.checkNotWithin(top, to); err != nil {
			return err
		}
	}
	return newCopier("copy", s, newImageDest(dst), opts).run(top, to)
}

// copyDst checks that fsys can be written and returns dst as an absolute
// image name.
func copyDst(fsys *FS, op, dst string) (string, error) {
	if err := fsys.checkWritable(); err != nil {
		return "", &fs.PathError{Op: op, Path: dst, Err: err}
	}
	rel, err := osName(dst)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: dst, Err: err}
	}
	return path.Join("/", rel), nil
}

// copyNode is what a copy knows of one file of its source.
type copyNode struct {
	mode         fs.FileMode
	uid, gid     uint32
	atime, mtime time.Time
	size         int64
	blocks       int64 // 512-byte units allocated
	nlink        uint64
	key          fileKey // the file, for hard links and loops
	rdev         uint64  // device number, Linux encoding
}

// fileKey tells files apart across a source: device and inode number.
type fileKey [2]uint64

// srcEnt is one file of a source tree, held while it is copied.
type srcEnt struct {
	name string // the source's name for it, for errors
	node copyNode
	h    any // the source's handle: host path or *ext2.Inode
}

// srcChild is an entry of a source directory.
type srcChild struct {
	name string
	ino  uint32 // inode number, for an image source
}

// srcData is an open regular file of a source: ReadAt, and Seek with
// SeekData and SeekHole.
type srcData interface {
	io.ReaderAt
	io.Seeker
	io.Closer
}

// copySource is a tree a copy reads: the host or an image.
type copySource interface {
	// top returns the file name names, following a final symbolic link
	// with follow.
	top(name string, follow bool) (*srcEnt, error)
	// children lists directory dir, without "." and "..".
	children(dir *srcEnt) ([]srcChild, error)
	child(dir *srcEnt, c srcChild) (*srcEnt, error)
	readlink(e *srcEnt) (string, error)
	open(e *srcEnt) (srcData, error)
	release(e *srcEnt)
}

// dstData is a regular file open for writing in a destination.
type dstData interface {
	io.WriterAt
	Truncate(size int64) error
	Close() error
}

// dstName names an entry of a destination two ways: by the handle of the
// directory holding it and its name there (what an image works by: no
// path walk per file), and by its whole slash-separated name (for
// errors, for the host, and for the top of a copy, which has no handle).
type dstName struct {
	dir  dstDir // the directory's handle; nil: found from full
	base string // the name in dir
	full string
	// fresh tells that dir was made, empty, by this copy: no name in it
	// is taken but by the copy itself, so Replace has nothing to look
	// up there.
	fresh bool
}

// child names entry name of directory d, which this copy made if fresh.
func (n dstName) child(d dstDir, name string, fresh bool) dstName {
	return dstName{dir: d, base: name, full: path.Join(n.full, name), fresh: fresh}
}

// dstDir is a destination's handle to a directory it is filling: the
// *ext2.Inode of an image directory (with a reference), nil for the
// host, which works by names through its os.Root.
type dstDir any

// dstAttrs are the attributes a copy sets on an entry it made.
type dstAttrs struct {
	owner        bool // set uid and gid
	uid, gid     uint32
	chmod        bool        // set mode (never for a symbolic link)
	mode         fs.FileMode // permission bits, with setuid, setgid and sticky as kept
	times        bool        // set atime and mtime
	atime, mtime time.Time
}

// copyDest is a tree a copy writes: a host directory or an image.
type copyDest interface {
	// lstat returns the file type of n, not following a final link.
	lstat(n dstName) (fs.FileMode, error)
	// mkdir makes directory n, owner-only until its attributes are set,
	// and returns its handle, for closeDir.
	mkdir(n dstName) (dstDir, error)
	// openDir returns the handle of the directory n, which is there
	// (lstat said so), for closeDir.
	openDir(n dstName) (dstDir, error)
	closeDir(d dstDir)
	// create opens a new regular file, or with trunc one that is there.
	create(n dstName, trunc bool) (dstData, error)
	symlink(target string, n dstName) error
	// link makes n a link to the file named oldname (a whole name).
	link(oldname string, n dstName) error
	mknod(n dstName, mode fs.FileMode, rdev uint64) error
	remove(n dstName) error
	// setAttrs gives n the attributes a holds. self is n's own handle
	// when the copy holds one (the dstDir of a directory being
	// filled, the dstData of a file still open), else nil.
	setAttrs(n dstName, self any, a dstAttrs) error
}

// copier copies a tree from a source to a destination.
type copier struct {
	op     string // for errors: copyin, copyout, copy
	src    copySource
	dst    copyDest
	opts   CopyOptions
	links  map[fileKey]string // file → the first destination name made for it
	onPath map[fileKey]bool   // directories being copied (loop guard)
	buf    []byte
}

func newCopier(op string, src copySource, dst copyDest, opts CopyOptions) *copier {
	return &copier{op: op, src: src, dst: dst, opts: opts, links: map[fileKey]string{}, onPath: map[fileKey]bool{}}
}

// errSkipped tells that an entry was skipped after a warning.
var errSkipped = errors.New("ext2fs: entry skipped")

// run copies top to destination name to. The attributes of each
// directory made or filled are set when its entries are done (deepest
// first), so that its times stay and one made read-only stays writable
// until then.
func (c *copier) run(top *srcEnt, to string) error {
	err := c.entry(top, dstName{base: path.Base(to), full: to}, true)
	if err == errSkipped {
		err = nil
	}
	return err
}

// warn tells Warn of an entry skipped, and returns errSkipped; without
// Warn it returns the error.
func (c *copier) warn(name string, err error) error {
	if c.opts.Warn == nil {
		return &fs.PathError{Op: c.op, Path: name, Err: err}
	}
	c.opts.Warn(name, err)
	return errSkipped
}

// exists turns the failure to create name because it is taken (twice
// the same name in an image directory, or a name already in the
// destination) into a warning, when there is a Warn.
func (c *copier) exists(name string, err error) error {
	if err == nil || !errors.Is(err, fs.ErrExist) || c.opts.Warn == nil {
		return err
	}
	c.opts.Warn(name, err)
	return errSkipped
}

// validName reports whether a directory entry name is a plain name: a
// hostile image can hold names with slashes, NUL, "." or "..".
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// entry copies e to destination to.
func (c *copier) entry(e *srcEnt, to dstName, top bool) (err error) {
	n := &e.node
	if !n.mode.IsDir() && n.nlink > 1 && !c.opts.NoHardLinks {
		if first, ok := c.links[n.key]; ok {
			if err := c.replace(to, false); err != nil {
				return err
			}
			return c.exists(to.full, c.dst.link(first, to))
		}
		defer func() {
			if err == nil {
				c.links[n.key] = to.full
			}
		}()
	}
	switch typ := n.mode.Type(); {
	case typ == fs.ModeDir:
		return c.dir(e, to, top)
	case typ == 0:
		return c.file(e, to)
	case typ == fs.ModeSymlink:
		target, err := c.src.readlink(e)
		if err != nil {
			return err
		}
		if err := c.replace(to, false); err != nil {
			return err
		}
		if err := c.exists(to.full, c.dst.symlink(target, to)); err != nil {
			return err
		}
	case typ&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
		if err := c.replace(to, false); err != nil {
			return err
		}
		err := c.dst.mknod(to, n.mode, n.rdev)
		if typ&fs.ModeDevice != 0 && errors.Is(err, syscall.EPERM) && c.opts.Warn != nil {
			return c.warn(to.full, err) // device nodes need root
		}
		if err := c.exists(to.full, err); err != nil {
			return err
		}
	default:
		return &fs.PathError{Op: c.op, Path: e.name, Err: errnoError(syscall.EINVAL, "unsupported file type "+typ.String())}
	}
	return c.dst.setAttrs(to, nil, c.attrs(*n))
}

// replace, with Replace, removes a non-directory at name so that a new
// file can take its place (a regular file stays with keepRegular).
func (c *copier) replace(name dstName, keepRegular bool) error {
	if !c.opts.Replace || name.fresh {
		return nil
	}
	mode, err := c.dst.lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case mode.IsDir():
		return &fs.PathError{Op: c.op, Path: name.full, Err: errIsDir}
	case mode.IsRegular() && keepRegular:
		return nil
	}
	return c.dst.remove(name)
}

// dir copies directory e to to: made there, or filled if a directory is
// there already (at the top, or with Replace). Its attributes are set
// once its entries are copied, whatever happened to them.
func (c *copier) dir(e *srcEnt, to dstName, top bool) (err error) {
	n := &e.node
	if c.onPath[n.key] {
		return c.warn(to.full, errnoError(syscall.ELOOP, "directory reached twice"))
	}
	mkdir := true
	if (top || c.opts.Replace) && !to.fresh {
		mode, err := c.dst.lstat(to)
		switch {
		case err == nil && mode.IsDir():
			mkdir = false
		case err == nil:
			err = &fs.PathError{Op: "mkdir", Path: to.full, Err: errExist}
			if top {
				return err
			}
			return c.exists(to.full, err)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	var d dstDir
	if mkdir {
		if d, err = c.dst.mkdir(to); err != nil {
			return c.exists(to.full, err)
		}
	} else if d, err = c.dst.openDir(to); err != nil {
		return err
	}
	defer func() {
		if aerr := c.dst.setAttrs(to, d, c.attrs(*n)); err == nil {
			err = aerr
		}
		c.dst.closeDir(d)
	}()
	c.onPath[n.key] = true
	defer delete(c.onPath, n.key)
	kids, err := c.src.children(e)
	if err != nil {
		return err
	}
	for _, k := range kids {
		name := to.child(d, k.name, mkdir)
		if !validName(k.name) {
			if err := c.warn(name.full, errnoError(syscall.EINVAL, "not a file name")); err != errSkipped {
				return err
			}
			continue
		}
		child, err := c.src.child(e, k)
		if err != nil {
			return err
		}
		err = c.entry(child, name, false)
		c.src.release(child)
		if err != nil && err != errSkipped {
			return err
		}
	}
	return nil
}

// file copies regular file e to a file to, and gives it e's attributes.
// A file that could not be copied whole is removed rather than left
// looking like a copy.
func (c *copier) file(e *srcEnt, to dstName) error {
	in, err := c.src.open(e)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := c.replace(to, true); err != nil {
		return err
	}
	out, err := c.dst.create(to, c.opts.Replace)
	if err != nil {
		return c.exists(to.full, err)
	}
	err = c.data(e, in, out)
	if err != nil {
		out.Close()
		_ = c.dst.remove(to)
		return err
	}
	err = c.dst.setAttrs(to, out, c.attrs(e.node))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// data copies the data of e, writing only what SEEK_DATA finds: holes
// stay holes, and the size is set at the end.
func (c *copier) data(e *srcEnt, in srcData, out dstData) error {
	if c.buf == nil {
		c.buf = make([]byte, copyBuf)
	}
	size := e.node.size
	seekable := true
	for off := int64(0); off < size; {
		data, hole := off, size
		if seekable {
			d, err := in.Seek(off, SeekData)
			switch {
			case errors.Is(err, syscall.ENXIO):
				d = size // only a hole is left
			case err != nil:
				seekable = false // SEEK_DATA unsupported: copy everything
				d = off
			}
			data = d
			if seekable && data < size {
				if h, err := in.Seek(data, SeekHole); err == nil {
					hole = min(h, size)
				}
			}
		}
		for off = data; off < hole; {
			m, err := in.ReadAt(c.buf[:min(int64(len(c.buf)), hole-off)], off)
			if m > 0 {
				if _, werr := out.WriteAt(c.buf[:m], off); werr != nil {
					return werr
				}
				off += int64(m)
				if c.opts.Progress != nil {
					c.opts.Progress(int64(m))
				}
			}
			if err == io.EOF {
				hole = off // the file shrank
				break
			}
			if err != nil {
				return pathErr("read", e.name, err)
			}
		}
		off = max(hole, data)
	}
	return out.Truncate(size)
}

// attrs are the attributes of n that the options keep.
func (c *copier) attrs(n copyNode) dstAttrs {
	a := dstAttrs{
		owner: !c.opts.NoOwners, uid: n.uid, gid: n.gid,
		times: !c.opts.NoTimes, atime: n.atime, mtime: n.mtime,
	}
	if n.mode&fs.ModeSymlink == 0 {
		a.chmod = true
		a.mode = n.mode.Perm()
		if !c.opts.NoSpecialBits {
			a.mode |= n.mode & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		}
	}
	return a
}

// checkNotWithin refuses, for a copy within f, a destination to that is
// top itself or lies inside directory top.
func (f *FS) checkNotWithin(top *srcEnt, to string) error {
	rel, err := osName(to)
	if err != nil {
		return err
	}
	src := uint32(top.node.key[1])
	refuse := func(msg string) error {
		return &fs.PathError{Op: "copy", Path: to, Err: errnoError(syscall.EINVAL, msg)}
	}
	if rel == "." {
		if src == layout.RootIno {
			return refuse("source and destination are the same file")
		}
		return nil
	}
	dir, base, err := f.walkParent(rel)
	if err != nil {
		return nil // the copy reports it
	}
	defer func() { f.fs.Iput(dir) }()
	if n, err := f.fs.LookupIn(dir, base); err == nil && n == src {
		return refuse("source and destination are the same file")
	}
	if !top.node.mode.IsDir() {
		return nil
	}
	// Climb from to's directory to the root by "..".
	for range 1 << 16 {
		if dir.Ino() == src {
			return refuse("cannot copy a directory into itself")
		}
		if dir.Ino() == layout.RootIno {
			return nil
		}
		up, err := f.fs.LookupIn(dir, "..")
		if err != nil {
			return err
		}
		next, err := f.fs.Iget(up)
		if err != nil {
			return err
		}
		f.fs.Iput(dir)
		dir = next
	}
	return errLoop
}
