package block_test

import (
	"sync"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
)

// TestPlug submits batches of bios, each ended by UnplugBatch as mpage's
// writepages ends, under zero, one or two held Plugs, and checks which
// device calls reach the device before and after the plugs finish.
func TestPlug(t *testing.T) {
	// Four batches of one 4 KiB write each, back to back on disk, as the
	// data of four small files allocated one after the other.
	adjacent := [][]bioSpec{{W(0, 8)}, {W(8, 8)}, {W(16, 8)}, {W(24, 8)}}
	tests := []struct {
		name    string
		cfg     block.Config
		plugs   int             // Plugs held around the batches
		batches [][]bioSpec     // each ended by UnplugBatch
		unplug  bool            // call Unplug after the batches, before Finish
		before  []block.Request // device calls before the plugs finish
		after   []block.Request // device calls in all, after they finish
	}{
		{
			name:    "no plug: each batch its own call",
			cfg:     block.Config{UnplugDelay: never},
			batches: adjacent,
			before: []block.Request{
				{Op: block.Write, Sector: 0, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 8, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 16, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 24, Bytes: 4096, Bios: 1},
			},
			after: []block.Request{
				{Op: block.Write, Sector: 0, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 8, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 16, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 24, Bytes: 4096, Bios: 1},
			},
		},
		{
			name:    "held plug: batches merge into one call at Finish",
			cfg:     block.Config{UnplugDelay: never, PlugDelay: never},
			plugs:   1,
			batches: adjacent,
			after:   []block.Request{{Op: block.Write, Sector: 0, Bytes: 16384, Bios: 4}},
		},
		{
			name:    "nested plugs: only the last Finish dispatches",
			cfg:     block.Config{UnplugDelay: never, PlugDelay: never},
			plugs:   2,
			batches: adjacent,
			after:   []block.Request{{Op: block.Write, Sector: 0, Bytes: 16384, Bios: 4}},
		},
		{
			name:  "held plug: more requests than UnplugThreshold stay queued",
			cfg:   block.Config{UnplugThreshold: 2, UnplugDelay: never, PlugDelay: never},
			plugs: 1,
			batches: [][]bioSpec{
				{W(0, 8)}, {W(100, 8)}, {W(200, 8)}, {W(300, 8)},
			},
			after: []block.Request{
				{Op: block.Write, Sector: 0, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 100, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 200, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 300, Bytes: 4096, Bios: 1},
			},
		},
		{
			name:  "held plug: PlugRequests requests dispatch",
			cfg:   block.Config{PlugRequests: 3, UnplugDelay: never, PlugDelay: never},
			plugs: 1,
			batches: [][]bioSpec{
				{W(0, 8)}, {W(100, 8)}, {W(200, 8)}, {W(300, 8)},
			},
			before: []block.Request{
				{Op: block.Write, Sector: 0, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 100, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 200, Bytes: 4096, Bios: 1},
			},
			after: []block.Request{
				{Op: block.Write, Sector: 0, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 100, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 200, Bytes: 4096, Bios: 1},
				{Op: block.Write, Sector: 300, Bytes: 4096, Bios: 1},
			},
		},
		{
			name:    "held plug: PlugBytes queued bytes dispatch, merged or not",
			cfg:     block.Config{PlugBytes: 12288, UnplugDelay: never, PlugDelay: never},
			plugs:   1,
			batches: adjacent,
			before:  []block.Request{{Op: block.Write, Sector: 0, Bytes: 12288, Bios: 3}},
			after: []block.Request{
				{Op: block.Write, Sector: 0, Bytes: 12288, Bios: 3},
				{Op: block.Write, Sector: 24, Bytes: 4096, Bios: 1},
			},
		},
		{
			name:    "held plug: Unplug still dispatches",
			cfg:     block.Config{UnplugDelay: never, PlugDelay: never},
			plugs:   1,
			batches: adjacent,
			unplug:  true,
			before:  []block.Request{{Op: block.Write, Sector: 0, Bytes: 16384, Bios: 4}},
			after:   []block.Request{{Op: block.Write, Sector: 0, Bytes: 16384, Bios: 4}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, tr := newQueue(t, block.NewMemory(1<<20), tc.cfg)
			var plugs []*block.Plug
			for range tc.plugs {
				plugs = append(plugs, q.StartPlug())
			}
			var wgs []*sync.WaitGroup
			for _, batch := range tc.batches {
				wg, _ := submitAll(t, q, batch)
				wgs = append(wgs, wg)
				q.UnplugBatch()
			}
			if tc.unplug {
				q.Unplug()
			}
			// Let dispatched requests reach the device.
			time.Sleep(30 * time.Millisecond)
			if got := tr.get(); !sameRequests(got, tc.before) {
				t.Errorf("device calls before Finish: got %+v, want %+v", got, tc.before)
			}
			for _, p := range plugs {
				p.Finish()
				p.Finish() // a second Finish must not release another holder's plug
			}
			for i, wg := range wgs {
				waitTimeout(t, wg, "batch "+string(rune('0'+i)))
			}
			if got := tr.get(); !sameRequests(got, tc.after) {
				t.Errorf("device calls after Finish: got %+v, want %+v", got, tc.after)
			}
		})
	}
}

// TestPlugTimer checks that a held plug does not hold requests forever:
// the PlugDelay timer dispatches them while the plug is still held, and
// before it fires nothing reaches the device.
func TestPlugTimer(t *testing.T) {
	q, tr := newQueue(t, block.NewMemory(1<<20), block.Config{UnplugDelay: time.Millisecond, PlugDelay: 200 * time.Millisecond})
	p := q.StartPlug()
	defer p.Finish()
	start := time.Now()
	wg, errs := submitAll(t, q, []bioSpec{W(0, 8)})
	q.UnplugBatch()
	time.Sleep(50 * time.Millisecond)
	if got := tr.get(); len(got) != 0 && time.Since(start) < 200*time.Millisecond {
		t.Fatalf("device calls %+v within the plug delay, want none (UnplugDelay must not apply while a plug is held)", got)
	}
	waitTimeout(t, wg, "plugged write")
	if errs[0] != nil {
		t.Fatalf("write: got %v, want no error", errs[0])
	}
	if got := tr.get(); len(got) != 1 {
		t.Errorf("device calls %+v, want 1 from the timer", got)
	}
}

// TestPlugConcurrent holds and finishes plugs from several goroutines
// while others submit and end batches: every bio completes and the data
// reach the device.
func TestPlugConcurrent(t *testing.T) {
	dev := block.NewMemory(1 << 20)
	q, _ := newQueue(t, dev, block.Config{PlugDelay: never, UnplugDelay: never})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 16 {
				p := q.StartPlug()
				sector := int64(g*16+i) * 8
				done, errs := submitAll(t, q, []bioSpec{W(sector, 8)})
				q.UnplugBatch()
				p.Finish()
				waitTimeout(t, done, "write")
				if errs[0] != nil {
					t.Errorf("write at sector %d: got %v, want no error", sector, errs[0])
				}
			}
		}()
	}
	wg.Wait()
	data := dev.Bytes()
	for s := int64(0); s < 64*8; s += 8 {
		off := s << block.SectorShift
		if got, want := data[off:off+4096], fill(s, 4096); string(got) != string(want) {
			t.Errorf("sector %d: data differ from what was written", s)
		}
	}
}
