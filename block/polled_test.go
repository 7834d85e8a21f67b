package block_test

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
)

// TestQueuePolled checks where a Polled bio's device call and completion
// happen: on an idle queue inside Submit, on the submitter's goroutine;
// on a busy queue (something plugged, a Plug held, every InFlight slot
// taken) queued like any other bio and completed by a worker later.
func TestQueuePolled(t *testing.T) {
	tests := []struct {
		name string
		// busy makes the queue busy before the polled bio is submitted
		// and returns a function that lets the queue drain.
		busy       func(t *testing.T, q *block.Queue, g *gate) func()
		wantInline bool
	}{
		{
			name:       "idle queue: issued and completed inside Submit",
			busy:       func(*testing.T, *block.Queue, *gate) func() { return func() {} },
			wantInline: true,
		},
		{
			name: "a plugged request: queued behind it",
			busy: func(t *testing.T, q *block.Queue, g *gate) func() {
				g.tokens <- struct{}{}
				q.Submit(makeBio(t, q, W(64, 8), nil))
				return q.Unplug
			},
		},
		{
			name: "a Plug held: queued until it is finished",
			busy: func(t *testing.T, q *block.Queue, g *gate) func() {
				return q.StartPlug().Finish
			},
		},
		{
			name: "the only InFlight slot busy: queued for a worker",
			busy: func(t *testing.T, q *block.Queue, g *gate) func() {
				q.Submit(makeBio(t, q, W(64, 8), nil))
				q.Unplug()
				// Wait until the worker is inside the gated write.
				deadline := time.Now().Add(5 * time.Second)
				for len(g.waiting) == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the write never reached the device")
					}
					time.Sleep(time.Millisecond)
				}
				return func() { g.tokens <- struct{}{}; q.Unplug() }
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := block.NewMemory(1 << 20)
			want := fill(0, 4096)
			if err := mem.WriteVecAt([][]byte{want}, 0); err != nil {
				t.Fatal(err)
			}
			g := &gate{Device: mem, tokens: make(chan struct{}, 10), waiting: make(chan struct{}, 10)}
			q, _ := newQueue(t, g, block.Config{InFlight: 1, UnplugThreshold: 100, UnplugDelay: never})
			release := tc.busy(t, q, g)

			var done atomic.Bool
			var endErr error
			completed := make(chan struct{})
			b := makeBio(t, q, R(0, 8), func(_ *block.Bio, err error) {
				endErr = err
				done.Store(true)
				close(completed)
			})
			b.Polled = true
			q.Submit(b)
			inline := done.Load()
			release()
			select {
			case <-completed:
			case <-time.After(10 * time.Second):
				t.Fatal("the polled bio never completed")
			}
			if inline != tc.wantInline {
				t.Errorf("completed inside Submit: got %v, want %v", inline, tc.wantInline)
			}
			if endErr != nil {
				t.Errorf("EndIO error: %v", endErr)
			}
			if got := b.Vecs[0].Buf; !bytes.Equal(got, want) {
				t.Errorf("read data differs from the device's")
			}
			q.Wait()
			polled := q.Stats().PolledCalls
			if wantPolled := map[bool]int64{true: 1, false: 0}[tc.wantInline]; polled != wantPolled {
				t.Errorf("Stats.PolledCalls = %d, want %d", polled, wantPolled)
			}
		})
	}
}

// TestQueuePolledError: a failed polled device call reaches EndIO and
// the queue's error count, and the queue goes on working.
func TestQueuePolledError(t *testing.T) {
	f := block.NewFaulty(block.NewMemory(1 << 20))
	f.Inject(block.Fault{Op: block.Read, Times: 1})
	q, _ := newQueue(t, f, block.Config{UnplugDelay: never})
	for i, wantErr := range []error{block.ErrIO, nil} {
		var got error
		b := makeBio(t, q, R(0, 8), func(_ *block.Bio, err error) { got = err })
		b.Polled = true
		q.Submit(b)
		if !errors.Is(got, wantErr) || (wantErr == nil && got != nil) {
			t.Errorf("read %d: EndIO error %v, want %v", i, got, wantErr)
		}
	}
	if st := q.Stats(); st.Errors != 1 || st.PolledCalls != 2 {
		t.Errorf("Stats: Errors %d PolledCalls %d, want 1 and 2", st.Errors, st.PolledCalls)
	}
}

// TestQueuePolledConcurrent has many goroutines submit polled reads
// while others write: the InFlight bound holds (no more device calls at
// once than InFlight, polled ones included) and every read sees the
// device's bytes.
func TestQueuePolledConcurrent(t *testing.T) {
	const inFlight = 2
	c := &counting{Device: block.NewMemory(4 << 20)}
	q, _ := newQueue(t, c, block.Config{InFlight: inFlight})
	for s := int64(0); s < 8192; s += 8 {
		if err := c.Device.WriteVecAt([][]byte{fill(s, 4096)}, s<<block.SectorShift); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				s := int64((g*200+i)%1024) * 8
				if g%2 == 0 {
					// Rewrite the same bytes: reads stay checkable.
					b := makeBio(t, q, W(s, 8), nil)
					if err := q.SubmitWait(b); err != nil {
						t.Errorf("write at %d: %v", s, err)
					}
					continue
				}
				b := makeBio(t, q, R(s, 8), nil)
				if err := q.SubmitWait(b); err != nil {
					t.Errorf("read at %d: %v", s, err)
					continue
				}
				if !bytes.Equal(b.Vecs[0].Buf, fill(s, 4096)) {
					t.Errorf("read at sector %d: wrong bytes", s)
				}
			}
		}()
	}
	wg.Wait()
	if max := c.max.Load(); max > inFlight {
		t.Errorf("up to %d device calls at once, want at most %d", max, inFlight)
	}
	if q.Stats().PolledCalls == 0 {
		t.Errorf("no SubmitWait was issued by its caller")
	}
}

// counting is a device that records how many calls run at once.
type counting struct {
	block.Device
	now, max atomic.Int64
}

func (c *counting) enter() {
	n := c.now.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(50 * time.Microsecond)
}

func (c *counting) ReadVecAt(bufs [][]byte, off int64) error {
	c.enter()
	defer c.now.Add(-1)
	return c.Device.ReadVecAt(bufs, off)
}

func (c *counting) WriteVecAt(bufs [][]byte, off int64) error {
	c.enter()
	defer c.now.Add(-1)
	return c.Device.WriteVecAt(bufs, off)
}
