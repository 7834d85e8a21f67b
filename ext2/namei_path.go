package ext2

import (
	"fmt"
	"strings"

	"github.com/mpagefs/mpage/ext2/layout"
)

// LookupPath resolves a slash-separated path from the root, component by
// component (fs/namei.c:link_path_walk with ext2_lookup for each name),
// and returns its inode with a reference. Empty components and a leading
// slash are ignored; "." and ".." are the entries on disk (".." of the
// root is the root). Symbolic links in the middle of the path are always
// followed, a relative target from the directory holding the link; a
// final one is followed only with followLast (stat rather than lstat).
// More than 40 links in all is ErrLoop (ELOOP), a component above 255
// bytes ErrNameTooLong, a non-directory before the end ErrNotDir, and a
// missing name ErrNotExist.
func (fs *FS) LookupPath(path string, followLast bool) (*Inode, error) {
	cur, err := fs.Root()
	if err != nil {
		return nil, err
	}
	ino, err := fs.walkFrom(cur, pathNames(path), followLast, path)
	if err != nil {
		return nil, err
	}
	return ino, nil
}

// LookupParent resolves all but the last component of path (following
// every symbolic link on the way) and returns that directory, with a
// reference, and the last component, for the calls that create or
// remove a name. The root itself has no last component: its parent is
// itself and its name ".".
func (fs *FS) LookupParent(path string) (*Inode, string, error) {
	parts := pathNames(path)
	root, err := fs.Root()
	if err != nil {
		return nil, "", err
	}
	if len(parts) == 0 {
		return root, ".", nil
	}
	last := parts[len(parts)-1]
	if len(last) > layout.NameLen {
		fs.Iput(root)
		return nil, "", fmt.Errorf("%w: %q in %q", ErrNameTooLong, last, path)
	}
	dir, err := fs.walkFrom(root, parts[:len(parts)-1], true, path)
	if err != nil {
		return nil, "", err
	}
	if !dir.IsDir() {
		fs.Iput(dir)
		return nil, "", fmt.Errorf("%w: parent of %q in %q", ErrNotDir, last, path)
	}
	return dir, last, nil
}

// walkFrom resolves parts from directory cur, consuming its reference.
func (fs *FS) walkFrom(cur *Inode, parts []string, followLast bool, path string) (*Inode, error) {
	parts = append([]string(nil), parts...)
	links := 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		if !cur.IsDir() {
			fs.Iput(cur)
			return nil, fmt.Errorf("%w: %q in %q", ErrNotDir, name, path)
		}
		if len(name) > layout.NameLen {
			fs.Iput(cur)
			return nil, fmt.Errorf("%w: %q in %q", ErrNameTooLong, name, path)
		}
		n, err := fs.LookupIn(cur, name)
		if err != nil {
			fs.Iput(cur)
			return nil, err
		}
		if n == cur.ino {
			continue // "." (or ".." of the root)
		}
		next, err := fs.Iget(n)
		if err != nil {
			fs.Iput(cur)
			return nil, err
		}
		if next.IsSymlink() && (len(parts) > 0 || followLast) {
			links++
			if links > maxLinkFollow {
				fs.Iput(next)
				fs.Iput(cur)
				return nil, fmt.Errorf("%w: resolving %q", ErrLoop, path)
			}
			target, err := fs.ReadLink(next)
			fs.Iput(next)
			if err != nil {
				fs.Iput(cur)
				return nil, err
			}
			if target == "" {
				fs.Iput(cur)
				return nil, fmt.Errorf("%w: empty symbolic link %q in %q", ErrNotExist, name, path)
			}
			if strings.HasPrefix(target, "/") {
				fs.Iput(cur)
				if cur, err = fs.Root(); err != nil {
					return nil, err
				}
			}
			parts = append(pathNames(target), parts...)
			continue
		}
		fs.Iput(cur)
		cur = next
	}
	return cur, nil
}

// pathNames splits a slash-separated path into its non-empty components.
func pathNames(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}
