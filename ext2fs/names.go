package ext2fs

import (
	"io/fs"
	"path"
	"strings"
	"syscall"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2/layout"
)

// maxSymlinks bounds the symbolic links followed in one lookup
// (Linux MAXSYMLINKS).
const maxSymlinks = 40

// ioName checks an io/fs name.
func ioName(op, name string) error {
	if !fs.ValidPath(name) {
		return &fs.PathError{Op: op, Path: name, Err: errInvalidName}
	}
	return nil
}

// osName cleans an os-style name, absolute or relative to the root, into
// a relative name without "." or ".." elements ("." for the root).
func osName(name string) (string, error) {
	if name == "" {
		return "", errnoError(syscall.ENOENT, "empty name")
	}
	c := path.Clean("/" + name)
	if c == "/" {
		return ".", nil
	}
	return c[1:], nil
}

func splitName(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

// walk resolves rel, a name relative to the root, and returns its inode
// with a reference (path_lookupat). Symbolic links met in the middle are
// followed, a final one only with follow. An absolute link target starts
// again at the image root; ".." is looked up on disk, and the root's ".."
// is the root.
func (f *FS) walk(rel string, follow bool) (*ext2.Inode, error) {
	if err := f.checkOpen(); err != nil {
		return nil, err
	}
	e := f.fs
	cur, err := e.Root()
	if err != nil {
		return nil, err
	}
	parts := splitName(rel)
	hops := 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		next, err := f.step(cur, name)
		if err != nil {
			e.Iput(cur)
			return nil, err
		}
		if next.IsSymlink() && (len(parts) > 0 || follow) {
			hops++
			target, err := e.ReadLink(next)
			e.Iput(next)
			if err == nil && hops > maxSymlinks {
				err = errLoop
			}
			if err == nil && target == "" {
				err = errnoError(syscall.ENOENT, "empty symbolic link")
			}
			if err != nil {
				e.Iput(cur)
				return nil, err
			}
			if strings.HasPrefix(target, "/") {
				e.Iput(cur)
				if cur, err = e.Root(); err != nil {
					return nil, err
				}
			}
			parts = append(splitName(target), parts...)
			continue
		}
		e.Iput(cur)
		cur = next
	}
	return cur, nil
}

// step looks name up in directory dir and returns its inode with a
// reference.
func (f *FS) step(dir *ext2.Inode, name string) (*ext2.Inode, error) {
	if len(name) > layout.NameLen {
		return nil, errNameTooLong
	}
	if !dir.IsDir() {
		return nil, errNotDir
	}
	n, err := f.fs.LookupIn(dir, name)
	if err != nil {
		return nil, err
	}
	return f.fs.Iget(n)
}

// walkParent resolves the directory that holds rel's last element,
// following every symbolic link on the way, and returns it with a
// reference together with that element. rel must not be the root.
func (f *FS) walkParent(rel string) (*ext2.Inode, string, error) {
	if rel == "." {
		return nil, "", errnoError(syscall.EBUSY, "the root directory")
	}
	dir, base := path.Split(rel)
	if len(base) > layout.NameLen {
		return nil, "", errNameTooLong
	}
	if dir == "" {
		dir = "."
	}
	d, err := f.walk(dir, true)
	if err != nil {
		return nil, "", err
	}
	if !d.IsDir() {
		f.fs.Iput(d)
		return nil, "", errNotDir
	}
	return d, base, nil
}
