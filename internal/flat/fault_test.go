package flat

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
	"github.com/mpagefs/mpage/writeback"
)

// TestReadFault fails the device reads of one page of a file: a reader
// gets an error naming that page and its device sector, stops right
// before it, and the page is not left locked; once the fault is gone the
// same handle reads everything.
func TestReadFault(t *testing.T) {
	for _, bs := range blockSizes {
		t.Run(itoa(bs), func(t *testing.T) {
			const size = 1 << 20
			const badPage = 37
			spec := FileSpec{Name: "f", Extents: fragmented(2, 3, int64(size/bs/3+1)), Size: size}
			mem := block.NewMemory(2 << 20)
			data := genFile(size)
			putFile(t, mem.Bytes(), bs, spec, data)
			dev := block.NewFaulty(mem)
			fsys, _ := mount(t, dev, Config{BlockSize: bs, Files: []FileSpec{spec}})

			badOff, _ := fsys.DeviceOffset("f", badPage*pagecache.PageSize)
			badSector := badOff / block.SectorSize
			// Only the page's last sector: a bio covering any part of the
			// page fails, and so does the page read alone.
			lastOff, _ := fsys.DeviceOffset("f", (badPage+1)*pagecache.PageSize-1)
			dev.Inject(block.Fault{Op: block.Read, FromSector: lastOff / block.SectorSize, ToSector: lastOff/block.SectorSize + 1})

			f := open(t, fsys, "f")
			got := make([]byte, size)
			var n int
			var err error
			within(t, 20*time.Second, "ReadAt over a failing sector", func() { n, err = f.ReadAt(got, 0) })
			if err == nil {
				t.Fatalf("ReadAt over a failing sector: got %d bytes and no error", n)
			}
			var pe *pagecache.PageError
			if !errors.As(err, &pe) || pe.Index != badPage || !errors.Is(err, pagecache.ErrIO) {
				t.Fatalf("ReadAt: got %v, want a *pagecache.PageError for page %d wrapping ErrIO", err, badPage)
			}
			if msg := err.Error(); !strings.Contains(msg, "sector "+itoa(int(badSector))) {
				t.Errorf("ReadAt error %q does not name device sector %d", msg, badSector)
			}
			if n != badPage*pagecache.PageSize {
				t.Errorf("ReadAt: got %d bytes before the error, want %d", n, badPage*pagecache.PageSize)
			}
			if !bytes.Equal(got[:n], data[:n]) {
				t.Errorf("bytes before the failed page differ at %d", firstDiff(got[:n], data[:n]))
			}
			if p := fsys.Mapping("f").Lookup(badPage); p != nil && p.Has(pagecache.Locked) {
				t.Errorf("page %d is left locked after its read failed", badPage)
			}

			dev.ClearFaults()
			within(t, 20*time.Second, "ReadAt after the fault is cleared", func() { n, err = f.ReadAt(got, 0) })
			if err != nil || n != size {
				t.Fatalf("ReadAt after the fault is cleared: got %d, %v, want %d, nil", n, err, size)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("read after the fault is cleared differs at byte %d", firstDiff(got, data))
			}
		})
	}
}

// TestWriteFaultReportedToEveryHandle fails the device writes of part of
// a file while the flusher writes it back in the background. Each handle
// open when it happened gets the error at its next Sync, once; a handle
// opened after the error was reported does not; data written after the
// fault is cleared is durable after Sync.
func TestWriteFaultReportedToEveryHandle(t *testing.T) {
	for _, bs := range blockSizes {
		t.Run(itoa(bs), func(t *testing.T) {
			const size = 512 << 10
			spec := FileSpec{Name: "f", Extents: Linear(0, size/int64(bs))}
			mem := block.NewMemory(1 << 20)
			dev := block.NewFaulty(mem)
			fsys, _ := mount(t, dev, Config{
				BlockSize: bs,
				Files:     []FileSpec{spec},
				Writeback: writeback.Config{Interval: 5 * time.Millisecond, Expire: time.Millisecond},
			})
			m := fsys.Mapping("f")
			a, b := open(t, fsys, "f"), open(t, fsys, "f")

			// Sectors of file bytes [128 KiB, 192 KiB) fail to write.
			from, _ := fsys.DeviceOffset("f", 128<<10)
			dev.Inject(block.Fault{Op: block.Write, FromSector: from / block.SectorSize, ToSector: (from + 64<<10) / block.SectorSize})
			first := bytes.Repeat([]byte{1}, size)
			if _, err := a.WriteAt(first, 0); err != nil {
				t.Fatalf("WriteAt: %v", err)
			}
			// The flusher writes it back; wait until it is done.
			within(t, 20*time.Second, "background writeback", func() {
				for m.Tagged(pagecache.TagDirty) || m.Tagged(pagecache.TagWriteback) {
					time.Sleep(time.Millisecond)
				}
			})
			failed := 0
			for _, c := range dev.Calls() {
				if c.Op == block.Write && c.Err != nil {
					failed++
				}
			}
			if failed == 0 {
				t.Fatalf("no device write failed: the fault did not fire")
			}
			// The flusher counts a chunk's pages when WritePages returns,
			// which can be after the pages' writeback ended.
			var st writeback.Stats
			within(t, 20*time.Second, "the flusher's count of pages written", func() {
				for st = fsys.Flusher().Stats(); st.ExpiredPages+st.BackgroundPages == 0 && st.Chunks > 0; st = fsys.Flusher().Stats() {
					time.Sleep(time.Millisecond)
				}
			})
			if st.ExpiredPages+st.BackgroundPages == 0 {
				t.Fatalf("the flusher wrote nothing; flusher stats %+v", st)
			}
			dev.ClearFaults()

			// Opened after the error but before anyone saw it: as Linux's
			// errseq_sample, an error no handle has seen yet is reported
			// to the new handle too, so it cannot get lost.
			c := open(t, fsys, "f")

			sync := func(h *File, name string, wantErr bool) {
				t.Helper()
				var err error
				within(t, 20*time.Second, "Sync of "+name, func() { err = h.Sync() })
				switch {
				case wantErr && !errors.Is(err, block.ErrIO):
					t.Errorf("Sync of %s: got %v, want the write error (block.ErrIO)", name, err)
				case !wantErr && err != nil:
					t.Errorf("Sync of %s: got %v, want nil", name, err)
				}
			}
			sync(a, "handle A (open at the error)", true)
			sync(a, "handle A again", false)
			// Opened after the error was reported to A: not its error.
			d := open(t, fsys, "f")
			sync(b, "handle B (open at the error)", true)
			sync(b, "handle B again", false)
			sync(c, "handle C (opened after the error, before it was seen)", true)
			sync(c, "handle C again", false)
			sync(d, "handle D (opened after the error was seen)", false)

			// The pages that failed are clean in the cache now (as in
			// Linux); rewrite everything and sync: it is durable.
			second := bytes.Repeat([]byte{2}, size)
			if _, err := d.WriteAt(second, 0); err != nil {
				t.Fatalf("WriteAt after the fault: %v", err)
			}
			sync(d, "handle D after rewriting", false)
			sync(a, "handle A after rewriting", false)
			crashed, err := dev.Crash()
			if err != nil {
				t.Fatalf("Crash: %v", err)
			}
			if got := fileBytes(t, fsys, crashed.Bytes(), "f", size); !bytes.Equal(got, second) {
				t.Errorf("durable device bytes after Sync differ from the rewrite at byte %d", firstDiff(got, second))
			}
		})
	}
}

// TestCrashKeepsSyncedState writes and syncs, then writes more and gets it
// onto the device without a flush: a crash leaves exactly the synced
// state.
func TestCrashKeepsSyncedState(t *testing.T) {
	for _, bs := range blockSizes {
		t.Run(itoa(bs), func(t *testing.T) {
			const size = 256 << 10
			spec := FileSpec{Name: "f", Extents: fragmented(1, 4, size/int64(bs)/4+1)}
			mem := block.NewMemory(1 << 20)
			dev := block.NewFaulty(mem)
			fsys, _ := mount(t, dev, Config{BlockSize: bs, Files: []FileSpec{spec}, NoFlusher: true})
			f := open(t, fsys, "f")

			synced := genFile(size)
			if _, err := f.WriteAt(synced[:size/2], 0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(synced[size/2:], size/2); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			want := bytes.Clone(mem.Bytes())

			// Overwrite part, extend nothing: written to the device by
			// writeback but never flushed.
			later := bytes.Repeat([]byte{0xCC}, size/2+1000)
			if _, err := f.WriteAt(later, 3000); err != nil {
				t.Fatal(err)
			}
			if err := writeback.SyncMapping(fsys.Mapping("f")); err != nil {
				t.Fatalf("SyncMapping: %v", err)
			}
			if got := fileBytes(t, fsys, mem.Bytes(), "f", size); bytes.Equal(got, synced) {
				t.Fatalf("the unsynced write did not reach the device: the crash would prove nothing")
			}
			crashed, err := dev.Crash()
			if err != nil {
				t.Fatalf("Crash: %v", err)
			}
			if i := firstDiff(crashed.Bytes(), want); i >= 0 {
				t.Errorf("crashed device differs from the synced state at device byte %d", i)
			}
		})
	}
}
