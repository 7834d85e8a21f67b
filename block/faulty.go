package block

import (
	"fmt"
	"slices"
	"sync"
)

// Fault selects device calls of a Faulty device to fail. A call is failed
// when it matches every selector that is set.
type Fault struct {
	Op Op
	// FromSector and ToSector select calls that touch any sector in
	// [FromSector, ToSector). ToSector zero selects every sector.
	FromSector, ToSector int64
	// Call selects the Call-th call of Op made to the device, counting
	// from 1 and counting calls that failed. Zero selects every call.
	Call int
	// Times is how often the fault fires before it is spent. Zero means
	// every time it matches.
	Times int
	// Err is the failed call's error; nil means ErrIO.
	Err error
}

// Call is one device call as a Faulty device recorded it.
type Call struct {
	Op   Op
	Off  int64 // byte offset
	Len  int   // bytes
	Segs int   // buffers in the vector
	Err  error // nil, or the injected or device error
}

// Faulty wraps a Device for tests: it records every call, fails chosen
// calls (Inject) and can show the device as a crash would leave it, with
// every write since the last successful Flush forgotten (Crash).
//
// To do so it keeps the prior contents of every range written since the
// last Flush, so each write costs a read of the wrapped device, and writes
// are serialized.
type Faulty struct {
	dev Device // never changes

	wmu sync.Mutex // serializes writes, Flush and Crash, so undo matches the device

	mu     sync.Mutex // guards the fields below
	faults []*faultState
	calls  []Call
	nCalls [2]int      // calls per Op, for Fault.Call
	undo   []undoWrite // overwritten contents since the last Flush, oldest first
}

type faultState struct {
	Fault
	fired int
}

type undoWrite struct {
	off int64
	old []byte
}

var (
	_ Device  = (*Faulty)(nil)
	_ Limiter = (*Faulty)(nil)
)

// NewFaulty wraps dev. With no fault injected it behaves as dev does.
func NewFaulty(dev Device) *Faulty { return &Faulty{dev: dev} }

// Inject adds a fault. Faults may be added while I/O is running.
func (f *Faulty) Inject(fault Fault) {
	f.mu.Lock()
	f.faults = append(f.faults, &faultState{Fault: fault})
	f.mu.Unlock()
}

// ClearFaults removes every injected fault.
func (f *Faulty) ClearFaults() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// Calls returns a copy of the calls recorded so far, in the order they
// were made.
func (f *Faulty) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ResetCalls forgets the recorded calls (the per-Op counts that Fault.Call
// matches keep running).
func (f *Faulty) ResetCalls() {
	f.mu.Lock()
	f.calls = nil
	f.mu.Unlock()
}

// Size is the wrapped device's size.
func (f *Faulty) Size() int64 { return f.dev.Size() }

// Limits are the wrapped device's limits.
func (f *Faulty) Limits() Limits {
	if l, ok := f.dev.(Limiter); ok {
		return l.Limits()
	}
	return DefaultLimits
}

// start counts a call and returns the error of the fault it matches, if
// any.
func (f *Faulty) start(op Op, off int64, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nCalls[op]++
	nth := f.nCalls[op]
	first, end := off>>SectorShift, (off+int64(n)+SectorSize-1)>>SectorShift
	for _, fs := range f.faults {
		if fs.Op != op || (fs.Times > 0 && fs.fired >= fs.Times) {
			continue
		}
		if fs.Call != 0 && fs.Call != nth {
			continue
		}
		if fs.ToSector != 0 && (end <= fs.FromSector || first >= fs.ToSector) {
			continue
		}
		fs.fired++
		err := fs.Err
		if err == nil {
			err = ErrIO
		}
		return fmt.Errorf("block: injected fault: %s of %d bytes at offset %d (call %d): %w", op, n, off, nth, err)
	}
	return nil
}

func (f *Faulty) record(op Op, bufs [][]byte, off int64, n int, err error) {
	f.mu.Lock()
	f.calls = append(f.calls, Call{Op: op, Off: off, Len: n, Segs: len(bufs), Err: err})
	f.mu.Unlock()
}

// ReadVecAt reads from the wrapped device unless a fault says otherwise.
func (f *Faulty) ReadVecAt(bufs [][]byte, off int64) error {
	n := vecLen(bufs)
	err := f.start(Read, off, n)
	if err == nil {
		err = f.dev.ReadVecAt(bufs, off)
	}
	f.record(Read, bufs, off, n, err)
	return err
}

// WriteVecAt writes to the wrapped device unless a fault says otherwise,
// keeping what it overwrote for Crash.
func (f *Faulty) WriteVecAt(bufs [][]byte, off int64) error {
	n := vecLen(bufs)
	f.wmu.Lock()
	defer f.wmu.Unlock()
	err := f.start(Write, off, n)
	if err == nil {
		old := make([]byte, n)
		if rerr := f.dev.ReadVecAt([][]byte{old}, off); rerr == nil {
			f.mu.Lock()
			f.undo = append(f.undo, undoWrite{off: off, old: old})
			f.mu.Unlock()
		}
		err = f.dev.WriteVecAt(bufs, off)
	}
	f.record(Write, bufs, off, n, err)
	return err
}

// Flush flushes the wrapped device; once that succeeds, the writes made
// so far survive a Crash.
func (f *Faulty) Flush() error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if err := f.dev.Flush(); err != nil {
		return err
	}
	f.mu.Lock()
	f.undo = nil
	f.mu.Unlock()
	return nil
}

// Close closes the wrapped device.
func (f *Faulty) Close() error { return f.dev.Close() }

// Crash returns a copy of the device as a power loss would leave it: the
// contents as of the last successful Flush, every later write forgotten.
// The Faulty device itself is left as it is. Call it when no write is in
// progress that should count.
func (f *Faulty) Crash() (*Memory, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	m := NewMemory(f.dev.Size())
	if err := f.dev.ReadVecAt([][]byte{m.data}, 0); err != nil {
		return nil, fmt.Errorf("block: crash copy: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.undo) - 1; i >= 0; i-- {
		u := f.undo[i]
		copy(m.data[u.off:], u.old)
	}
	return m, nil
}

func vecLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}
