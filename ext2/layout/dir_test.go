package layout

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// rawEnt writes one record header and name without any checks, so tests
// can build corrupt blocks.
func rawEnt(b []byte, off int, ino uint32, recLen uint16, nameLen uint16, ft uint8, name string, filetype bool) {
	binary.LittleEndian.PutUint32(b[off:], ino)
	binary.LittleEndian.PutUint16(b[off+4:], recLen)
	if filetype {
		b[off+6] = uint8(nameLen)
		b[off+7] = ft
	} else {
		binary.LittleEndian.PutUint16(b[off+6:], nameLen)
	}
	copy(b[off+8:], name)
}

// emptyDirBlock returns a block with "." and ".." as mke2fs lays out a
// directory's first block.
func emptyDirBlock(size int, filetype bool) []byte {
	b := make([]byte, size)
	rawEnt(b, 0, 12, 12, 1, FtDir, ".", filetype)
	rawEnt(b, 12, 2, uint16(size-12), 2, FtDir, "..", filetype)
	return b
}

func TestParseDirBlockValid(t *testing.T) {
	type ent struct {
		off    int
		ino    uint32
		recLen int
		ft     uint8
		name   string
	}
	tests := []struct {
		name     string
		block    func() []byte
		filetype bool
		want     []ent
	}{
		{"dot and dotdot", func() []byte { return emptyDirBlock(1024, true) }, true,
			[]ent{{0, 12, 12, FtDir, "."}, {12, 2, 1012, FtDir, ".."}}},
		{"old format ignores file type", func() []byte { return emptyDirBlock(1024, false) }, false,
			[]ent{{0, 12, 12, FtUnknown, "."}, {12, 2, 1012, FtUnknown, ".."}}},
		{"unused record spanning block", func() []byte {
			b := make([]byte, 4096)
			rawEnt(b, 0, 0, 4096, 0, 0, "", true)
			return b
		}, true, []ent{{0, 0, 4096, 0, ""}}},
		{"64 KiB record", func() []byte {
			b := make([]byte, 1<<16)
			rawEnt(b, 0, 11, MaxRecLen, 10, FtDir, "lost+found", true)
			return b
		}, true, []ent{{0, 11, 65536, FtDir, "lost+found"}}},
		{"htree root", func() []byte {
			b := emptyDirBlock(1024, true)
			// dx_root_info and a dx_entry count/limit inside "..".
			copy(b[24:], []byte{0, 0, 0, 0, HashHalfMD4, 8, 0, 0, 0x7c, 0, 1, 0})
			return b
		}, true, []ent{{0, 12, 12, FtDir, "."}, {12, 2, 1012, FtDir, ".."}}},
		{"htree node", func() []byte {
			b := make([]byte, 2048)
			rawEnt(b, 0, 0, 2048, 0, 0, "", true)
			copy(b[8:], []byte{0xfe, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef})
			return b
		}, true, []ent{{0, 0, 2048, 0, ""}}},
		{"names and a deleted entry", func() []byte {
			b := make([]byte, 1024)
			rawEnt(b, 0, 12, 12, 1, FtDir, ".", true)
			rawEnt(b, 12, 2, 12, 2, FtDir, "..", true)
			rawEnt(b, 24, 0, 20, 5, FtRegFile, "gone!", true)
			rawEnt(b, 44, 13, 1024-44, 255, FtSymlink, string(make([]byte, 255)), true)
			return b
		}, true, []ent{{0, 12, 12, FtDir, "."}, {12, 2, 12, FtDir, ".."}, {24, 0, 20, FtRegFile, "gone!"}, {44, 13, 980, FtSymlink, string(make([]byte, 255))}}},
		{"empty slice", func() []byte { return nil }, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.block()
			ents, err := ParseDirBlock(b, tc.filetype, 100)
			if err != nil {
				t.Fatalf("ParseDirBlock: %v", err)
			}
			var got []ent
			for _, e := range ents {
				got = append(got, ent{e.Offset, e.Inode, e.RecLen, e.FileType, e.Name})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			// Re-encoding every record over the block changes nothing.
			out := slices.Clone(b)
			for _, e := range ents {
				if err := e.Encode(out[e.Offset:], tc.filetype); err != nil {
					t.Fatalf("Encode: %v", err)
				}
			}
			if !slices.Equal(out, b) {
				t.Errorf("re-encoding changed bytes %v", diffIdx(out, b))
			}
		})
	}
}

func TestParseDirBlockCorrupt(t *testing.T) {
	tests := []struct {
		name     string
		block    func() []byte
		filetype bool
		maxIno   uint32
		field    string
		offset   int64
		nGood    int // entries returned before the bad one
	}{
		{"rec_len zero", func() []byte {
			b := make([]byte, 1024)
			rawEnt(b, 0, 2, 0, 1, FtDir, ".", true)
			return b
		}, true, 0, "rec_len", 4, 0},
		{"rec_len below 12", func() []byte {
			b := emptyDirBlock(1024, true)
			rawEnt(b, 12, 2, 8, 0, 0, "", true)
			return b
		}, true, 0, "rec_len", 16, 1},
		{"rec_len not multiple of 4", func() []byte {
			b := emptyDirBlock(1024, true)
			rawEnt(b, 12, 2, 14, 2, FtDir, "..", true)
			return b
		}, true, 0, "rec_len", 16, 1},
		{"rec_len past block end", func() []byte {
			b := emptyDirBlock(1024, true)
			rawEnt(b, 12, 2, 1024, 2, FtDir, "..", true)
			return b
		}, true, 0, "rec_len", 16, 1},
		{"65535 rec_len in a 4k block", func() []byte {
			b := make([]byte, 4096)
			rawEnt(b, 0, 2, MaxRecLen, 1, FtDir, ".", true)
			return b
		}, true, 0, "rec_len", 4, 0},
		{"name_len too long for rec_len", func() []byte {
			b := emptyDirBlock(1024, true)
			rawEnt(b, 0, 12, 12, 5, FtDir, "abcde", true)
			return b
		}, true, 0, "rec_len", 4, 0},
		{"16-bit name_len above 255", func() []byte {
			b := emptyDirBlock(1024, false)
			rawEnt(b, 12, 2, 1012, 300, 0, "", false)
			return b
		}, false, 0, "name_len", 18, 1},
		{"filetype byte read as name_len high byte", func() []byte {
			// A filetype block parsed as the old format: name_len 0x0201.
			return emptyDirBlock(1024, true)
		}, false, 0, "name_len", 6, 0},
		{"inode out of bounds", func() []byte {
			b := emptyDirBlock(1024, true)
			rawEnt(b, 12, 5000, 1012, 2, FtDir, "..", true)
			return b
		}, true, 4096, "inode", 12, 1},
		{"records stop short of the block end", func() []byte {
			b := emptyDirBlock(1024, true)
			rawEnt(b, 12, 2, 1004, 2, FtDir, "..", true)
			return b
		}, true, 0, "rec_len", 1016, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ents, err := ParseDirBlock(tc.block(), tc.filetype, tc.maxIno)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want an error wrapping ErrCorrupt", err)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("got %T, want *CorruptError", err)
			}
			if ce.Field != tc.field || ce.Offset != tc.offset {
				t.Errorf("got field %q at %d, want %q at %d (%v)", ce.Field, ce.Offset, tc.field, tc.offset, err)
			}
			if len(ents) != tc.nGood {
				t.Errorf("got %d entries before the error, want %d", len(ents), tc.nGood)
			}
		})
	}
	// With no inode limit, large inode numbers pass.
	b := emptyDirBlock(1024, true)
	rawEnt(b, 12, 5000, 1012, 2, FtDir, "..", true)
	if _, err := ParseDirBlock(b, true, 0); err != nil {
		t.Errorf("maxIno 0: got %v, want nil", err)
	}
}

func TestDirEntryEncode(t *testing.T) {
	long := string(make([]byte, 256))
	tests := []struct {
		name     string
		e        DirEntry
		buf      int
		filetype bool
		want     []byte // first bytes of the buffer, nil if an error is expected
	}{
		{"filetype", DirEntry{Inode: 0x01020304, RecLen: 16, FileType: FtRegFile, Name: "hello"}, 16, true,
			[]byte{4, 3, 2, 1, 16, 0, 5, FtRegFile, 'h', 'e', 'l', 'l', 'o', 0, 0, 0}},
		{"old format", DirEntry{Inode: 7, RecLen: 12, FileType: FtDir, Name: "ab"}, 12, false,
			[]byte{7, 0, 0, 0, 12, 0, 2, 0, 'a', 'b', 0, 0}},
		{"64 KiB", DirEntry{Inode: 0, RecLen: 1 << 16}, 1 << 16, true, []byte{0, 0, 0, 0, 0xff, 0xff, 0, 0}},
		{"name too long", DirEntry{Inode: 1, RecLen: 512, Name: long}, 512, true, nil},
		{"rec_len too small", DirEntry{Inode: 1, RecLen: 12, Name: "hello"}, 12, true, nil},
		{"rec_len unaligned", DirEntry{Inode: 1, RecLen: 18, Name: "hello"}, 20, true, nil},
		{"rec_len above 64 KiB", DirEntry{Inode: 1, RecLen: 1<<16 + 4, Name: "x"}, 1<<16 + 4, true, nil},
		{"buffer short", DirEntry{Inode: 1, RecLen: 16, Name: "hello"}, 15, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, tc.buf)
			err := tc.e.Encode(b, tc.filetype)
			if tc.want == nil {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("got %v, want an error wrapping ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := b[:len(tc.want)]; !slices.Equal(got, tc.want) {
				t.Errorf("got % x, want % x", got, tc.want)
			}
		})
	}
}

func TestRecLen(t *testing.T) {
	tests := []struct {
		disk uint16
		n    int
	}{{12, 12}, {1024, 1024}, {65532, 65532}, {MaxRecLen, 65536}}
	for _, tc := range tests {
		if got := RecLenFromDisk(tc.disk); got != tc.n {
			t.Errorf("RecLenFromDisk(%d): got %d, want %d", tc.disk, got, tc.n)
		}
		if got := RecLenToDisk(tc.n); got != tc.disk {
			t.Errorf("RecLenToDisk(%d): got %d, want %d", tc.n, got, tc.disk)
		}
	}
}

func TestFileTypeFromMode(t *testing.T) {
	tests := []struct {
		mode uint16
		want uint8
	}{
		{ModeReg | 0o644, FtRegFile}, {ModeDir | 0o755, FtDir}, {ModeChr, FtChrdev}, {ModeBlk, FtBlkdev},
		{ModeFifo, FtFifo}, {ModeSock, FtSock}, {ModeLnk | 0o777, FtSymlink}, {0o644, FtUnknown}, {0xE000, FtUnknown},
	}
	for _, tc := range tests {
		if got := FileTypeFromMode(tc.mode); got != tc.want {
			t.Errorf("FileTypeFromMode(%#o): got %d, want %d", tc.mode, got, tc.want)
		}
	}
}
