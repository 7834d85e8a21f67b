package layout

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestInodeSize(t *testing.T) {
	tests := []struct {
		name     string
		mode     uint16
		lo, hi   uint32
		want     uint64
		setTo    uint64
		wantLo   uint32
		wantHigh uint32
	}{
		{"regular uses i_size_high", ModeReg | 0o644, 5, 1, 1<<32 + 5, 3<<32 + 7, 7, 3},
		{"directory ignores i_dir_acl", ModeDir | 0o755, 4096, 0xdead, 4096, 8192, 8192, 0xdead},
		{"symlink ignores high word", ModeLnk, 10, 2, 10, 11, 11, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := &Inode{Mode: tc.mode, SizeLo: tc.lo, SizeHigh: tc.hi}
			if got := in.Size(); got != tc.want {
				t.Errorf("Size: got %d, want %d", got, tc.want)
			}
			in.SetSize(tc.setTo)
			if in.SizeLo != tc.wantLo || in.SizeHigh != tc.wantHigh {
				t.Errorf("SetSize(%d): got lo %d high %#x, want %d %#x", tc.setTo, in.SizeLo, in.SizeHigh, tc.wantLo, tc.wantHigh)
			}
		})
	}
}

func TestInodeIDsAndBlocks(t *testing.T) {
	var in Inode
	in.SetUID(0x12345678)
	in.SetGID(0x9abcdef0)
	in.SetBlocks(1<<32 + 8)
	in.SetFileACL(1<<40 + 3)
	tests := []struct {
		name      string
		got, want uint64
	}{
		{"UID", uint64(in.UID()), 0x12345678},
		{"UIDLow", uint64(in.UIDLow), 0x5678},
		{"GID", uint64(in.GID()), 0x9abcdef0},
		{"GIDHigh", uint64(in.GIDHigh), 0x9abc},
		{"Blocks", in.Blocks(), 1<<32 + 8},
		{"FileACL", in.FileACL(), 1<<40 + 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %#x, want %#x", tc.got, tc.want)
			}
		})
	}
}

func TestInodeModes(t *testing.T) {
	tests := []struct {
		mode uint16
		is   func(*Inode) bool
	}{
		{ModeReg, (*Inode).IsReg}, {ModeDir, (*Inode).IsDir}, {ModeLnk, (*Inode).IsLnk}, {ModeChr, (*Inode).IsChr},
		{ModeBlk, (*Inode).IsBlk}, {ModeFifo, (*Inode).IsFifo}, {ModeSock, (*Inode).IsSock},
	}
	for i, tc := range tests {
		in := &Inode{Mode: tc.mode | 0o7777}
		for j, other := range tests {
			if got, want := other.is(in), i == j; got != want {
				t.Errorf("mode %#o, predicate %d: got %v, want %v", tc.mode, j, got, want)
			}
		}
	}
}

func TestDev(t *testing.T) {
	tests := []struct {
		name         string
		major, minor uint32
		b0, b1       uint32
	}{
		{"old format", 4, 5, 0x0405, 0},
		{"old format max", 255, 255, 0xffff, 0},
		{"zero", 0, 0, 0, 0},
		{"minor 256 needs new format", 0, 256, 0, 0x100000},
		{"major 300 minor 70000", 300, 70000, 0, 0x11112c70},
		{"max new format", 0xfff, 0xfffff, 0, 0xffffffff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b0, b1 := EncodeDev(tc.major, tc.minor)
			if b0 != tc.b0 || b1 != tc.b1 {
				t.Errorf("EncodeDev(%d, %d): got %#x %#x, want %#x %#x", tc.major, tc.minor, b0, b1, tc.b0, tc.b1)
			}
			if ma, mi := DecodeDev(tc.b0, tc.b1); ma != tc.major || mi != tc.minor {
				t.Errorf("DecodeDev(%#x, %#x): got %d:%d, want %d:%d", tc.b0, tc.b1, ma, mi, tc.major, tc.minor)
			}
		})
	}
	// SetRdev clears i_block[2] with the new format, as Linux does.
	in := &Inode{Block: [NBlocks]uint32{9, 9, 9}}
	in.SetRdev(300, 1)
	if in.Block[0] != 0 || in.Block[2] != 0 {
		t.Errorf("SetRdev new format: got i_block %v, want [0 x 0 ...]", in.Block[:3])
	}
}

func TestInodeExtraFields(t *testing.T) {
	// A 256-byte inode with every byte set, so round trips show which
	// fields were decoded and that the rest survives.
	raw := make([]byte, 256)
	for i := range raw {
		raw[i] = byte(i) | 1
	}
	tests := []struct {
		name       string
		extra      uint16
		size       int
		wantProjid bool
		wantCrtime bool
		wantCsumHi bool
	}{
		{"extra 32", 32, 256, true, true, true},
		{"extra 28 stops before i_projid", 28, 256, false, true, true},
		{"extra 4 has i_checksum_hi only", 4, 256, false, false, true},
		{"extra 0", 0, 256, false, false, false},
		{"extra beyond inode", 1000, 256, true, true, true},
		{"128-byte inode", 32, 128, false, false, false},
		{"130-byte buffer", 32, 130, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(raw[:tc.size])
			if tc.size >= 130 {
				binary.LittleEndian.PutUint16(b[128:], tc.extra)
			}
			in, err := DecodeInode(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := in.Projid != 0; got != tc.wantProjid {
				t.Errorf("i_projid decoded: got %v, want %v", got, tc.wantProjid)
			}
			if got := in.Crtime != 0; got != tc.wantCrtime {
				t.Errorf("i_crtime decoded: got %v, want %v", got, tc.wantCrtime)
			}
			if got := in.ChecksumHi != 0; got != tc.wantCsumHi {
				t.Errorf("i_checksum_hi decoded: got %v, want %v", got, tc.wantCsumHi)
			}
			out := make([]byte, len(b))
			in.Encode(out)
			if !bytes.Equal(out, b) {
				t.Errorf("round trip differs at %v", diffIdx(out, b))
			}
			// Changing a field changes only its bytes.
			in.Mtime = 0
			in.Encode(out)
			if d := diffIdx(out, b); len(d) != 4 || d[0] != 16 {
				t.Errorf("after Mtime = 0: bytes %v differ, want 16..19", d)
			}
		})
	}
	// A new inode (no Raw) encodes zeros past its fields.
	in := &Inode{Mode: ModeReg, ExtraIsize: 32, Crtime: 5}
	out := bytes.Repeat([]byte{0xff}, 256)
	in.Encode(out)
	if got := binary.LittleEndian.Uint32(out[144:]); got != 5 {
		t.Errorf("i_crtime: got %d, want 5", got)
	}
	if !bytes.Equal(out[160:], make([]byte, 96)) {
		t.Errorf("bytes past i_projid of a new inode are not zero")
	}
	if area := in.XattrArea(); area != nil {
		t.Errorf("XattrArea of a new inode: got %d bytes, want nil", len(area))
	}
}

func TestBlockBytes(t *testing.T) {
	var in Inode
	in.SetBlockBytes([]byte("a/short/symlink"))
	if got := string(in.BlockBytes()[:15]); got != "a/short/symlink" {
		t.Errorf("BlockBytes: got %q", got)
	}
	if in.Block[0] != binary.LittleEndian.Uint32([]byte("a/sh")) {
		t.Errorf("Block[0]: got %#x", in.Block[0])
	}
}
