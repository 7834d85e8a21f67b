package ext2fs

import (
	"io/fs"

	"github.com/mpagefs/mpage/ext2/layout"
)

// TreeSize is what a tree holds, as MeasureTree and MeasureImage count
// it: enough to size an image that is to receive it.
type TreeSize struct {
	Files, Dirs, Symlinks, Others int64
	// DataBytes is the bytes of data of the regular files, holes left
	// out; a file with several names counts at each.
	DataBytes int64
	// DirEntryBytes is what the names take in ext2 directories (8 bytes
	// of entry header and the name rounded up to 4).
	DirEntryBytes int64
	// LongSymlinks counts the symbolic links whose target does not fit
	// in the inode and takes a block.
	LongSymlinks int64
	// FileData is the data bytes of each regular file, in walk order.
	FileData []int64
}

// symlinkInInode is the longest symbolic link target kept in the inode
// (a fast symlink, in the 60 bytes of i_block, NUL included).
const symlinkInInode = 4*layout.NBlocks - 1

// MeasureTree counts the files and data of the tree at dir on the host
// (a final symbolic link is not followed).
func MeasureTree(dir string) (TreeSize, error) {
	return measure(hostSource{}, dir, false)
}

// MeasureImage counts the files and data of the tree at name in the
// image (an os-style name; a final symbolic link is not followed).
func MeasureImage(fsys *FS, name string) (TreeSize, error) {
	return measure(imageSource{fsys}, name, false)
}

func measure(src copySource, name string, follow bool) (TreeSize, error) {
	var u TreeSize
	top, err := src.top(name, follow)
	if err != nil {
		return u, err
	}
	defer src.release(top)
	err = u.add(src, top, map[fileKey]bool{})
	return u, err
}

// add counts e and, for a directory, what it holds. Names that are not
// file names and directory loops (which a copy refuses) are passed over.
func (u *TreeSize) add(src copySource, e *srcEnt, onPath map[fileKey]bool) error {
	n := &e.node
	switch n.mode.Type() {
	case 0:
		u.Files++
		data := min(n.size, n.blocks*512) // less when sparse
		u.DataBytes += data
		u.FileData = append(u.FileData, data)
	case fs.ModeDir:
		if onPath[n.key] {
			return nil
		}
		onPath[n.key] = true
		defer delete(onPath, n.key)
		u.Dirs++
		kids, err := src.children(e)
		if err != nil {
			return err
		}
		for _, k := range kids {
			if !validName(k.name) {
				continue
			}
			u.DirEntryBytes += int64(8 + (len(k.name)+3)&^3)
			child, err := src.child(e, k)
			if err != nil {
				return err
			}
			err = u.add(src, child, onPath)
			src.release(child)
			if err != nil {
				return err
			}
		}
	case fs.ModeSymlink:
		u.Symlinks++
		if n.size > symlinkInInode {
			u.LongSymlinks++
		}
	default:
		u.Others++
	}
	return nil
}
