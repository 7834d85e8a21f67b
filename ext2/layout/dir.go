package layout

import (
	"encoding/binary"
	"fmt"
)

// Directory entry limits.
const (
	// NameLen is EXT2_NAME_LEN, the longest file name.
	NameLen = 255
	// DirEntryHeaderSize is the fixed part of a directory entry: inode,
	// rec_len, name_len and file_type.
	DirEntryHeaderSize = 8
	// MinDirEntryLen is EXT2_DIR_REC_LEN(1), the smallest rec_len.
	MinDirEntryLen = 12
	// MaxRecLen is EXT2_MAX_REC_LEN, the on-disk rec_len that stands
	// for a record of 65536 bytes.
	MaxRecLen = 1<<16 - 1
)

// File types in directory entries (EXT2_FT_*), used with the filetype
// feature.
const (
	FtUnknown = 0
	FtRegFile = 1
	FtDir     = 2
	FtChrdev  = 3
	FtBlkdev  = 4
	FtFifo    = 5
	FtSock    = 6
	FtSymlink = 7
	FtMax     = 8
)

// FileTypeFromMode returns the directory entry file type of an inode
// mode, FtUnknown for a mode of no known type, as Linux
// fs/ext2/dir.c:ext2_set_de_type() computes it.
func FileTypeFromMode(mode uint16) uint8 {
	switch mode & ModeFmt {
	case ModeReg:
		return FtRegFile
	case ModeDir:
		return FtDir
	case ModeChr:
		return FtChrdev
	case ModeBlk:
		return FtBlkdev
	case ModeFifo:
		return FtFifo
	case ModeSock:
		return FtSock
	case ModeLnk:
		return FtSymlink
	}
	return FtUnknown
}

// DirEntryLen returns the bytes a directory entry with a name of nameLen
// bytes needs, 8 plus the name rounded up to a multiple of 4
// (EXT2_DIR_REC_LEN).
func DirEntryLen(nameLen int) int { return (nameLen + DirEntryHeaderSize + 3) &^ 3 }

// RecLenFromDisk decodes an on-disk rec_len, mirroring Linux
// fs/ext2/dir.c:ext2_rec_len_from_disk(): MaxRecLen stands for 65536, the
// only record length a 16-bit field cannot hold, needed by a 64 KiB block
// with one entry. (e2fsprogs also reads 0 as 65536 there; Linux ext2 does
// not, and neither do we: 0 is always corrupt.)
func RecLenFromDisk(v uint16) int {
	if v == MaxRecLen {
		return 1 << 16
	}
	return int(v)
}

// RecLenToDisk encodes a record length, mirroring
// ext2_rec_len_to_disk(): 65536 becomes MaxRecLen. n must be at most
// 65536.
func RecLenToDisk(n int) uint16 {
	if n == 1<<16 {
		return MaxRecLen
	}
	return uint16(n)
}

// DirEntry mirrors struct ext2_dir_entry_2 (with the filetype feature)
// and struct ext2_dir_entry (without it, where name_len is 16 bits and
// there is no file type) of e2fsprogs lib/ext2fs/ext2_fs.h:
//
//	0       4         6          7            8
//	+-------+---------+----------+------------+----------------+---------+
//	| inode | rec_len | name_len | file_type  | name (name_len) | padding |
//	+-------+---------+----------+------------+----------------+---------+
//	                  |<- name_len (16 bits) ->|  without filetype
//
// rec_len covers the entry and the free space after it up to the next
// entry; an entry with inode 0 is unused space.
type DirEntry struct {
	// Offset is the byte offset of the entry within its block. It is set
	// by ParseDirBlock and ignored by Encode.
	Offset int
	// Inode is the inode number, 0 for an unused record.
	Inode uint32
	// RecLen is the decoded record length (see RecLenFromDisk).
	RecLen int
	// FileType is one of the Ft constants; always FtUnknown when decoded
	// without the filetype feature.
	FileType uint8
	// Name is the entry's name, len(Name) being name_len.
	Name string
}

// ParseDirBlock decodes every record of one directory block, including
// unused ones (Inode 0), and checks each as Linux
// fs/ext2/dir.c:ext2_check_page() does: rec_len at least 12, a multiple
// of 4, large enough for name_len, not crossing the end of the block,
// and the records together ending exactly at the block end. If maxIno is
// not 0, inode numbers above it (s_inodes_count) are corrupt too.
//
// With filetype false, name_len is the 16-bit field of the old struct
// ext2_dir_entry and a name_len above NameLen is corrupt; Linux ext2
// instead reads the low byte and ignores the high one, which on a valid
// old filesystem is always zero.
//
// Hashed (htree) directory blocks parse like any other: their index data
// sits inside records of inode 0 (see the package comment).
//
// A failure is a *CorruptError whose Offset is the byte offset within b
// of the field at fault; the entries before the bad one are returned with
// it.
func ParseDirBlock(b []byte, filetype bool, maxIno uint32) ([]DirEntry, error) {
	var ents []DirEntry
	off := 0
	for off+MinDirEntryLen <= len(b) {
		e, err := decodeDirEntry(b, off, filetype, maxIno)
		if err != nil {
			return ents, err
		}
		ents = append(ents, e)
		off += e.RecLen
	}
	if off != len(b) {
		return ents, corrupt(dirStruct(filetype), "rec_len", off,
			"records end %d bytes before the end of the %d-byte block, too few for an entry", len(b)-off, len(b))
	}
	return ents, nil
}

func dirStruct(filetype bool) string {
	if filetype {
		return "ext2_dir_entry_2"
	}
	return "ext2_dir_entry"
}

// decodeDirEntry decodes and checks the record at b[off:].
// Preconditions: off+MinDirEntryLen <= len(b).
func decodeDirEntry(b []byte, off int, filetype bool, maxIno uint32) (DirEntry, error) {
	st := dirStruct(filetype)
	ino := binary.LittleEndian.Uint32(b[off:])
	recLen := RecLenFromDisk(binary.LittleEndian.Uint16(b[off+4:]))
	var nameLen int
	var ft uint8
	if filetype {
		nameLen = int(b[off+6])
		ft = b[off+7]
	} else {
		nameLen = int(binary.LittleEndian.Uint16(b[off+6:]))
	}
	switch {
	case recLen < MinDirEntryLen:
		return DirEntry{}, corrupt(st, "rec_len", off+4, "rec_len %d is smaller than minimal %d", recLen, MinDirEntryLen)
	case recLen%4 != 0:
		return DirEntry{}, corrupt(st, "rec_len", off+4, "rec_len %d is not a multiple of 4 (unaligned directory entry)", recLen)
	case nameLen > NameLen:
		return DirEntry{}, corrupt(st, "name_len", off+6, "name_len %d is longer than %d", nameLen, NameLen)
	case recLen < DirEntryLen(nameLen):
		return DirEntry{}, corrupt(st, "rec_len", off+4, "rec_len %d is too small for name_len %d", recLen, nameLen)
	case off+recLen > len(b):
		return DirEntry{}, corrupt(st, "rec_len", off+4, "rec_len %d crosses the end of the %d-byte block", recLen, len(b))
	case maxIno != 0 && ino > maxIno:
		return DirEntry{}, corrupt(st, "inode", off, "inode %d out of bounds (s_inodes_count %d)", ino, maxIno)
	}
	return DirEntry{
		Offset:   off,
		Inode:    ino,
		RecLen:   recLen,
		FileType: ft,
		Name:     string(b[off+DirEntryHeaderSize : off+DirEntryHeaderSize+nameLen]),
	}, nil
}

// Encode writes the entry's header and name to the start of b, in the
// ext2_dir_entry_2 form when filetype is true and in the ext2_dir_entry
// form (16-bit name_len, no file type) otherwise. It leaves the bytes of
// b past the name alone. It returns an error wrapping ErrInvalid if the
// name is too long, RecLen is not a multiple of 4 between
// DirEntryLen(len(Name)) and 65536, or b is shorter than RecLen.
func (e *DirEntry) Encode(b []byte, filetype bool) error {
	switch {
	case len(e.Name) > NameLen:
		return fmt.Errorf("%w: directory entry name of %d bytes, longer than %d", ErrInvalid, len(e.Name), NameLen)
	case e.RecLen < DirEntryLen(len(e.Name)) || e.RecLen%4 != 0 || e.RecLen > 1<<16:
		return fmt.Errorf("%w: rec_len %d for a %d-byte name", ErrInvalid, e.RecLen, len(e.Name))
	case len(b) < e.RecLen:
		return fmt.Errorf("%w: %d-byte buffer for rec_len %d", ErrInvalid, len(b), e.RecLen)
	}
	binary.LittleEndian.PutUint32(b, e.Inode)
	binary.LittleEndian.PutUint16(b[4:], RecLenToDisk(e.RecLen))
	if filetype {
		b[6] = uint8(len(e.Name))
		b[7] = e.FileType
	} else {
		binary.LittleEndian.PutUint16(b[6:], uint16(len(e.Name)))
	}
	copy(b[DirEntryHeaderSize:], e.Name)
	return nil
}
