package buffer

import (
	"hash/maphash"
	"sync"
)

// The buffer lock (BH_Lock) is a bit in Head.state. Goroutines that wait for
// it sleep on one of a small table of wait queues chosen by hashing the
// buffer's address, as Linux's wait_on_bit() sleeps on bit_waitqueue(): a
// Head then needs no mutex or condition variable of its own. A wake-up
// broadcasts to every waiter of the slot; each one rechecks its own buffer.

const lockWaitSlots = 64

type lockWaitQueue struct {
	mu   sync.Mutex // guards sleeping on the slot; pairs with cond
	cond sync.Cond
}

var (
	lockWaitSeed  = maphash.MakeSeed()
	lockWaitTable [lockWaitSlots]lockWaitQueue
)

func init() {
	for i := range lockWaitTable {
		lockWaitTable[i].cond.L = &lockWaitTable[i].mu
	}
}

func lockWaitFor(bh *Head) *lockWaitQueue {
	return &lockWaitTable[maphash.Comparable(lockWaitSeed, bh)%lockWaitSlots]
}

// Lock takes the buffer lock, sleeping while another holder has it
// (lock_buffer). The buffer lock serializes I/O on the buffer with changes
// of its contents: the cache holds it for the whole of a read or write, and
// a filesystem holds it while it changes Data.
//
// Preconditions: for a buffer of the metadata Cache the caller holds a
// reference (from Bread, Getblk or Find) until it unlocks.
func (bh *Head) Lock() {
	if !bh.TestAndSet(Locked) {
		return
	}
	w := lockWaitFor(bh)
	w.mu.Lock()
	for bh.TestAndSet(Locked) {
		w.cond.Wait()
	}
	w.mu.Unlock()
}

// TryLock takes the buffer lock if it is free and reports whether it did
// (trylock_buffer).
func (bh *Head) TryLock() bool { return !bh.TestAndSet(Locked) }

// Unlock releases the buffer lock and wakes its waiters (unlock_buffer).
// Any goroutine may unlock a buffer, as I/O completion does.
func (bh *Head) Unlock() {
	w := lockWaitFor(bh)
	w.mu.Lock()
	bh.Clear(Locked)
	w.cond.Broadcast()
	w.mu.Unlock()
}

// WaitUnlocked sleeps until the buffer is not locked (wait_on_buffer).
func (bh *Head) WaitUnlocked() {
	if !bh.Has(Locked) {
		return
	}
	w := lockWaitFor(bh)
	w.mu.Lock()
	for bh.Has(Locked) {
		w.cond.Wait()
	}
	w.mu.Unlock()
}
