package ext2fs

import (
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Open opens the named file for reading (fs.FS), following symbolic
// links. name is an io/fs name. Use OpenFile for os-style names and
// writing.
func (f *FS) Open(name string) (fs.File, error) {
	if err := ioName("open", name); err != nil {
		return nil, err
	}
	file, err := f.openFile(name, os.O_RDONLY)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return file, nil
}

// openFile opens the existing file rel (cleaned, relative), following a
// final symlink.
func (f *FS) openFile(rel string, flag int) (*File, error) {
	ino, err := f.walk(rel, true)
	if err != nil {
		return nil, err
	}
	return f.newFile(rel, ino, flag)
}

// statName cleans a name given to Stat or Lstat: an io/fs name or an
// os-style one.
func statName(op, name string) (string, error) {
	rel, err := osName(name)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: name, Err: err}
	}
	return rel, nil
}

// Stat returns the attributes of the named file, following symbolic
// links (fs.StatFS, os.Stat). name may be an io/fs name or an os-style
// one. Sys returns an *InodeInfo.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	return f.stat("stat", name, true)
}

// Lstat returns the attributes of the named file; a symbolic link
// describes itself (fs.ReadLinkFS, os.Lstat). name may be an io/fs name
// or an os-style one.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	return f.stat("lstat", name, false)
}

func (f *FS) stat(op, name string, follow bool) (fs.FileInfo, error) {
	rel, err := statName(op, name)
	if err != nil {
		return nil, err
	}
	ino, err := f.walk(rel, follow)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	defer f.fs.Iput(ino)
	return newFileInfo(path.Base(rel), ino), nil
}

// ReadDir lists the named directory sorted by name, without "." and ".."
// (fs.ReadDirFS). name is an io/fs name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := ioName("readdir", name); err != nil {
		return nil, err
	}
	ino, err := f.walk(name, true)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	defer f.fs.Iput(ino)
	if !ino.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	ents, err := f.dirEntries(ino)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, nil
}

// ReadFile returns the contents of the named file, following symbolic
// links (fs.ReadFileFS). name is an io/fs name.
func (f *FS) ReadFile(name string) ([]byte, error) {
	if err := ioName("readfile", name); err != nil {
		return nil, err
	}
	file, err := f.openFile(name, os.O_RDONLY)
	if err != nil {
		return nil, pathErr("readfile", name, err)
	}
	defer file.Close()
	if file.ino.IsDir() {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errIsDir}
	}
	size := file.ino.Size()
	buf := make([]byte, 0, size+1)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
		n, err := file.ReadAt(buf[len(buf):cap(buf)], int64(len(buf)))
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, pathErr("readfile", name, err)
		}
	}
}

// ReadLink returns the target of the named symbolic link
// (fs.ReadLinkFS). name is an io/fs name; a name that is not a link fails
// with fs.ErrInvalid.
func (f *FS) ReadLink(name string) (string, error) {
	if err := ioName("readlink", name); err != nil {
		return "", err
	}
	return f.readlink(name, name)
}

func (f *FS) readlink(name, rel string) (string, error) {
	ino, err := f.walk(rel, false)
	if err != nil {
		return "", pathErr("readlink", name, err)
	}
	defer f.fs.Iput(ino)
	if !ino.IsSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: errInvalidLink}
	}
	target, err := f.fs.ReadLink(ino)
	return target, pathErr("readlink", name, err)
}

// Sub returns the filesystem rooted at directory dir (fs.SubFS). dir is
// an io/fs name. Symbolic links under it are still resolved against the
// image root.
func (f *FS) Sub(dir string) (fs.FS, error) {
	if err := ioName("sub", dir); err != nil {
		return nil, err
	}
	if dir == "." {
		return f, nil
	}
	fi, err := f.Stat(dir)
	if err != nil {
		return nil, &fs.PathError{Op: "sub", Path: dir, Err: unwrapPath(err)}
	}
	if !fi.IsDir() {
		return nil, &fs.PathError{Op: "sub", Path: dir, Err: errNotDir}
	}
	return &subFS{fsys: f, dir: dir}, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// subFS is the FS below a directory.
type subFS struct {
	fsys *FS
	dir  string
}

var (
	_ fs.StatFS     = (*subFS)(nil)
	_ fs.ReadDirFS  = (*subFS)(nil)
	_ fs.ReadFileFS = (*subFS)(nil)
	_ fs.ReadLinkFS = (*subFS)(nil)
	_ fs.SubFS      = (*subFS)(nil)
)

// full checks name and joins it to the directory.
func (s *subFS) full(op, name string) (string, error) {
	if err := ioName(op, name); err != nil {
		return "", err
	}
	return path.Join(s.dir, name), nil
}

// fix puts the name the caller gave back into an error.
func (s *subFS) fix(name string, err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return &fs.PathError{Op: pe.Op, Path: name, Err: pe.Err}
	}
	return err
}

func (s *subFS) Open(name string) (fs.File, error) {
	full, err := s.full("open", name)
	if err != nil {
		return nil, err
	}
	file, err := s.fsys.Open(full)
	if err != nil {
		return nil, s.fix(name, err)
	}
	file.(*File).name = name
	return file, nil
}

func (s *subFS) Stat(name string) (fs.FileInfo, error) {
	full, err := s.full("stat", name)
	if err != nil {
		return nil, err
	}
	fi, err := s.fsys.Stat(full)
	return fi, s.fix(name, err)
}

func (s *subFS) Lstat(name string) (fs.FileInfo, error) {
	full, err := s.full("lstat", name)
	if err != nil {
		return nil, err
	}
	fi, err := s.fsys.Lstat(full)
	return fi, s.fix(name, err)
}

func (s *subFS) ReadDir(name string) ([]fs.DirEntry, error) {
	full, err := s.full("readdir", name)
	if err != nil {
		return nil, err
	}
	ents, err := s.fsys.ReadDir(full)
	return ents, s.fix(name, err)
}

func (s *subFS) ReadFile(name string) ([]byte, error) {
	full, err := s.full("readfile", name)
	if err != nil {
		return nil, err
	}
	data, err := s.fsys.ReadFile(full)
	return data, s.fix(name, err)
}

func (s *subFS) ReadLink(name string) (string, error) {
	full, err := s.full("readlink", name)
	if err != nil {
		return "", err
	}
	target, err := s.fsys.ReadLink(full)
	return target, s.fix(name, err)
}

func (s *subFS) Sub(dir string) (fs.FS, error) {
	full, err := s.full("sub", dir)
	if err != nil {
		return nil, err
	}
	sub, err := s.fsys.Sub(full)
	return sub, s.fix(dir, err)
}
