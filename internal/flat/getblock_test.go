package flat

import (
	"errors"
	"testing"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/buffer"
)

// TestGetBlockRuns asks the file's block mapper for runs of blocks, as
// NobhWriteBeginPages does through bh.Size: a run stops at the end of its
// extent and where allocated blocks meet unallocated ones, and bh.Size
// says how far it went.
func TestGetBlockRuns(t *testing.T) {
	mem := block.NewMemory(1 << 20)
	// File blocks 0-9 at device 11-20, 10-19 at device 0-9.
	fsys, _ := mount(t, mem, Config{BlockSize: 1024, Files: []FileSpec{{Name: "f", Extents: fragmented(0, 2, 10)}}})
	ino := open(t, fsys, "f").ino
	steps := []struct {
		name     string
		iblock   int64
		blocks   int // asked for
		create   bool
		wantDev  int64 // 0: unmapped
		wantRun  int
		wantNew  bool
		wantNoSp bool
	}{
		{"hole without create", 0, 25, false, 0, 0, false, false},
		{"one block", 12, 1, true, 2, 1, true, false},
		{"new run to the extent's end", 0, 25, true, 11, 10, true, false},
		{"mapped run to the extent's end", 3, 25, false, 14, 7, false, false},
		{"new run up to an allocated block", 10, 5, true, 0, 2, true, false},
		{"mapped run of the next extent", 10, 10, true, 0, 3, false, false},
		{"past the extents", 20, 4, true, 0, 0, false, true},
	}
	for _, s := range steps {
		var bh buffer.Head
		bh.Size = s.blocks << 10
		err := ino.getBlock(s.iblock, &bh, s.create)
		if s.wantNoSp {
			if !errors.Is(err, ErrNoSpace) {
				t.Errorf("%s: got %v, want ErrNoSpace", s.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: got %v, want nil", s.name, err)
			continue
		}
		if s.wantRun == 0 {
			if bh.Has(buffer.Mapped) {
				t.Errorf("%s: mapped to %d, want unmapped", s.name, bh.Blocknr)
			}
			continue
		}
		if !bh.Has(buffer.Mapped) || bh.Blocknr != s.wantDev || bh.Size != s.wantRun<<10 || bh.Has(buffer.New) != s.wantNew {
			t.Errorf("%s: mapped %v to %d, %d bytes, new %v; want %d, %d bytes, new %v",
				s.name, bh.Has(buffer.Mapped), bh.Blocknr, bh.Size, bh.Has(buffer.New), s.wantDev, s.wantRun<<10, s.wantNew)
		}
	}
}
