package layout

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// xent describes one attribute for xattrBlock.
type xent struct {
	index uint8
	name  string
	value string
	inum  uint32
}

// xattrBlock lays out an xattr block the way Linux does: header, entries
// from the top, values packed from the end, four zero bytes after the
// last entry.
func xattrBlock(size int, ents ...xent) []byte {
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b[0:], XattrMagic)
	binary.LittleEndian.PutUint32(b[4:], 1)
	binary.LittleEndian.PutUint32(b[8:], 1)
	off, vend := XattrHeaderSize, size
	for _, e := range ents {
		vlen := (len(e.value) + 3) &^ 3
		vend -= vlen
		copy(b[vend:], e.value)
		b[off] = uint8(len(e.name))
		b[off+1] = e.index
		binary.LittleEndian.PutUint16(b[off+2:], uint16(vend))
		binary.LittleEndian.PutUint32(b[off+4:], e.inum)
		binary.LittleEndian.PutUint32(b[off+8:], uint32(len(e.value)))
		binary.LittleEndian.PutUint32(b[off+12:], 0x1234)
		copy(b[off+XattrEntrySize:], e.name)
		off += XattrEntryLen(len(e.name))
	}
	return b
}

func TestParseXattrBlock(t *testing.T) {
	b := xattrBlock(1024,
		xent{XattrIndexUser, "comment", "hello", 0},
		xent{XattrIndexPosixACLAccess, "", "\x02\x00\x00\x00", 0},
		xent{XattrIndexSecurity, "selinux", "system_u:object_r:etc_t:s0\x00", 0},
	)
	xs, err := ParseXattrBlock(b)
	if err != nil {
		t.Fatal(err)
	}
	type kv struct{ name, value string }
	var got []kv
	for _, x := range xs {
		got = append(got, kv{x.FullName(), string(x.Value)})
	}
	want := []kv{{"user.comment", "hello"}, {"system.posix_acl_access", "\x02\x00\x00\x00"}, {"security.selinux", "system_u:object_r:etc_t:s0\x00"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if xs[0].Hash != 0x1234 || xs[0].Index != XattrIndexUser || xs[0].Name != "comment" {
		t.Errorf("first entry: got %+v", xs[0])
	}
	// The values are copies.
	xs[0].Value[0] = 'J'
	if b[1024-8] != 'h' {
		t.Errorf("Value aliases the block")
	}
	// No entries at all.
	if xs, err := ParseXattrBlock(xattrBlock(1024)); err != nil || len(xs) != 0 {
		t.Errorf("empty block: got %v, %v; want no attributes", xs, err)
	}
}

func TestParseXattrBlockCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		block  func() []byte
		field  string
		offset int64
	}{
		{"short", func() []byte { return make([]byte, 20) }, "", 20},
		{"bad magic", func() []byte {
			b := xattrBlock(1024)
			binary.LittleEndian.PutUint32(b, XattrMagicV1)
			return b
		}, "h_magic", 0},
		{"two blocks", func() []byte {
			b := xattrBlock(1024)
			binary.LittleEndian.PutUint32(b[8:], 2)
			return b
		}, "h_blocks", 8},
		{"value in an inode", func() []byte { return xattrBlock(1024, xent{1, "a", "x", 99}) }, "e_value_inum", 36},
		{"value past end", func() []byte {
			b := xattrBlock(1024, xent{1, "a", "xyz", 0})
			binary.LittleEndian.PutUint16(b[34:], 1022)
			return b
		}, "e_value_size", 40},
		{"value size huge", func() []byte {
			b := xattrBlock(1024, xent{1, "a", "xyz", 0})
			binary.LittleEndian.PutUint32(b[40:], 0xffffffff)
			return b
		}, "e_value_size", 40},
		{"entry runs past end", func() []byte {
			b := xattrBlock(64, xent{1, "a", "", 0})
			b[32] = 40 // name_len 40 from offset 32 needs 56+40 bytes
			return b
		}, "e_name_len", 32},
		{"no room for the terminator", func() []byte {
			return xattrBlock(64, xent{1, "", "", 0}, xent{1, "", "", 0})
		}, "e_name_len", 48},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseXattrBlock(tc.block())
			var ce *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *CorruptError wrapping ErrCorrupt", err)
			}
			if ce.Field != tc.field || ce.Offset != tc.offset {
				t.Errorf("got field %q at %d, want %q at %d (%v)", ce.Field, ce.Offset, tc.field, tc.offset, err)
			}
		})
	}
}

func TestParseInodeXattrs(t *testing.T) {
	// In-inode area: magic, entries, values with offsets from the first
	// entry.
	area := make([]byte, 96)
	binary.LittleEndian.PutUint32(area, XattrMagic)
	area[4] = 4
	area[5] = XattrIndexUser
	binary.LittleEndian.PutUint16(area[6:], 80) // value at 4+80
	binary.LittleEndian.PutUint32(area[12:], 3)
	copy(area[20:], "name")
	copy(area[84:], "abc")
	xs, err := ParseInodeXattrs(area)
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) != 1 || xs[0].FullName() != "user.name" || string(xs[0].Value) != "abc" {
		t.Errorf("got %+v, want user.name=abc", xs)
	}
	if xs, err := ParseInodeXattrs(make([]byte, 96)); err != nil || xs != nil {
		t.Errorf("area without magic: got %v, %v; want nothing", xs, err)
	}
}

func TestXattrNames(t *testing.T) {
	tests := []struct {
		full  string
		index uint8
		name  string
		ok    bool
	}{
		{"user.foo", XattrIndexUser, "foo", true},
		{"trusted.overlay.opaque", XattrIndexTrusted, "overlay.opaque", true},
		{"security.selinux", XattrIndexSecurity, "selinux", true},
		{"system.posix_acl_access", XattrIndexPosixACLAccess, "", true},
		{"system.posix_acl_default", XattrIndexPosixACLDefault, "", true},
		{"system.data", XattrIndexSystem, "data", true},
		{"bogus.x", 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.full, func(t *testing.T) {
			index, name, ok := SplitXattrName(tc.full)
			if index != tc.index || name != tc.name || ok != tc.ok {
				t.Errorf("SplitXattrName: got %d %q %v, want %d %q %v", index, name, ok, tc.index, tc.name, tc.ok)
			}
			if ok && XattrPrefix(index)+name != tc.full {
				t.Errorf("prefix + name: got %q, want %q", XattrPrefix(index)+name, tc.full)
			}
		})
	}
	if p := XattrPrefix(200); p != "" {
		t.Errorf("XattrPrefix(200): got %q, want empty", p)
	}
}

func TestXattrHeaderRoundTrip(t *testing.T) {
	b := make([]byte, XattrHeaderSize)
	for i := range b {
		b[i] = byte(i + 1)
	}
	h, err := DecodeXattrHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Magic != 0x04030201 || h.Reserved[2] != 0x201f1e1d {
		t.Errorf("decoded %+v", h)
	}
	out := make([]byte, XattrHeaderSize)
	h.Encode(out)
	if !slices.Equal(out, b) {
		t.Errorf("round trip differs at %v", diffIdx(out, b))
	}
}
