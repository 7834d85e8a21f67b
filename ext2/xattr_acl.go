package ext2

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
)

// aclEntry is one entry of a POSIX ACL in memory (struct
// posix_acl_entry).
type aclEntry struct {
	tag  uint16
	perm uint16
	id   uint32 // ACL_USER and ACL_GROUP only
}

// aclFromXattr decodes an ACL in the VFS xattr format and checks it, as
// fs/posix_acl.c:posix_acl_from_xattr() and posix_acl_valid() do. An
// empty value, or one of no entries, is no ACL (nil, nil), which removes
// it. A malformed ACL is ErrInvalid (EINVAL), another version
// ErrXattrNotSupported (EOPNOTSUPP).
func aclFromXattr(v []byte) ([]aclEntry, error) {
	if len(v) == 0 {
		return nil, nil
	}
	if len(v) < 4 {
		return nil, fmt.Errorf("%w: ACL of %d bytes, shorter than its header", ErrInvalid, len(v))
	}
	if ver := binary.LittleEndian.Uint32(v); ver != posixACLXattrVer {
		return nil, fmt.Errorf("%w: ACL version %d, want %d", ErrXattrNotSupported, ver, posixACLXattrVer)
	}
	if (len(v)-4)%posixACLXattrEntry != 0 {
		return nil, fmt.Errorf("%w: ACL of %d bytes is no whole number of entries", ErrInvalid, len(v))
	}
	count := (len(v) - 4) / posixACLXattrEntry
	if count == 0 {
		return nil, nil
	}
	acl := make([]aclEntry, count)
	for i := range acl {
		b := v[4+i*posixACLXattrEntry:]
		e := aclEntry{tag: binary.LittleEndian.Uint16(b), perm: binary.LittleEndian.Uint16(b[2:])}
		switch e.tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther:
		case aclUser, aclGroup:
			e.id = binary.LittleEndian.Uint32(b[4:])
			if e.id == aclUndefinedID {
				return nil, fmt.Errorf("%w: ACL entry %d has no valid id", ErrInvalid, i)
			}
		default:
			return nil, fmt.Errorf("%w: ACL entry %d has unknown tag %#x", ErrInvalid, i, e.tag)
		}
		acl[i] = e
	}
	if err := aclValid(acl); err != nil {
		return nil, err
	}
	return acl, nil
}

// aclValid mirrors fs/posix_acl.c:posix_acl_valid(): permissions of rwx
// only, and the entries in the order user_obj, user..., group_obj,
// group..., mask, other, with a mask wherever there is a named user or
// group.
func aclValid(acl []aclEntry) error {
	const (
		stUserObj = iota
		stUser
		stGroup
		stOther
		stDone
	)
	state, needsMask := stUserObj, false
	for i, e := range acl {
		if e.perm&^7 != 0 {
			return fmt.Errorf("%w: ACL entry %d has permissions %#o", ErrInvalid, i, e.perm)
		}
		ok := true
		switch e.tag {
		case aclUserObj:
			ok = state == stUserObj
			state = stUser
		case aclUser:
			ok = state == stUser
			needsMask = true
		case aclGroupObj:
			ok = state == stUser
			state = stGroup
		case aclGroup:
			ok = state == stGroup
			needsMask = true
		case aclMask:
			ok = state == stGroup
			state = stOther
		case aclOther:
			ok = state == stOther || state == stGroup && !needsMask
			state = stDone
		}
		if !ok {
			return fmt.Errorf("%w: ACL entry %d (tag %#x) out of order", ErrInvalid, i, e.tag)
		}
	}
	if state != stDone {
		return fmt.Errorf("%w: ACL lacks an entry it needs (user_obj, group_obj, other, or mask)", ErrInvalid)
	}
	return nil
}

// aclToDisk encodes an ACL in ext2's on-disk format, mirroring
// fs/ext2/acl.c:ext2_acl_to_disk(): short entries but for named users and
// groups.
func aclToDisk(acl []aclEntry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, ext2ACLVersion)
	for _, e := range acl {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		if e.tag == aclUser || e.tag == aclGroup {
			b = binary.LittleEndian.AppendUint32(b, e.id)
		}
	}
	return b
}

// aclEquivMode mirrors fs/posix_acl.c:posix_acl_equiv_mode(): the mode
// with its permission bits taken from the ACL (the mask, if any, for the
// group class), and whether the ACL says no more than those bits.
func aclEquivMode(acl []aclEntry, mode uint16) (uint16, bool) {
	var perm uint16
	equiv := true
	var mask *aclEntry
	for i, e := range acl {
		switch e.tag {
		case aclUserObj:
			perm |= (e.perm & 7) << 6
		case aclGroupObj:
			perm |= (e.perm & 7) << 3
		case aclOther:
			perm |= e.perm & 7
		case aclMask:
			mask = &acl[i]
			equiv = false
		case aclUser, aclGroup:
			equiv = false
		}
	}
	if mask != nil {
		perm = perm&^0o070 | (mask.perm&7)<<3
	}
	return mode&^0o777 | perm, equiv
}

// setACLLocked stores or removes (acl nil) a POSIX ACL, mirroring
// fs/ext2/acl.c:ext2_set_acl(): an access ACL sets the permission bits of
// the mode (posix_acl_update_mode), and one the mode expresses fully is
// removed rather than stored. The mode changes only if the attribute
// change succeeds.
// Preconditions: ino.mu is held exclusively.
func (fs *FS) setACLLocked(ino *Inode, index uint8, acl []aclEntry) error {
	mode, update := ino.disk.Mode, false
	if index == layout.XattrIndexPosixACLAccess && acl != nil {
		var equiv bool
		mode, equiv = aclEquivMode(acl, mode)
		update = true
		if equiv {
			acl = nil
		}
	}
	var value []byte
	if acl != nil {
		value = aclToDisk(acl)
	}
	if err := fs.xattrSetLocked(ino, index, "", value, 0); err != nil {
		return err
	}
	if update {
		now := time.Now()
		ino.UpdateLocked(func(d *layout.Inode) {
			d.Mode = mode
			setTimes(d, now, "c")
		})
	}
	return nil
}
