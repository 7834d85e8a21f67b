package layout

import "encoding/binary"

// DirRecord is the header of one directory record (struct
// ext2_dir_entry_2 or ext2_dir_entry, see DirEntry), decoded without
// copying its name, for code that walks many records of a block it
// already checked with CheckDirBlock.
type DirRecord struct {
	// Offset is the byte offset of the record within its block.
	Offset int
	// Inode is the inode number, 0 for an unused record.
	Inode uint32
	// RecLen is the decoded record length (see RecLenFromDisk).
	RecLen int
	// NameLen is name_len.
	NameLen int
	// FileType is the file type, FtUnknown without the filetype feature.
	FileType uint8
}

// DirRecordAt decodes the record header at b[off:]. It does not check
// the record: use it on blocks CheckDirBlock accepted.
// Preconditions: off+DirEntryHeaderSize <= len(b).
func DirRecordAt(b []byte, off int, filetype bool) DirRecord {
	r := DirRecord{
		Offset: off,
		Inode:  binary.LittleEndian.Uint32(b[off:]),
		RecLen: RecLenFromDisk(binary.LittleEndian.Uint16(b[off+4:])),
	}
	if filetype {
		r.NameLen = int(b[off+6])
		r.FileType = b[off+7]
	} else {
		r.NameLen = int(binary.LittleEndian.Uint16(b[off+6:]))
	}
	return r
}

// Name returns the record's name as a slice of b (no copy).
func (r DirRecord) Name(b []byte) []byte {
	start := r.Offset + DirEntryHeaderSize
	return b[start : start+r.NameLen]
}

// Used returns the bytes the record's entry needs, DirEntryLen(NameLen);
// the rest of RecLen is slack a new entry may take.
func (r DirRecord) Used() int { return DirEntryLen(r.NameLen) }

// CheckDirBlock checks every record of a directory block as
// ParseDirBlock does (Linux fs/ext2/dir.c:ext2_check_page()), without
// allocating on success. On failure it returns the *CorruptError
// ParseDirBlock returns for b.
func CheckDirBlock(b []byte, filetype bool, maxIno uint32) error {
	off := 0
	for off+MinDirEntryLen <= len(b) {
		r := DirRecordAt(b, off, filetype)
		if r.RecLen < MinDirEntryLen || r.RecLen%4 != 0 || r.NameLen > NameLen ||
			r.RecLen < DirEntryLen(r.NameLen) || off+r.RecLen > len(b) ||
			(maxIno != 0 && r.Inode > maxIno) {
			_, err := decodeDirEntry(b, off, filetype, maxIno)
			return err
		}
		off += r.RecLen
	}
	if off != len(b) {
		_, err := ParseDirBlock(b, filetype, maxIno)
		return err
	}
	return nil
}
