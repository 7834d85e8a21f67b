package layout

import (
	"encoding/binary"
	"strings"
)

// Extended attribute block constants (e2fsprogs lib/ext2fs/ext2_ext_attr.h,
// Linux fs/ext2/xattr.h).
const (
	// XattrMagic is h_magic of an xattr block (EXT2_EXT_ATTR_MAGIC), and
	// also the magic that opens the in-inode xattr area.
	XattrMagic = 0xEA020000
	// XattrMagicV1 is the magic of the obsolete first format, which
	// neither Linux nor this package reads.
	XattrMagicV1 = 0xEA010000
	// XattrHeaderSize is the size of struct ext2_xattr_header.
	XattrHeaderSize = 32
	// XattrEntrySize is the fixed part of struct ext2_xattr_entry.
	XattrEntrySize = 16
	// XattrRefcountMax is EXT2_XATTR_REFCOUNT_MAX.
	XattrRefcountMax = 1024
)

// Attribute name indexes, e_name_index (EXT2_XATTR_INDEX_* and the
// e2fsprogs prefix table).
const (
	XattrIndexUser            = 1
	XattrIndexPosixACLAccess  = 2
	XattrIndexPosixACLDefault = 3
	XattrIndexTrusted         = 4
	XattrIndexLustre          = 5
	XattrIndexSecurity        = 6
	XattrIndexSystem          = 7
	XattrIndexRichACL         = 8
	xattrIndexMax             = 9
)

// xattrPrefixes maps a name index to the prefix that makes the full name.
// The two POSIX ACL indexes store an empty name: the prefix is the name.
var xattrPrefixes = [xattrIndexMax]string{
	XattrIndexUser:            "user.",
	XattrIndexPosixACLAccess:  "system.posix_acl_access",
	XattrIndexPosixACLDefault: "system.posix_acl_default",
	XattrIndexTrusted:         "trusted.",
	XattrIndexSecurity:        "security.",
	XattrIndexSystem:          "system.",
	XattrIndexRichACL:         "system.richacl",
}

// XattrPrefix returns the name prefix of a name index ("user.",
// "trusted.", "security.", "system.posix_acl_access", ...), or "" for an
// index without one.
func XattrPrefix(index uint8) string {
	if int(index) < len(xattrPrefixes) {
		return xattrPrefixes[index]
	}
	return ""
}

// SplitXattrName finds the name index and stored suffix of a full
// attribute name, choosing the longest matching prefix as
// e2fsprogs does. ok is false if no prefix matches.
func SplitXattrName(full string) (index uint8, name string, ok bool) {
	best := -1
	for i, p := range xattrPrefixes {
		if p != "" && strings.HasPrefix(full, p) && (best < 0 || len(p) > len(xattrPrefixes[best])) {
			best = i
		}
	}
	if best < 0 {
		return 0, "", false
	}
	return uint8(best), full[len(xattrPrefixes[best]):], true
}

// XattrHeader mirrors struct ext2_ext_attr_header of e2fsprogs
// lib/ext2fs/ext2_ext_attr.h (struct ext2_xattr_header in Linux
// fs/ext2/xattr.h, where h_checksum is h_reserved[0]).
type XattrHeader struct {
	Magic    uint32    // 0 h_magic
	Refcount uint32    // 4 h_refcount
	Blocks   uint32    // 8 h_blocks, always 1
	Hash     uint32    // 12 h_hash
	Checksum uint32    // 16 h_checksum (ext4 metadata_csum)
	Reserved [3]uint32 // 20 h_reserved
}

// DecodeXattrHeader decodes the header at the start of an xattr block. It
// does not check the magic; ParseXattrBlock does.
func DecodeXattrHeader(b []byte) (*XattrHeader, error) {
	if len(b) < XattrHeaderSize {
		return nil, shortBuffer("ext2_xattr_header", len(b), XattrHeaderSize)
	}
	d := decoder{b: b}
	h := &XattrHeader{Magic: d.u32(), Refcount: d.u32(), Blocks: d.u32(), Hash: d.u32(), Checksum: d.u32()}
	for i := range h.Reserved {
		h.Reserved[i] = d.u32()
	}
	return h, nil
}

// Xattr is one extended attribute decoded from an ext2_xattr_entry and
// its value.
type Xattr struct {
	// Index is e_name_index; the full name is XattrPrefix(Index)+Name.
	Index uint8
	// Name is the stored name, without its prefix.
	Name string
	// Value is a copy of the value bytes.
	Value []byte
	// Hash is e_hash, kept for callers that check or rewrite blocks.
	Hash uint32
}

// FullName returns the attribute's name with its index prefix, e.g.
// "user.comment".
func (x *Xattr) FullName() string { return XattrPrefix(x.Index) + x.Name }

// XattrEntryLen returns the bytes an entry with a name of nameLen bytes
// takes, 16 plus the name rounded up to 4 (EXT2_XATTR_LEN).
func XattrEntryLen(nameLen int) int { return (nameLen + XattrEntrySize + 3) &^ 3 }

// ParseXattrBlock decodes the attributes of one extended attribute block,
// checking what Linux fs/ext2/xattr.c checks before it trusts a block
// (ext2_xattr_header_valid(), ext2_xattr_entry_valid()): the magic, a
// single block, entries that end before the block does, no value stored
// in another inode, and values inside the block. Failures are
// *CorruptError values whose Offset is the byte offset within b.
func ParseXattrBlock(b []byte) ([]Xattr, error) {
	h, err := DecodeXattrHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Magic != XattrMagic {
		return nil, corrupt("ext2_xattr_header", "h_magic", 0, "magic %#08x, want %#08x", h.Magic, uint32(XattrMagic))
	}
	if h.Blocks != 1 {
		return nil, corrupt("ext2_xattr_header", "h_blocks", 8, "%d blocks, want 1", h.Blocks)
	}
	return parseXattrEntries(b, XattrHeaderSize, 0)
}

// ParseInodeXattrs decodes the in-inode extended attributes that ext4
// keeps in area, the bytes past 128+i_extra_isize of a large inode (see
// Inode.XattrArea). The area starts with XattrMagic; value offsets count
// from the first entry. An area without the magic holds no attributes.
// Linux ext2 ignores this area; the ext2 package may use it read-only.
// Offsets in errors are relative to area.
func ParseInodeXattrs(area []byte) ([]Xattr, error) {
	if len(area) < 4 || binary.LittleEndian.Uint32(area) != XattrMagic {
		return nil, nil
	}
	return parseXattrEntries(area, 4, 4)
}

// parseXattrEntries walks the entry list starting at b[start:] up to its
// four-zero-byte terminator. Values lie at valueBase+e_value_offs.
func parseXattrEntries(b []byte, start, valueBase int) ([]Xattr, error) {
	const st = "ext2_xattr_entry"
	var xs []Xattr
	off := start
	for {
		if off+4 > len(b) {
			return xs, corrupt(st, "", off, "entry list runs past the end of the %d-byte block", len(b))
		}
		if binary.LittleEndian.Uint32(b[off:]) == 0 {
			return xs, nil
		}
		if off+XattrEntrySize > len(b) {
			return xs, corrupt(st, "", off, "entry header runs past the end of the %d-byte block", len(b))
		}
		nameLen := int(b[off])
		index := b[off+1]
		valueOffs := int(binary.LittleEndian.Uint16(b[off+2:]))
		valueInum := binary.LittleEndian.Uint32(b[off+4:])
		valueSize := uint64(binary.LittleEndian.Uint32(b[off+8:]))
		hash := binary.LittleEndian.Uint32(b[off+12:])
		next := off + XattrEntryLen(nameLen)
		if next >= len(b) {
			return xs, corrupt(st, "e_name_len", off, "entry of name_len %d runs past the end of the %d-byte block", nameLen, len(b))
		}
		if valueInum != 0 {
			return xs, corrupt(st, "e_value_inum", off+4, "value stored in inode %d, which ext2 does not allow", valueInum)
		}
		vstart := uint64(valueBase + valueOffs)
		if valueSize > uint64(len(b)) || vstart+valueSize > uint64(len(b)) {
			return xs, corrupt(st, "e_value_size", off+8, "value of %d bytes at offset %d runs past the end of the %d-byte block", valueSize, vstart, len(b))
		}
		name := string(b[off+XattrEntrySize : off+XattrEntrySize+nameLen])
		value := make([]byte, valueSize)
		copy(value, b[vstart:])
		xs = append(xs, Xattr{Index: index, Name: name, Value: value, Hash: hash})
		off = next
	}
}
