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
	// One 8-byte load for the whole header: the walks of large
	// directories spend their time here.
	h := binary.LittleEndian.Uint64(b[off : off+DirEntryHeaderSize])
	r := DirRecord{
		Offset: off,
		Inode:  uint32(h),
		RecLen: RecLenFromDisk(uint16(h >> 32)),
	}
	if filetype {
		r.NameLen = int(uint8(h >> 48))
		r.FileType = uint8(h >> 56)
	} else {
		r.NameLen = int(uint16(h >> 48))
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
	for off := 0; off < len(b); {
		r, err := DecodeDirRecord(b, off, filetype, maxIno)
		if err != nil {
			return err
		}
		off += r.RecLen
	}
	return nil
}

// DecodeDirRecord decodes and checks the record at b[off:] as
// ParseDirBlock checks each record, without allocating: walking a block
// with it record by record, off += RecLen while off < len(b), checks the
// whole block (a block whose records end short of its end fails at the
// last offset). On failure it returns the *CorruptError ParseDirBlock
// returns for that record.
func DecodeDirRecord(b []byte, off int, filetype bool, maxIno uint32) (DirRecord, error) {
	if off+MinDirEntryLen > len(b) {
		return DirRecord{}, corrupt(dirStruct(filetype), "rec_len", off,
			"records end %d bytes before the end of the %d-byte block, too few for an entry", len(b)-off, len(b))
	}
	r := DirRecordAt(b, off, filetype)
	if r.RecLen < MinDirEntryLen || r.RecLen%4 != 0 || r.NameLen > NameLen ||
		r.RecLen < DirEntryLen(r.NameLen) || off+r.RecLen > len(b) ||
		(maxIno != 0 && r.Inode > maxIno) {
		_, err := decodeDirEntry(b, off, filetype, maxIno)
		return DirRecord{}, err
	}
	return r, nil
}
