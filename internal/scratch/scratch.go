// Package scratch recycles the short-lived slices of the I/O paths: the
// buffer lists and iovecs of a device call (block) and the page lists of
// a readahead window (pagecache). Linux keeps these on the stack or in
// the request; allocated per call here, they were a large part of what a
// sequential read allocated.
package scratch

import "sync"

// Pool hands out slices of T by box (*[]T), so that putting one back
// allocates nothing.
type Pool[T any] struct{ pool sync.Pool }

// Get returns a box holding an empty slice with room for n elements.
func (p *Pool[T]) Get(n int) *[]T {
	if box, ok := p.pool.Get().(*[]T); ok && cap(*box) >= n {
		return box
	}
	v := make([]T, 0, n)
	return &v
}

// Put clears the elements used has put in box's array (so that the pool
// holds no pointers into memory it does not own) and returns box to the
// pool. used is the longest slice built from (*box)[:0]; had it outgrown
// the box, the box's array is full and all of it is cleared.
func (p *Pool[T]) Put(box *[]T, used []T) {
	v := (*box)[:0]
	clear(v[:min(len(used), cap(v))])
	*box = v
	p.pool.Put(box)
}
