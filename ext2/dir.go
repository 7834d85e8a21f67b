package ext2

import (
	"errors"
	"fmt"

	"github.com/mpagefs/mpage/ext2/layout"
)

// DirEntry is one name in a directory.
type DirEntry struct {
	Name string
	Ino  uint32
	// Type is the layout.Ft* file type from the entry (FtUnknown on a
	// filesystem without the filetype feature).
	Type uint8
}

// dirBlocks calls fn with the entries of each block of directory dir, in
// order, parsed and checked as fs/ext2/dir.c:ext2_check_page() does. A
// hashed (dir_index) directory is read linearly, as Linux ext2 does. fn
// returning false stops the walk.
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) dirBlocksLocked(dir *Inode, fn func(ents []layout.DirEntry) bool) error {
	size := int64(dir.disk.Size())
	nblocks := size >> fs.blockBits
	for ib := int64(0); ib < nblocks; ib++ {
		blk, _, err := dir.MapBlock(ib, false)
		if err != nil {
			return err
		}
		if blk == 0 {
			return fs.corrupt(where{ino: dir.ino, group: int64(dir.group), block: -1, offset: -1}, nil,
				"directory block %d is a hole", ib)
		}
		bh, err := fs.bc.Bread(blk)
		if err != nil {
			return fmt.Errorf("ext2: directory inode %d: reading block %d: %w", dir.ino, blk, err)
		}
		bh.Lock()
		ents, err := layout.ParseDirBlock(bh.Data, fs.filetype, fs.inodesCount)
		bh.Unlock()
		fs.bc.Release(bh)
		if err != nil {
			off := int64(-1)
			var ce *layout.CorruptError
			if errors.As(err, &ce) {
				off = blk*int64(fs.blockSize) + ce.Offset
			}
			return fs.corrupt(where{ino: dir.ino, group: int64(dir.group), block: blk, offset: off}, err,
				"bad entry in directory block %d", ib)
		}
		if !fn(ents) {
			return nil
		}
	}
	return nil
}

// ReadDir returns the entries of directory dir, "." and ".." included, in
// on-disk order (ext2_readdir). It updates the directory's atime as
// Options.Atime says.
func (fs *FS) ReadDir(dir *Inode) ([]DirEntry, error) {
	if !dir.IsDir() {
		return nil, ErrNotDir
	}
	defer dir.accessed() // iterate_dir's file_accessed, once unlocked
	dir.mu.RLock()
	defer dir.mu.RUnlock()
	var out []DirEntry
	err := fs.dirBlocksLocked(dir, func(ents []layout.DirEntry) bool {
		for _, e := range ents {
			if e.Inode != 0 {
				out = append(out, DirEntry{Name: e.Name, Ino: e.Inode, Type: e.FileType})
			}
		}
		return true
	})
	return out, err
}

// LookupIn returns the inode number of name in directory dir
// (ext2_inode_by_name with ext2_find_entry's linear scan, or the name
// cache of a large directory), or an error wrapping ErrNotExist.
func (fs *FS) LookupIn(dir *Inode, name string) (uint32, error) {
	if !dir.IsDir() {
		return 0, ErrNotDir
	}
	if name == "" || len(name) > layout.NameLen {
		return 0, fmt.Errorf("%w: %q", ErrNotExist, name)
	}
	dir.mu.RLock()
	defer dir.mu.RUnlock()
	// The name cache of a large directory, else a scan of its blocks
	// that allocates nothing: parsing every entry of every block into
	// named entries made each lookup of a path walk cost a string per
	// entry (most of mkfs --from's CPU went there).
	return fs.lookupNameLocked(dir, name)
}

// ReadLink returns the target of a symbolic link: from i_block for a
// fast symlink, from its block otherwise (ext2_get_link,
// page_get_link). It updates the link's atime as Options.Atime says, as
// Linux does for readlink(2) and for a link followed in a path.
func (fs *FS) ReadLink(ino *Inode) (string, error) {
	if !ino.IsSymlink() {
		return "", fmt.Errorf("%w: inode %d is not a symlink", ErrInvalid, ino.ino)
	}
	defer ino.accessed() // do_readlinkat's and pick_link's touch_atime, once unlocked
	ino.mu.RLock()
	defer ino.mu.RUnlock()
	size := int64(ino.disk.Size())
	if fs.isFastSymlink(&ino.disk) {
		if size > 4*layout.NBlocks {
			return "", fs.corrupt(where{ino: ino.ino, group: int64(ino.group), block: -1, offset: -1}, nil,
				"fast symlink of %d bytes, more than the 60 of i_block", size)
		}
		return string(ino.disk.BlockBytes()[:size]), nil
	}
	if size >= int64(fs.blockSize) {
		return "", fs.corrupt(where{ino: ino.ino, group: int64(ino.group), block: -1, offset: -1}, nil,
			"symlink of %d bytes does not fit its block", size)
	}
	blk, _, err := ino.MapBlock(0, false)
	if err != nil {
		return "", err
	}
	if blk == 0 {
		return "", fs.corrupt(where{ino: ino.ino, group: int64(ino.group), block: -1, offset: -1}, nil, "slow symlink without a block")
	}
	bh, err := fs.bc.Bread(blk)
	if err != nil {
		return "", fmt.Errorf("ext2: symlink inode %d: reading block %d: %w", ino.ino, blk, err)
	}
	bh.Lock()
	s := string(bh.Data[:size])
	bh.Unlock()
	fs.bc.Release(bh)
	return s, nil
}

// Root returns the root directory with a reference.
func (fs *FS) Root() (*Inode, error) { return fs.Iget(layout.RootIno) }

// Lookup resolves a slash-separated path from the root and returns its
// inode with a reference (path_lookupat). Symbolic links in the middle of
// the path are followed; a final one is not (lstat semantics). It is
// LookupPath(path, false).
func (fs *FS) Lookup(path string) (*Inode, error) { return fs.LookupPath(path, false) }
