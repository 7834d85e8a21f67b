package fusemount

import (
	"io/fs"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpagefs/mpage/ext2fs"
)

// inodeInfo returns the ext2 attributes of fi, which ext2fs made.
func inodeInfo(fi fs.FileInfo) (*ext2fs.InodeInfo, syscall.Errno) {
	ii, ok := fi.Sys().(*ext2fs.InodeInfo)
	if !ok || ii == nil {
		return nil, syscall.EIO
	}
	return ii, 0
}

// fillAttr fills out with the attributes of an inode. i_mode is stored
// with Linux's S_IF* type bits, so it passes through as it is.
func (m *mount) fillAttr(ii *ext2fs.InodeInfo, out *fuse.Attr) {
	out.Ino = uint64(ii.Ino)
	out.Size = uint64(ii.Size)
	out.Blocks = ii.Blocks
	out.Mode = uint32(ii.Mode)
	out.Nlink = ii.Nlink
	out.Uid = ii.UID
	out.Gid = ii.GID
	out.Rdev = uint32(ii.Rdev())
	out.Blksize = m.blockSize
	atime, mtime, ctime := ii.Atime, ii.Mtime, ii.Ctime
	out.SetTimes(&atime, &mtime, &ctime)
}

// stableAttr is the go-fuse identity of an inode: type, number and
// generation.
func stableAttr(ii *ext2fs.InodeInfo) gofs.StableAttr {
	return gofs.StableAttr{Mode: uint32(ii.Mode) & syscall.S_IFMT, Ino: uint64(ii.Ino), Gen: uint64(ii.Generation)}
}

// permMode converts the permission bits of a raw mode (with set-user-ID,
// set-group-ID and sticky) to an fs.FileMode.
func permMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// typeMode converts the S_IF* type of a raw mode to an fs.FileMode type
// for ext2fs.Mknod; ok is false for a type mknod cannot make.
func typeMode(mode uint32) (fs.FileMode, bool) {
	switch mode & syscall.S_IFMT {
	case 0, syscall.S_IFREG:
		return 0, true
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case syscall.S_IFBLK:
		return fs.ModeDevice, true
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe, true
	case syscall.S_IFSOCK:
		return fs.ModeSocket, true
	}
	return 0, false
}

// direntMode is the S_IF* type of a directory entry.
func direntMode(t fs.FileMode) uint32 {
	switch {
	case t&fs.ModeDir != 0:
		return syscall.S_IFDIR
	case t&fs.ModeSymlink != 0:
		return syscall.S_IFLNK
	case t&fs.ModeCharDevice != 0:
		return syscall.S_IFCHR
	case t&fs.ModeDevice != 0:
		return syscall.S_IFBLK
	case t&fs.ModeNamedPipe != 0:
		return syscall.S_IFIFO
	case t&fs.ModeSocket != 0:
		return syscall.S_IFSOCK
	}
	return syscall.S_IFREG
}
