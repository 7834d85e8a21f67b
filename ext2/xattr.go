package ext2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/mpagefs/mpage/ext2/layout"
)

// Sentinel errors of the extended attribute calls.
var (
	// ErrNoAttr is returned by GetXattr for a name the inode has no
	// attribute of (ENODATA, which Linux also calls ENOATTR).
	ErrNoAttr = fmt.Errorf("ext2: no such extended attribute: %w", syscall.ENODATA)
	// ErrXattrNotSupported is returned for an attribute name with no
	// known namespace prefix (EOPNOTSUPP, as the VFS answers when no
	// xattr handler claims the name): SetXattr and RemoveXattr take only
	// the user., trusted. and security. prefixes and the two POSIX ACL
	// names.
	ErrXattrNotSupported = fmt.Errorf("ext2: extended attribute operation not supported: %w", syscall.EOPNOTSUPP)
)

// xattrNameMax is the longest stored name (e_name_len is one byte);
// fs/ext2/xattr.c:ext2_xattr_get() answers ERANGE beyond it.
const xattrNameMax = 255

// ListXattr returns the full names ("user.comment", "security.selinux",
// "system.posix_acl_access", "trusted.x") of the inode's extended
// attributes, mirroring fs/ext2/xattr.c:ext2_xattr_list(): first those
// stored in the inode itself past i_extra_isize (ext4's in-inode
// attributes of large inodes, which Linux's ext2 ignores but e2fsprogs and
// ext4 write, as ext4_listxattr lists them first), then those of the
// attribute block i_file_acl, each in on-disk order. Entries whose name
// index has no known prefix are left out, as Linux leaves out entries no
// handler claims. Unlike Linux, the list does not depend on the caller's
// capabilities (trusted.*) or on the user_xattr and acl mount options.
//
// A damaged attribute block or in-inode area gives a *CorruptError naming
// the inode, the block and the byte offset.
func (fs *FS) ListXattr(ino *Inode) ([]string, error) {
	xs, err := fs.xattrs(ino)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(xs))
	for i := range xs {
		if layout.XattrPrefix(xs[i].Index) == "" {
			continue
		}
		names = append(names, xs[i].FullName())
	}
	return names, nil
}

// GetXattr returns the value of the inode's extended attribute with the
// full name name, mirroring fs/ext2/xattr.c:ext2_xattr_get(): the in-inode
// area is searched first, then the attribute block. A name the inode does
// not have gives an error wrapping ErrNoAttr (syscall.ENODATA); a name
// without a known namespace prefix ErrXattrNotSupported (EOPNOTSUPP); a
// prefix with nothing after it ("user.") ErrInvalid; a stored name of more
// than 255 bytes syscall.ERANGE.
//
// The POSIX ACLs, "system.posix_acl_access" and "system.posix_acl_default",
// are stored in ext2's own compact format (ext2_acl_header version 1,
// entries of 4 or 8 bytes). GetXattr returns them as the kernel's getxattr(2)
// does, in the VFS format (posix_acl_xattr_header version 2, 8-byte
// entries, e_id 0xFFFFFFFF where the tag has no id), converting as
// fs/ext2/acl.c:ext2_acl_from_disk() followed by posix_acl_to_xattr() do.
// An ACL of no entries is no attribute (ErrNoAttr); an ACL that cannot be
// decoded is a *CorruptError.
func (fs *FS) GetXattr(ino *Inode, name string) ([]byte, error) {
	index, suffix, ok := layout.SplitXattrName(name)
	if !ok || layout.XattrPrefix(index) == "" {
		return nil, fmt.Errorf("%w: %q has no known namespace prefix", ErrXattrNotSupported, name)
	}
	isACL := index == layout.XattrIndexPosixACLAccess || index == layout.XattrIndexPosixACLDefault
	switch {
	case suffix == "" && !isACL:
		return nil, fmt.Errorf("%w: empty attribute name after prefix %q", ErrInvalid, name)
	case len(suffix) > xattrNameMax:
		return nil, fmt.Errorf("ext2: attribute name of %d bytes, at most %d: %w", len(suffix), xattrNameMax, syscall.ERANGE)
	}
	xs, err := fs.xattrs(ino)
	if err != nil {
		return nil, err
	}
	for i := range xs {
		x := &xs[i]
		if x.Index != index || x.Name != suffix {
			continue
		}
		if !isACL {
			return x.Value, nil
		}
		v, err := aclToXattr(x.Value)
		if err != nil {
			return nil, fs.xattrCorrupt(ino, err, "%s", name)
		}
		if v == nil {
			return nil, fmt.Errorf("%w: %s of inode %d holds no entries", ErrNoAttr, name, ino.ino)
		}
		return v, nil
	}
	return nil, fmt.Errorf("%w: %s of inode %d", ErrNoAttr, name, ino.ino)
}

// xattrs returns the attributes of the inode's in-inode area followed by
// those of its attribute block.
func (fs *FS) xattrs(ino *Inode) ([]layout.Xattr, error) {
	if fs.closed.Load() {
		return nil, ErrClosed
	}
	ino.mu.RLock()
	defer ino.mu.RUnlock()
	var all []layout.Xattr
	if area := ino.disk.XattrArea(); area != nil {
		xs, err := layout.ParseInodeXattrs(area)
		if err != nil {
			loc := fs.inodeLoc(ino.ino)
			w := where{group: int64(loc.group), ino: ino.ino, block: loc.block,
				offset: loc.block*int64(fs.blockSize) + int64(loc.offset) + int64(layout.InodeSize) + int64(ino.disk.ExtraIsize)}
			var lc *layout.CorruptError
			if errors.As(err, &lc) {
				w.offset += lc.Offset
			}
			return nil, fs.corrupt(w, err, "bad in-inode extended attributes")
		}
		all = append(all, xs...)
	}
	blk := int64(ino.disk.FileACL())
	if blk == 0 {
		return all, nil
	}
	xs, err := fs.readXattrBlockLocked(ino, blk)
	if err != nil {
		return nil, err
	}
	return append(all, xs...), nil
}

// readXattrBlockLocked reads and decodes the attribute block blk of ino
// through the buffer cache.
// Preconditions: ino.mu is held (shared suffices).
func (fs *FS) readXattrBlockLocked(ino *Inode, blk int64) ([]layout.Xattr, error) {
	w := where{group: int64(ino.group), ino: ino.ino, block: blk, offset: -1}
	if blk < int64(fs.firstDataBlock) || blk >= int64(fs.blocksCount) {
		return nil, fs.corrupt(w, nil, "i_file_acl %d is outside the filesystem (blocks %d-%d)",
			blk, fs.firstDataBlock, fs.blocksCount-1)
	}
	bh, err := fs.bc.Bread(blk)
	if err != nil {
		return nil, fmt.Errorf("ext2: reading extended attribute block %d of inode %d: %w", blk, ino.ino, err)
	}
	// The buffer lock keeps a concurrent refcount change
	// (releaseXattrBlock of another inode sharing the block) out
	// while the entries are copied.
	bh.Lock()
	xs, err := layout.ParseXattrBlock(bh.Data)
	bh.Unlock()
	fs.bc.Release(bh)
	if err != nil {
		w.offset = blk * int64(fs.blockSize)
		var lc *layout.CorruptError
		if errors.As(err, &lc) {
			w.offset += lc.Offset
		}
		return nil, fs.corrupt(w, err, "bad extended attribute block")
	}
	return xs, nil
}

// xattrCorrupt reports a bad attribute value of ino.
func (fs *FS) xattrCorrupt(ino *Inode, cause error, format string, args ...any) error {
	ino.mu.RLock()
	blk := int64(ino.disk.FileACL())
	ino.mu.RUnlock()
	w := where{group: int64(ino.group), ino: ino.ino, block: -1, offset: -1}
	if blk != 0 {
		w.block = blk
	}
	return fs.corrupt(w, cause, format, args...)
}

// POSIX ACL formats: ext2's on-disk one (fs/ext2/acl.h) and the VFS's
// xattr one (include/uapi/linux/posix_acl_xattr.h).
const (
	ext2ACLVersion     = 0x0001 // EXT2_ACL_VERSION
	ext2ACLHeaderSize  = 4      // ext2_acl_header: a_version
	ext2ACLShortSize   = 4      // ext2_acl_entry_short: e_tag, e_perm
	ext2ACLEntrySize   = 8      // ext2_acl_entry: e_tag, e_perm, e_id
	posixACLXattrVer   = 0x0002 // POSIX_ACL_XATTR_VERSION
	posixACLXattrEntry = 8      // posix_acl_xattr_entry: e_tag, e_perm, e_id
	aclUndefinedID     = 0xFFFFFFFF

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// errBadACL is the cause of a *CorruptError for an ACL value that
// ext2_acl_from_disk refuses (EINVAL in Linux).
var errBadACL = fmt.Errorf("ext2: malformed POSIX ACL: %w", syscall.EINVAL)

// ext2ACLCount mirrors fs/ext2/acl.h:ext2_acl_count(): how many entries
// an ACL of size bytes holds (the first four may be short ones), or -1.
func ext2ACLCount(size int) int {
	size -= ext2ACLHeaderSize
	s := size - 4*ext2ACLShortSize
	if s < 0 {
		if size%ext2ACLShortSize != 0 {
			return -1
		}
		return size / ext2ACLShortSize
	}
	if s%ext2ACLEntrySize != 0 {
		return -1
	}
	return s/ext2ACLEntrySize + 4
}

// aclToXattr converts an ACL from ext2's on-disk format to the VFS xattr
// format, as fs/ext2/acl.c:ext2_acl_from_disk() and
// fs/posix_acl.c:posix_acl_to_xattr() do in turn. It returns nil, nil for
// an ACL of no entries (Linux's NULL acl).
func aclToXattr(disk []byte) ([]byte, error) {
	if len(disk) < ext2ACLHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the header", errBadACL, len(disk))
	}
	if v := binary.LittleEndian.Uint32(disk); v != ext2ACLVersion {
		return nil, fmt.Errorf("%w: a_version %d, want %d", errBadACL, v, ext2ACLVersion)
	}
	count := ext2ACLCount(len(disk))
	if count < 0 {
		return nil, fmt.Errorf("%w: %d bytes is no whole number of entries", errBadACL, len(disk))
	}
	if count == 0 {
		return nil, nil
	}
	out := make([]byte, 4, 4+count*posixACLXattrEntry)
	binary.LittleEndian.PutUint32(out, posixACLXattrVer)
	off := ext2ACLHeaderSize
	for n := 0; n < count; n++ {
		if off+ext2ACLShortSize > len(disk) {
			return nil, fmt.Errorf("%w: entry %d at byte %d runs past the end", errBadACL, n, off)
		}
		tag := binary.LittleEndian.Uint16(disk[off:])
		perm := binary.LittleEndian.Uint16(disk[off+2:])
		id := uint32(aclUndefinedID)
		switch tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			off += ext2ACLShortSize
		case aclUser, aclGroup:
			if off+ext2ACLEntrySize > len(disk) {
				return nil, fmt.Errorf("%w: entry %d at byte %d runs past the end", errBadACL, n, off)
			}
			id = binary.LittleEndian.Uint32(disk[off+4:])
			off += ext2ACLEntrySize
		default:
			return nil, fmt.Errorf("%w: entry %d at byte %d has unknown tag %#x", errBadACL, n, off, tag)
		}
		out = binary.LittleEndian.AppendUint16(out, tag)
		out = binary.LittleEndian.AppendUint16(out, perm)
		out = binary.LittleEndian.AppendUint32(out, id)
	}
	if off != len(disk) {
		return nil, fmt.Errorf("%w: entries end at byte %d of %d", errBadACL, off, len(disk))
	}
	return out, nil
}
