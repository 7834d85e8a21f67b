package ext2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
)

// Flags of SetXattr, with the values of setxattr(2)'s XATTR_CREATE and
// XATTR_REPLACE.
const (
	// XattrCreate makes SetXattr fail with ErrXattrExists (EEXIST) if
	// the attribute is already there.
	XattrCreate = 0x1
	// XattrReplace makes SetXattr fail with ErrNoAttr (ENODATA) if the
	// attribute is not there.
	XattrReplace = 0x2
)

// ErrXattrExists is returned by SetXattr with XattrCreate for an
// attribute the inode already has (EEXIST).
var ErrXattrExists = fmt.Errorf("ext2: extended attribute exists: %w", syscall.EEXIST)

// xattrSizeMax is XATTR_SIZE_MAX, the largest value setxattr(2) takes
// (E2BIG beyond it); ext2 itself refuses values larger than a block.
const xattrSizeMax = 65536

// SetXattr creates or replaces the extended attribute name of ino with
// value, mirroring fs/xattr.c:vfs_setxattr() down to
// fs/ext2/xattr.c:ext2_xattr_set(). flags is 0, XattrCreate or
// XattrReplace.
//
// Attributes are written to the inode's attribute block (i_file_acl), as
// Linux's ext2 writes them: the block is made on the first attribute
// (allocated near the inode's group, counted in i_blocks, the ext_attr
// feature set), kept sorted by name index, name length and name, with
// the entry and block hashes of ext2_xattr_hash_entry and
// ext2_xattr_rehash. A block that other inodes share (h_refcount above
// 1) is copied first, and the shared one's refcount lowered; a block left
// with no attributes is freed. An attribute that ext4 or mke2fs -d stored
// in the inode body (large inodes) is replaced where it is, or moved to
// the block when the new value does not fit there, so that no name is
// ever stored twice. Identical blocks of different inodes are not merged
// (Linux shares them through its mbcache; this package never makes a
// block shared, but copies one that is).
//
// Names are those of the handlers Linux's ext2 has: "user.", "trusted."
// and "security." followed by at least one byte, and the two POSIX ACLs
// "system.posix_acl_access" and "system.posix_acl_default". An ACL value
// is given in the VFS format that GetXattr returns (version 2, 8-byte
// entries) and stored in ext2's compact format; as
// fs/ext2/acl.c:ext2_set_acl() does, setting the access ACL also sets
// the group-class and other permission bits of the mode from it, and an
// access ACL that the mode bits express fully (three entries) is not
// stored at all. An empty ACL value, or one with no entries, removes the
// ACL. The flags do not apply to ACLs (vfs_set_acl ignores them).
//
// Errors, each wrapping the errno Linux answers: a name in no namespace
// ErrXattrNotSupported (EOPNOTSUPP); a prefix with nothing after it, a
// NUL byte in the name, unknown flags or a malformed ACL ErrInvalid
// (EINVAL; an ACL of another version EOPNOTSUPP); an empty name or one of
// more than 255 bytes syscall.ERANGE; a value of more than 64 KiB
// syscall.E2BIG; XattrCreate of an existing attribute ErrXattrExists;
// XattrReplace of a missing one ErrNoAttr; a value that does not fit in
// the block beside the others ErrNoSpace (ENOSPC), as does a value larger
// than a block (where fs/ext2 says ERANGE, the ext4 driver that mounts
// ext2 in current kernels says ENOSPC) and a full filesystem; after any
// error the attributes are as they were; an
// immutable or append-only inode, or a user.* attribute on anything but a
// regular file or directory, ErrPermission (EPERM); a default ACL on a
// non-directory syscall.EACCES; an ACL on a symbolic link
// ErrXattrNotSupported; a read-only filesystem ErrReadOnly (EROFS). As
// for all inode calls, permission checks that depend on the caller
// (trusted.* needs CAP_SYS_ADMIN, the sticky directory rule for user.*,
// clearing the set-group-ID bit on an ACL change) are the caller's.
func (fs *FS) SetXattr(ino *Inode, name string, value []byte, flags int) error {
	if value == nil {
		value = []byte{}
	}
	return fs.changeXattr(ino, name, value, flags)
}

// RemoveXattr removes the extended attribute name of ino, mirroring
// fs/xattr.c:vfs_removexattr(), which calls the ext2 handler with no
// value and XATTR_REPLACE: a missing attribute is ErrNoAttr (ENODATA).
// Removing a POSIX ACL goes through ext2_set_acl(NULL) as in Linux and
// succeeds when there is none. The attribute is removed where it is (the
// attribute block or the inode body); a block left empty is freed, or
// its refcount lowered if it was shared. Other errors are those of
// SetXattr.
func (fs *FS) RemoveXattr(ino *Inode, name string) error {
	return fs.changeXattr(ino, name, nil, XattrReplace)
}

// changeXattr does SetXattr (value non-nil) and RemoveXattr (value nil).
func (fs *FS) changeXattr(ino *Inode, name string, value []byte, flags int) error {
	if err := fs.checkWritable(); err != nil {
		return err
	}
	if ino.fs != fs {
		return ErrCrossDevice
	}
	index, suffix, err := checkXattrName(name)
	if err != nil {
		return err
	}
	if flags&^(XattrCreate|XattrReplace) != 0 {
		return fmt.Errorf("%w: setxattr flags %#x", ErrInvalid, flags)
	}
	if len(value) > xattrSizeMax {
		return fmt.Errorf("ext2: value of %d bytes for %s, at most %d: %w", len(value), name, xattrSizeMax, syscall.E2BIG)
	}
	isACL := index == layout.XattrIndexPosixACLAccess || index == layout.XattrIndexPosixACLDefault
	var acl []aclEntry
	if isACL {
		// do_set_acl and vfs_remove_acl pass no flags: both go
		// through ext2_set_acl, removal as ext2_set_acl(NULL).
		flags = 0
		if value != nil {
			if acl, err = aclFromXattr(value); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}

	ino.mu.Lock()
	defer ino.mu.Unlock()
	d := &ino.disk
	if d.Flags&(layout.FlImmutable|layout.FlAppend) != 0 {
		return fmt.Errorf("%w: extended attribute %s of immutable or append-only inode %d", ErrPermission, name, ino.ino)
	}
	typ := d.Mode & layout.ModeFmt
	if index == layout.XattrIndexUser && typ != layout.ModeReg && typ != layout.ModeDir {
		return fmt.Errorf("%w: user.* attributes only on regular files and directories, inode %d has mode %#o", ErrPermission, ino.ino, d.Mode)
	}
	if isACL {
		if typ == layout.ModeLnk {
			return fmt.Errorf("%w: POSIX ACL on symbolic link inode %d", ErrXattrNotSupported, ino.ino)
		}
		if index == layout.XattrIndexPosixACLDefault && typ != layout.ModeDir {
			if acl == nil {
				return nil
			}
			return fmt.Errorf("ext2: default ACL on inode %d, not a directory: %w", ino.ino, syscall.EACCES)
		}
		return fs.setACLLocked(ino, index, acl)
	}
	return fs.xattrSetLocked(ino, index, suffix, value, flags)
}

// checkXattrName splits a full attribute name into its name index and
// stored name for a change, answering as the VFS (xattr_resolve_name and
// the setxattr name copy) and ext2's handlers do.
func checkXattrName(name string) (uint8, string, error) {
	if name == "" || len(name) > xattrNameMax {
		return 0, "", fmt.Errorf("ext2: attribute name of %d bytes, want 1 to %d: %w", len(name), xattrNameMax, syscall.ERANGE)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return 0, "", fmt.Errorf("%w: attribute name %q holds a NUL byte", ErrInvalid, name)
	}
	index, suffix, ok := layout.SplitXattrName(name)
	if ok {
		switch index {
		case layout.XattrIndexUser, layout.XattrIndexTrusted, layout.XattrIndexSecurity:
			if suffix == "" {
				return 0, "", fmt.Errorf("%w: empty attribute name after prefix %q", ErrInvalid, name)
			}
			return index, suffix, nil
		case layout.XattrIndexPosixACLAccess, layout.XattrIndexPosixACLDefault:
			if suffix == "" {
				return index, "", nil
			}
		}
	}
	return 0, "", fmt.Errorf("%w: %q has no namespace ext2 can store", ErrXattrNotSupported, name)
}

// xattrSetLocked sets (value non-nil) or removes (value nil) one
// attribute: in the inode body if it is there, else in the attribute
// block (ext2_xattr_set).
// Preconditions: ino.mu is held exclusively.
func (fs *FS) xattrSetLocked(ino *Inode, index uint8, name string, value []byte, flags int) error {
	if len(value) > fs.blockSize {
		// fs/ext2 answers ERANGE here; the ext4 driver, which mounts
		// ext2 in current kernels, ENOSPC, as for any value that does
		// not fit, and so do we.
		return fmt.Errorf("%w: value of %d bytes for %s%s, larger than a block (%d)",
			ErrNoSpace, len(value), layout.XattrPrefix(index), name, fs.blockSize)
	}
	ib, err := fs.ibodyLocked(ino)
	if err != nil {
		return err
	}
	if ib != nil {
		switch _, found, err := ib.find(index, name); {
		case err != nil:
			return fs.ibodyCorrupt(ino, err)
		case found:
			return fs.ibodySetLocked(ino, ib, index, name, value, flags)
		}
	}
	return fs.blockSetLocked(ino, index, name, value, flags)
}

// ibodySetLocked changes an attribute found in the inode body: it is
// removed, or replaced in place if the new value fits there (as
// ext4_xattr_ibody_set does), or else moved to the attribute block.
// Preconditions: ino.mu is held exclusively; ib holds the attribute.
func (fs *FS) ibodySetLocked(ino *Inode, ib *xattrArea, index uint8, name string, value []byte, flags int) error {
	if flags&XattrCreate != 0 {
		return fmt.Errorf("%w: %s%s of inode %d", ErrXattrExists, layout.XattrPrefix(index), name, ino.ino)
	}
	work := ib.clone()
	err := work.set(index, name, value, 0)
	if errors.Is(err, errXattrNoRoom) {
		// Too big for the inode body: into the block, then out of the
		// body. A failure in the block leaves both as they were.
		if err := fs.blockSetLocked(ino, index, name, value, 0); err != nil {
			return err
		}
		work = ib.clone()
		err = work.set(index, name, nil, 0)
	}
	if err != nil {
		return fs.ibodyCorrupt(ino, err)
	}
	area := ino.disk.XattrArea()
	raw := bytes.Clone(ino.disk.Raw)
	start := len(raw) - len(area)
	if work.isEmpty() {
		clear(raw[start:]) // h_magic 0: no attributes (ext4_xattr_ibody_set)
	} else {
		binary.LittleEndian.PutUint32(raw[start:], layout.XattrMagic)
		copy(raw[start+4:], work.b)
	}
	now := time.Now()
	ino.UpdateLocked(func(d *layout.Inode) {
		d.Raw = raw
		setTimes(d, now, "c")
	})
	return nil
}

// ibodyLocked returns the inode body's attribute area as an editable
// entry list, or nil when it holds none.
// Preconditions: ino.mu is held.
func (fs *FS) ibodyLocked(ino *Inode) (*xattrArea, error) {
	area := ino.disk.XattrArea()
	if len(area) < 4 || binary.LittleEndian.Uint32(area) != layout.XattrMagic {
		return nil, nil
	}
	if _, err := layout.ParseInodeXattrs(area); err != nil {
		return nil, fs.ibodyCorrupt(ino, err)
	}
	// Entries and value offsets count from the first entry, after
	// h_magic; the area ends with the inode (ext4 IHDR/IFIRST).
	return &xattrArea{b: bytes.Clone(area[4:]), first: 0, sorted: false}, nil
}

// ibodyCorrupt reports a damaged in-inode attribute area of ino.
func (fs *FS) ibodyCorrupt(ino *Inode, err error) error {
	loc := fs.inodeLoc(ino.ino)
	w := where{group: int64(loc.group), ino: ino.ino, block: loc.block,
		offset: loc.block*int64(fs.blockSize) + int64(loc.offset) + int64(layout.InodeSize) + int64(ino.disk.ExtraIsize)}
	return fs.corrupt(w, err, "bad in-inode extended attributes")
}

// blockSetLocked is ext2_xattr_set() and ext2_xattr_set2() for the
// attribute block: it edits a copy of the block, then writes it back in
// place (h_refcount 1), or into a new block (no block yet, or a shared
// one), or frees the block when no attribute is left, and updates
// i_file_acl, i_blocks and ctime.
// Preconditions: ino.mu is held exclusively.
func (fs *FS) blockSetLocked(ino *Inode, index uint8, name string, value []byte, flags int) error {
	old := int64(ino.disk.FileACL())
	work := &xattrArea{first: layout.XattrHeaderSize, sorted: true}
	if old != 0 {
		if _, err := fs.readXattrBlockLocked(ino, old); err != nil {
			return err // validated as the read path does
		}
		bh, err := fs.bc.Bread(old)
		if err != nil {
			return fmt.Errorf("ext2: reading extended attribute block %d of inode %d: %w", old, ino.ino, err)
		}
		bh.Lock()
		work.b = bytes.Clone(bh.Data)
		bh.Unlock()
		fs.bc.Release(bh)
	} else {
		work.b = make([]byte, fs.blockSize)
		h := layout.XattrHeader{Magic: layout.XattrMagic, Refcount: 1, Blocks: 1}
		h.Encode(work.b)
	}
	err := work.set(index, name, value, flags)
	switch {
	case errors.Is(err, errXattrNoRoom):
		return fmt.Errorf("%w: extended attribute %s%s of %d bytes does not fit in the attribute block of inode %d",
			ErrNoSpace, layout.XattrPrefix(index), name, len(value), ino.ino)
	case errors.Is(err, errXattrUnchanged):
		return nil // removing a missing attribute without XattrReplace
	case errors.Is(err, ErrNoAttr), errors.Is(err, ErrXattrExists):
		return fmt.Errorf("%w: %s%s of inode %d", err, layout.XattrPrefix(index), name, ino.ino)
	case err != nil:
		w := where{group: int64(ino.group), ino: ino.ino, block: old, offset: old * int64(fs.blockSize)}
		return fs.corrupt(w, err, "bad extended attribute block")
	}

	nb := old
	switch {
	case work.isEmpty():
		nb = 0
	case old != 0 && fs.writeXattrInPlace(old, work.b):
	default:
		// ext2_xattr_set2: a new block near the inode's group.
		binary.LittleEndian.PutUint32(work.b[4:], 1) // h_refcount
		blk, _, err := fs.newBlocks(nil, fs.groupFirstBlock(ino.group), 1)
		if err != nil {
			return err
		}
		fs.fillNewBlock(blk, func(b []byte) { copy(b, work.b) })
		ino.addBlocks(1)
		if err := fs.setExtAttrFeature(); err != nil {
			fs.logf("ext2: setting the ext_attr feature: %v", err)
		}
		nb = blk
	}
	now := time.Now()
	ino.UpdateLocked(func(d *layout.Inode) {
		d.SetFileACL(uint64(nb))
		setTimes(d, now, "c")
	})
	if old != 0 && old != nb {
		return ino.releaseXattrBlock(old)
	}
	return nil
}

// writeXattrInPlace writes b over the attribute block blk if the block is
// the inode's alone (h_refcount 1), under the buffer lock that orders
// refcount changes, and reports whether it did.
func (fs *FS) writeXattrInPlace(blk int64, b []byte) bool {
	bh, err := fs.bc.Bread(blk)
	if err != nil {
		return false // write a new block instead
	}
	defer fs.bc.Release(bh)
	bh.Lock()
	if binary.LittleEndian.Uint32(bh.Data[4:]) != 1 {
		bh.Unlock()
		return false
	}
	// b was copied when another inode may still have shared the block
	// (it let go since): its h_refcount is stale.
	binary.LittleEndian.PutUint32(b[4:], 1)
	copy(bh.Data, b)
	bh.Unlock()
	fs.bc.MarkDirty(bh)
	return true
}

// setExtAttrFeature sets the ext_attr compat feature if the superblock
// lacks it (ext2_xattr_update_super_block).
func (fs *FS) setExtAttrFeature() error {
	fs.sbMu.Lock()
	sb := fs.sbMu.sb
	if sb.FeatureCompat&layout.CompatExtAttr != 0 {
		fs.sbMu.Unlock()
		return nil
	}
	sb.FeatureCompat |= layout.CompatExtAttr
	fs.sbMu.Unlock()
	return fs.writeSuper(false)
}

// Errors of xattrArea.set that its callers turn into their own.
var (
	errXattrNoRoom    = errors.New("ext2: no room for the attribute")
	errXattrUnchanged = errors.New("ext2: nothing to remove")
)

// xattrArea is an editable list of attribute entries with their values
// below them: an attribute block (entries from byte 32, value offsets
// from the block start, sorted) or the inode body's area past h_magic
// (entries and value offsets from byte 0, unsorted, as ext4 keeps them).
type xattrArea struct {
	b      []byte
	first  int  // offset of the first entry; value offsets count from 0
	sorted bool // entries in ext2's order; a new one goes in its place
}

func (a *xattrArea) clone() *xattrArea {
	c := *a
	c.b = bytes.Clone(a.b)
	return &c
}

func (a *xattrArea) isEmpty() bool {
	return len(a.b) < a.first+4 || binary.LittleEndian.Uint32(a.b[a.first:]) == 0
}

// Entry fields at entry offset e (struct ext2_xattr_entry).
func (a *xattrArea) nameLen(e int) int   { return int(a.b[e]) }
func (a *xattrArea) index(e int) uint8   { return a.b[e+1] }
func (a *xattrArea) valueOffs(e int) int { return int(binary.LittleEndian.Uint16(a.b[e+2:])) }
func (a *xattrArea) valueSize(e int) int { return int(binary.LittleEndian.Uint32(a.b[e+8:])) }
func (a *xattrArea) name(e int) []byte {
	return a.b[e+layout.XattrEntrySize : e+layout.XattrEntrySize+a.nameLen(e)]
}
func (a *xattrArea) isLast(e int) bool       { return binary.LittleEndian.Uint32(a.b[e:]) == 0 }
func (a *xattrArea) setOffs(e, o int)        { binary.LittleEndian.PutUint16(a.b[e+2:], uint16(o)) }
func (a *xattrArea) setSize(e, n int)        { binary.LittleEndian.PutUint32(a.b[e+8:], uint32(n)) }
func (a *xattrArea) setHash(e int, h uint32) { binary.LittleEndian.PutUint32(a.b[e+12:], h) }

// xattrSize is EXT2_XATTR_SIZE: a value's bytes rounded up to 4.
func xattrSize(n int) int { return (n + 3) &^ 3 }

// scan walks the entries as ext2_xattr_set does: here is the entry named
// (found) or, in a sorted area, the one the name goes before, else the
// terminator; last is the terminator; minOffs the lowest value offset.
func (a *xattrArea) scan(index uint8, name string) (here, last, minOffs int, found bool, err error) {
	minOffs = len(a.b)
	here = -1
	e := a.first
	for {
		if e+4 > len(a.b) {
			return 0, 0, 0, false, fmt.Errorf("entry list runs past the end at byte %d", e)
		}
		if a.isLast(e) {
			break
		}
		next := e + layout.XattrEntryLen(a.nameLen(e))
		if next+4 > len(a.b) {
			return 0, 0, 0, false, fmt.Errorf("entry at byte %d runs past the end", e)
		}
		if a.valueSize(e) != 0 && a.valueOffs(e) < minOffs {
			minOffs = a.valueOffs(e)
		}
		if here < 0 {
			c := int(index) - int(a.index(e))
			if c == 0 && a.sorted {
				c = len(name) - a.nameLen(e)
			}
			if c == 0 {
				c = bytes.Compare([]byte(name), a.name(e))
			}
			if c == 0 {
				here, found = e, true
			} else if c < 0 && a.sorted {
				here = e
			}
		}
		e = next
	}
	last = e
	if here < 0 {
		here = last
	}
	if minOffs < last+4 {
		return 0, 0, 0, false, fmt.Errorf("values at byte %d overlap the entries, which end at %d", minOffs, last+4)
	}
	return here, last, minOffs, found, nil
}

// find reports whether the area holds the attribute.
func (a *xattrArea) find(index uint8, name string) (int, bool, error) {
	here, _, _, found, err := a.scan(index, name)
	return here, found, err
}

// set is the editing part of fs/ext2/xattr.c:ext2_xattr_set(): it
// inserts, replaces (value non-nil) or removes (value nil) the entry,
// keeping the values packed at the end of the area, and rehashes a
// sorted area (an attribute block). It fails with errXattrNoRoom,
// errXattrUnchanged (a missing attribute to remove, without
// XattrReplace), ErrNoAttr, ErrXattrExists, or an error describing a
// damaged area; on failure a.b is unchanged.
func (a *xattrArea) set(index uint8, name string, value []byte, flags int) error {
	here, last, minOffs, found, err := a.scan(index, name)
	if err != nil {
		return err
	}
	free := minOffs - last - 4
	if !found {
		if flags&XattrReplace != 0 {
			return ErrNoAttr
		}
		if value == nil {
			return errXattrUnchanged
		}
	} else {
		if flags&XattrCreate != 0 {
			return ErrXattrExists
		}
		if n := a.valueSize(here); n != 0 {
			if a.valueOffs(here)+n > len(a.b) {
				return fmt.Errorf("value of entry at byte %d runs past the end", here)
			}
			free += xattrSize(n)
		}
		free += layout.XattrEntryLen(len(name))
	}
	if value != nil && free < layout.XattrEntryLen(len(name))+xattrSize(len(value)) {
		return errXattrNoRoom
	}

	if !found {
		// Insert the new name.
		size := layout.XattrEntryLen(len(name))
		copy(a.b[here+size:], a.b[here:last+4])
		clear(a.b[here : here+size])
		a.b[here] = byte(len(name))
		a.b[here+1] = index
		copy(a.b[here+layout.XattrEntrySize:], name)
		last += size
	} else {
		if n := a.valueSize(here); n != 0 {
			offs := a.valueOffs(here)
			size := xattrSize(n)
			if value != nil && size == xattrSize(len(value)) {
				// The same size: just replace.
				a.setSize(here, len(value))
				clear(a.b[offs+size-4 : offs+size])
				copy(a.b[offs:], value)
				return a.rehash(here)
			}
			// Remove the old value, moving those below it up.
			copy(a.b[minOffs+size:], a.b[minOffs:offs])
			clear(a.b[minOffs : minOffs+size])
			a.setOffs(here, 0)
			minOffs += size
			for e := a.first; !a.isLast(e); e += layout.XattrEntryLen(a.nameLen(e)) {
				if o := a.valueOffs(e); o < offs && a.valueSize(e) != 0 {
					a.setOffs(e, o+size)
				}
			}
		}
		if value == nil {
			// Remove the old name.
			size := layout.XattrEntryLen(len(name))
			copy(a.b[here:], a.b[here+size:last+4])
			last -= size
			clear(a.b[last+4 : last+4+size])
		}
	}
	if value != nil {
		a.setSize(here, len(value))
		if len(value) > 0 {
			size := xattrSize(len(value))
			val := minOffs - size
			a.setOffs(here, val)
			clear(a.b[val+size-4 : val+size])
			copy(a.b[val:], value)
		} else {
			a.setOffs(here, 0)
		}
	}
	if a.isLast(a.first) {
		return nil
	}
	return a.rehash(here)
}

// rehash mirrors ext2_xattr_rehash(): the entry at e gets its hash, and
// the block header the hash of all entry hashes (0 when one is 0). The
// inode body has no header: there the entry's hash is 0, as ext4 leaves
// it.
func (a *xattrArea) rehash(e int) error {
	if !a.sorted {
		if e+4 <= len(a.b) && !a.isLast(e) {
			a.setHash(e, 0)
		}
		return nil
	}
	if !a.isLast(e) {
		a.setHash(e, xattrHashEntry(a.name(e), a.valueWords(e)))
	}
	var hash uint32
	for e := a.first; !a.isLast(e); e += layout.XattrEntryLen(a.nameLen(e)) {
		h := binary.LittleEndian.Uint32(a.b[e+12:])
		if h == 0 {
			hash = 0
			break
		}
		hash = hash<<16 ^ hash>>16 ^ h
	}
	binary.LittleEndian.PutUint32(a.b[12:], hash) // h_hash
	return nil
}

// valueWords returns the value of entry e with its padding, or nil.
func (a *xattrArea) valueWords(e int) []byte {
	n := a.valueSize(e)
	if n == 0 {
		return nil
	}
	o := a.valueOffs(e)
	return a.b[o : o+xattrSize(n)]
}

// xattrHashEntry mirrors ext2_xattr_hash_entry(): the name bytes (as
// unsigned chars: Linux builds with -funsigned-char since 6.2, and
// e2fsck accepts the signed variant too) shifted in 5 bits at a time,
// then the padded value one little-endian word at a time, 16 bits at a
// time.
func xattrHashEntry(name []byte, padded []byte) uint32 {
	var hash uint32
	for _, c := range name {
		hash = hash<<5 ^ hash>>27 ^ uint32(c)
	}
	for i := 0; i+4 <= len(padded); i += 4 {
		hash = hash<<16 ^ hash>>16 ^ binary.LittleEndian.Uint32(padded[i:])
	}
	return hash
}
