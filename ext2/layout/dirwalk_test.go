package layout

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// TestCheckDirBlockAgreesWithParse mutates valid directory blocks at
// random and checks that CheckDirBlock accepts exactly what
// ParseDirBlock accepts, with the same error.
func TestCheckDirBlockAgreesWithParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, filetype := range []bool{true, false} {
		for i := 0; i < 2000; i++ {
			b := make([]byte, 1024)
			off := 0
			for off < len(b) {
				name := "n" + string(rune('a'+r.IntN(26)))
				rec := DirEntryLen(len(name)) + 4*r.IntN(8)
				if off+rec+MinDirEntryLen > len(b) {
					rec = len(b) - off
				}
				e := DirEntry{Inode: uint32(r.IntN(100)), RecLen: rec, Name: name, FileType: FtRegFile}
				if err := e.Encode(b[off:], filetype); err != nil {
					t.Fatal(err)
				}
				off += rec
			}
			if i%2 == 1 {
				b[r.IntN(len(b))] = byte(r.Uint32())
			}
			_, want := ParseDirBlock(b, filetype, 90)
			got := CheckDirBlock(b, filetype, 90)
			var gc, wc *CorruptError
			switch {
			case want == nil && got != nil, want != nil && got == nil:
				t.Fatalf("case %d: got %v, want %v", i, got, want)
			case want != nil && (!errors.As(got, &gc) || !errors.As(want, &wc) || *gc != *wc):
				t.Fatalf("case %d: got %v, want %v", i, got, want)
			}
		}
	}
}
