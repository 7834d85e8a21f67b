package flat

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

var blockSizes = []int{1024, 2048, 4096}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"block size 512", Config{BlockSize: 512, Files: []FileSpec{{Name: "a", Extents: Linear(0, 4)}}}},
		{"block size 8192", Config{BlockSize: 8192, Files: []FileSpec{{Name: "a", Extents: Linear(0, 4)}}}},
		{"extent past device", Config{BlockSize: 4096, Files: []FileSpec{{Name: "a", Extents: Linear(10, 7)}}}},
		{"negative start", Config{BlockSize: 4096, Files: []FileSpec{{Name: "a", Extents: Linear(-1, 2)}}}},
		{"empty extent", Config{BlockSize: 4096, Files: []FileSpec{{Name: "a", Extents: Linear(0, 0)}}}},
		{"overlap between files", Config{BlockSize: 4096, Files: []FileSpec{
			{Name: "a", Extents: Linear(0, 4)}, {Name: "b", Extents: Linear(3, 4)}}}},
		{"overlap within a file", Config{BlockSize: 4096, Files: []FileSpec{
			{Name: "a", Extents: []Extent{{0, 4}, {2, 2}}}}}},
		{"size past extents", Config{BlockSize: 4096, Files: []FileSpec{{Name: "a", Extents: Linear(0, 4), Size: 4*4096 + 1}}}},
		{"duplicate name", Config{BlockSize: 4096, Files: []FileSpec{
			{Name: "a", Extents: Linear(0, 4)}, {Name: "a", Extents: Linear(4, 4)}}}},
		{"empty name", Config{BlockSize: 4096, Files: []FileSpec{{Extents: Linear(0, 4)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := block.NewQueue(block.NewMemory(16*4096), block.Config{})
			defer q.Close()
			fsys, err := New(q, tt.cfg)
			if err == nil {
				fsys.Close()
				t.Fatalf("New: got nil error, want ErrInvalid")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("New: got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestOpenUnknown(t *testing.T) {
	fsys, _ := mount(t, block.NewMemory(1<<20), Config{BlockSize: 4096, Files: []FileSpec{{Name: "a", Extents: Linear(0, 8)}}})
	_, err := fsys.Open("b")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(b): got %v, want fs.ErrNotExist", err)
	}
}

// TestRoundTrip writes a file with writes of assorted sizes and
// alignments, syncs, and checks the device bytes through the extent
// table, then reads the file back cold through a new mount.
func TestRoundTrip(t *testing.T) {
	for _, bs := range blockSizes {
		for _, layout := range []string{"linear", "fragmented"} {
			t.Run(layout+"/"+itoa(bs), func(t *testing.T) {
				const size = 700*1024 + 123 // not a multiple of any block size
				blocks := int64(size/bs + 1)
				ext := Linear(3, blocks)
				if layout == "fragmented" {
					ext = fragmented(3, 5, (blocks+4)/5)
				}
				mem := block.NewMemory(2 << 20)
				cfg := Config{BlockSize: bs, Files: []FileSpec{{Name: "f", Extents: ext}}, NoFlusher: layout == "linear"}
				fsys, _ := mount(t, mem, cfg)
				f := open(t, fsys, "f")

				want := make([]byte, size)
				rng := rand.New(rand.NewPCG(uint64(bs), 1))
				for i := range want {
					want[i] = byte(rng.Uint32())
				}
				// Assorted writes out of order: tail first, then unaligned
				// pieces over the rest.
				for off := int64(0); off < size; {
					n := int64(1 + rng.IntN(3*4096))
					n = min(n, size-off)
					if _, err := f.WriteAt(want[off:off+n], off); err != nil {
						t.Fatalf("WriteAt(%d bytes at %d): %v", n, off, err)
					}
					off += n
				}
				if err := f.Sync(); err != nil {
					t.Fatalf("Sync: %v", err)
				}
				if got := fileBytes(t, fsys, mem.Bytes(), "f", size); !bytes.Equal(got, want) {
					t.Fatalf("device bytes differ from what was written at byte %d", firstDiff(got, want))
				}

				// A new mount over the same device, with a cold cache.
				cfg.Files[0].Size = size
				fsys2, _ := mount(t, mem, cfg)
				g := open(t, fsys2, "f")
				got := make([]byte, size+100)
				n, err := g.ReadAt(got, 0)
				if n != size || err != io.EOF {
					t.Fatalf("ReadAt past end: got %d, %v, want %d, io.EOF", n, err, size)
				}
				if !bytes.Equal(got[:n], want) {
					t.Fatalf("cold read differs from what was written at byte %d", firstDiff(got[:n], want))
				}
			})
		}
	}
}

// TestTruncate shrinks a file to the middle of a block and grows it
// again: the bytes past the cut read as zeros, in the cache and after a
// cold mount, and the freed blocks are no longer allocated.
func TestTruncate(t *testing.T) {
	for _, bs := range blockSizes {
		t.Run(itoa(bs), func(t *testing.T) {
			const size = 64 * 1024
			mem := block.NewMemory(1 << 20)
			cfg := Config{BlockSize: bs, Files: []FileSpec{{Name: "f", Extents: fragmented(0, 3, 40)}}}
			fsys, _ := mount(t, mem, cfg)
			f := open(t, fsys, "f")
			data := bytes.Repeat([]byte{0xA5}, size)
			if _, err := f.WriteAt(data, 0); err != nil {
				t.Fatalf("WriteAt: %v", err)
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if got, want := f.Allocated(), int64(size/bs); got != want {
				t.Errorf("allocated after write: got %d blocks, want %d", got, want)
			}
			cut := int64(10*1024 + 100)
			if err := f.Truncate(cut); err != nil {
				t.Fatalf("Truncate(%d): %v", cut, err)
			}
			if got, want := f.Allocated(), (cut+int64(bs)-1)/int64(bs); got != want {
				t.Errorf("allocated after truncate: got %d blocks, want %d", got, want)
			}
			if err := f.Truncate(size); err != nil {
				t.Fatalf("Truncate(%d): %v", size, err)
			}
			want := make([]byte, size)
			copy(want, data[:cut])
			got := make([]byte, size)
			if n, err := f.ReadAt(got, 0); n != size || err != nil {
				t.Fatalf("ReadAt: got %d, %v, want %d, nil", n, err, size)
			}
			if i := firstDiff(got, want); i >= 0 {
				t.Fatalf("read after truncate and grow: first difference at byte %d (got %#x, want %#x)", i, got[i], want[i])
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			// The partial block's tail is zero on disk too, so a cold
			// mount reads the same up to the end of that block. (Past it
			// the freed blocks hold stale bytes; allocation is not kept on
			// the device, and a new mount counts every block under Size
			// as allocated.)
			cfg.Files[0].Size = size
			fsys2, _ := mount(t, mem, cfg)
			g := open(t, fsys2, "f")
			end := (cut + int64(bs) - 1) / int64(bs) * int64(bs)
			clear(got)
			if n, err := g.ReadAt(got[:end], 0); n != int(end) || err != nil {
				t.Fatalf("cold ReadAt: got %d, %v, want %d, nil", n, err, end)
			}
			if i := firstDiff(got[:end], want[:end]); i >= 0 {
				t.Fatalf("cold read after truncate: first difference at byte %d (got %#x, want %#x)", i, got[i], want[i])
			}
		})
	}
}

func TestWritePastExtents(t *testing.T) {
	mem := block.NewMemory(1 << 20)
	fsys, _ := mount(t, mem, Config{BlockSize: 1024, Files: []FileSpec{{Name: "f", Extents: fragmented(0, 2, 10)}}})
	f := open(t, fsys, "f")
	data := bytes.Repeat([]byte{7}, 24*1024)
	n, err := f.WriteAt(data, 0)
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, pagecache.ErrNoSpace) {
		t.Fatalf("WriteAt past the extents: got %v, want ErrNoSpace", err)
	}
	// 20 KiB of blocks: the write stops at the page holding the end.
	if n != 20*1024 {
		t.Errorf("WriteAt past the extents wrote %d bytes, want %d", n, 20*1024)
	}
	if err := f.Truncate(20*1024 + 1); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Truncate past the extents: got %v, want ErrNoSpace", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got := fileBytes(t, fsys, mem.Bytes(), "f", 20*1024); !bytes.Equal(got, data[:20*1024]) {
		t.Errorf("device bytes differ at %d", firstDiff(got, data))
	}
}

func TestClosedHandle(t *testing.T) {
	fsys, _ := mount(t, block.NewMemory(1<<20), Config{BlockSize: 4096, Files: []FileSpec{{Name: "a", Extents: Linear(0, 8)}}})
	f, err := fsys.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	tests := []struct {
		name string
		op   func() error
	}{
		{"Close", f.Close},
		{"Sync", f.Sync},
		{"Truncate", func() error { return f.Truncate(0) }},
		{"ReadAt", func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err }},
		{"WriteAt", func() error { _, err := f.WriteAt(make([]byte, 1), 0); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			within(t, 10*time.Second, tt.name, func() {
				if err := tt.op(); !errors.Is(err, ErrClosed) {
					t.Errorf("%s after Close: got %v, want ErrClosed", tt.name, err)
				}
			})
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
