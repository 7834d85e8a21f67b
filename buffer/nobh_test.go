package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/pagecache"
)

func TestNobhWriteBegin(t *testing.T) {
	t.Run("whole page: blocks allocated, no buffers", func(t *testing.T) {
		x := newPio(t, 10)
		p := x.page(0)
		defer p.Unlock()
		if err := NobhWriteBegin(p, 0, pagecache.PageSize, x.get); err != nil {
			t.Fatalf("NobhWriteBegin: got %v, want nil", err)
		}
		x.wantCalls()
		if HasBuffers(p) || !p.Has(pagecache.MappedToDisk) {
			t.Errorf("buffers %v, mapped to disk %v: want no buffers, mapped to disk", HasBuffers(p), p.Has(pagecache.MappedToDisk))
		}
		for i := range int64(4) {
			if got, ok := x.table[i]; !ok || got != 200+i {
				t.Errorf("file block %d: got device block %d (allocated %v), want %d", i, got, ok, 200+i)
			}
		}
	})
	t.Run("part of a page takes buffers", func(t *testing.T) {
		x := newPio(t, 10)
		p := x.page(0)
		defer p.Unlock()
		if err := NobhWriteBegin(p, 0, pagecache.PageSize-1, x.get); err != nil {
			t.Fatalf("NobhWriteBegin: got %v, want nil", err)
		}
		if !HasBuffers(p) {
			t.Errorf("page without buffers after a partial write_begin, want buffers")
		}
	})
	t.Run("out of space after two blocks", func(t *testing.T) {
		x := newPio(t, 10)
		x.fail[2] = fmt.Errorf("balloc: %w", syscall.ENOSPC)
		p := x.page(0)
		defer p.Unlock()
		copy(p.Data, bytes.Repeat([]byte{0xee}, pagecache.PageSize))
		err := NobhWriteBegin(p, 0, pagecache.PageSize, x.get)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("NobhWriteBegin: got %v, want ENOSPC", err)
		}
		if !HasBuffers(p) {
			t.Fatalf("no buffers after a failure with two new blocks, want them")
		}
		// The two blocks allocated before the failure are zeroed and
		// dirty, so their stale disk bytes cannot show.
		bh := Buffers(p)
		for i := range 2 {
			if want := Mapped | Uptodate | Dirty; bh.State()&want != want || bh.Blocknr != 200+int64(i) {
				t.Errorf("buffer %d: state %b, block %d; want mapped, uptodate, dirty, block %d", i, bh.State(), bh.Blocknr, 200+i)
			}
			bh = bh.Next()
		}
		if !bytes.Equal(p.Data[:2048], make([]byte, 2048)) {
			t.Errorf("the new blocks are not zeroed")
		}
		if !p.Has(pagecache.Dirty) {
			t.Errorf("page not dirty, want dirty (its new blocks must be written)")
		}
	})
	t.Run("later partial write keeps the page's blocks dirty", func(t *testing.T) {
		// A page written whole without buffers, then written in part
		// before writeback: the partial write gives it buffers, and all of
		// its blocks must still be written.
		x := newPio(t, 10)
		p := x.page(0)
		if err := NobhWriteBegin(p, 0, pagecache.PageSize, x.get); err != nil {
			t.Fatalf("NobhWriteBegin: got %v, want nil", err)
		}
		copy(p.Data, bytes.Repeat([]byte{0xaa}, pagecache.PageSize))
		x.m.SetSize(pagecache.PageSize)
		p.SetUptodate()
		p.SetDirty()
		if err := NobhWriteBegin(p, 0, 100, x.get); err != nil {
			t.Fatalf("NobhWriteBegin(0, 100): got %v, want nil", err)
		}
		copy(p.Data[:100], bytes.Repeat([]byte{0xbb}, 100))
		p.ClearDirtyForIO()
		if err := WriteFullPage(p, x.get, nil); err != nil {
			t.Fatalf("WriteFullPage: got %v, want nil", err)
		}
		p.WaitWriteback()
		x.wantCalls("write 200+1", "write 201+1", "write 202+1", "write 203+1")
		if !bytes.Equal(x.mem.Bytes()[200*1024:204*1024], p.Data) {
			t.Errorf("device blocks 200..203 differ from the page")
		}
	})
}
