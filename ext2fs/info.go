package ext2fs

import (
	"io/fs"
	"time"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2/layout"
)

// InodeInfo is what fs.FileInfo.Sys returns for a file of an ext2
// filesystem: the inode's attributes beyond those of fs.FileInfo.
type InodeInfo struct {
	Ino    uint32 // inode number
	Mode   uint16 // i_mode: file type and permission bits, as stored
	Nlink  uint32 // hard links
	UID    uint32
	GID    uint32
	Size   int64
	Blocks uint64 // i_blocks: 512-byte units allocated, metadata included
	Atime  time.Time
	Mtime  time.Time
	Ctime  time.Time
	// Major and Minor are the device number of a character or block
	// device node, else 0.
	Major, Minor uint32
	Flags        uint32 // i_flags (layout.Fl*)
	Generation   uint32 // i_generation
}

// Rdev returns the device number of a device node in Linux's encoding
// (as unix.Mkdev makes it, and as syscall.Mknod takes it).
func (i *InodeInfo) Rdev() uint64 { return mkdev(i.Major, i.Minor) }

func mkdev(major, minor uint32) uint64 {
	return uint64(major&0xfff)<<8 | uint64(major&^0xfff)<<32 |
		uint64(minor&0xff) | uint64(minor&^0xff)<<12
}

func splitDev(dev uint64) (major, minor uint32) {
	major = uint32((dev>>8)&0xfff) | uint32((dev>>32)&^0xfff)
	minor = uint32(dev&0xff) | uint32((dev>>12)&^0xff)
	return
}

func inodeInfo(st ext2.Stat) *InodeInfo {
	return &InodeInfo{
		Ino: st.Ino, Mode: st.Mode, Nlink: uint32(st.Nlink), UID: st.UID, GID: st.GID,
		Size: st.Size, Blocks: st.Blocks, Atime: st.Atime, Mtime: st.Mtime, Ctime: st.Ctime,
		Major: st.RdevMajor, Minor: st.RdevMinor, Flags: st.Flags, Generation: st.Generation,
	}
}

// fileMode converts an ext2 i_mode to an fs.FileMode.
func fileMode(m uint16) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&layout.ModeSetuid != 0 {
		mode |= fs.ModeSetuid
	}
	if m&layout.ModeSetgid != 0 {
		mode |= fs.ModeSetgid
	}
	if m&layout.ModeSticky != 0 {
		mode |= fs.ModeSticky
	}
	switch m & layout.ModeFmt {
	case layout.ModeDir:
		mode |= fs.ModeDir
	case layout.ModeLnk:
		mode |= fs.ModeSymlink
	case layout.ModeChr:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case layout.ModeBlk:
		mode |= fs.ModeDevice
	case layout.ModeFifo:
		mode |= fs.ModeNamedPipe
	case layout.ModeSock:
		mode |= fs.ModeSocket
	}
	return mode
}

// extMode converts the permission bits of an fs.FileMode to i_mode bits
// (without a type).
func extMode(m fs.FileMode) uint16 {
	mode := uint16(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= layout.ModeSetuid
	}
	if m&fs.ModeSetgid != 0 {
		mode |= layout.ModeSetgid
	}
	if m&fs.ModeSticky != 0 {
		mode |= layout.ModeSticky
	}
	return mode
}

// fileInfo is the fs.FileInfo of an inode.
type fileInfo struct {
	name string
	st   ext2.Stat
}

func newFileInfo(name string, ino *ext2.Inode) *fileInfo {
	return &fileInfo{name: name, st: ino.Stat()}
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.st.Size }
func (fi *fileInfo) Mode() fs.FileMode  { return fileMode(fi.st.Mode) }
func (fi *fileInfo) ModTime() time.Time { return fi.st.Mtime }
func (fi *fileInfo) IsDir() bool        { return fi.st.Mode&layout.ModeFmt == layout.ModeDir }
func (fi *fileInfo) Sys() any           { return inodeInfo(fi.st) }
func (fi *fileInfo) String() string     { return fs.FormatFileInfo(fi) }

// dirEntry is an fs.DirEntry of a directory.
type dirEntry struct {
	fsys *FS
	name string
	ino  uint32
	typ  fs.FileMode // the type bits
}

func (d *dirEntry) Name() string      { return d.name }
func (d *dirEntry) IsDir() bool       { return d.typ.IsDir() }
func (d *dirEntry) Type() fs.FileMode { return d.typ }
func (d *dirEntry) String() string    { return fs.FormatDirEntry(d) }

// Info returns the entry's attributes as Lstat would (a symbolic link
// describes itself), read when called.
func (d *dirEntry) Info() (fs.FileInfo, error) {
	if err := d.fsys.checkOpen(); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.name, Err: err}
	}
	ino, err := d.fsys.fs.Iget(d.ino)
	if err != nil {
		return nil, pathErr("stat", d.name, err)
	}
	defer d.fsys.fs.Iput(ino)
	return newFileInfo(d.name, ino), nil
}

// ftMode is the fs.FileMode type of a layout.Ft* directory entry type.
func ftMode(ft uint8) (fs.FileMode, bool) {
	switch ft {
	case layout.FtRegFile:
		return 0, true
	case layout.FtDir:
		return fs.ModeDir, true
	case layout.FtSymlink:
		return fs.ModeSymlink, true
	case layout.FtChrdev:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case layout.FtBlkdev:
		return fs.ModeDevice, true
	case layout.FtFifo:
		return fs.ModeNamedPipe, true
	case layout.FtSock:
		return fs.ModeSocket, true
	}
	return 0, false
}

// dirEntries lists directory dir without "." and "..", in on-disk order.
func (f *FS) dirEntries(dir *ext2.Inode) ([]fs.DirEntry, error) {
	ents, err := f.fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		if e.Name == "." || e.Name == ".." {
			continue
		}
		typ, ok := ftMode(e.Type)
		if !ok {
			ino, err := f.fs.Iget(e.Ino)
			if err != nil {
				return nil, err
			}
			typ = fileMode(ino.Mode()).Type()
			f.fs.Iput(ino)
		}
		out = append(out, &dirEntry{fsys: f, name: e.Name, ino: e.Ino, typ: typ})
	}
	return out, nil
}
