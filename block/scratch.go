package block

import (
	"sync"

	"golang.org/x/sys/unix"
)

// scratch recycles the short-lived slices of a device call: the buffer
// list a request hands its device (Queue.run) and the iovecs File builds
// from it. Linux keeps these on the stack or in the request; here each
// 4 MiB request used to allocate about 40 KiB of them.
type scratch[T any] struct{ pool sync.Pool }

// get returns a box holding an empty slice with room for n elements.
func (s *scratch[T]) get(n int) *[]T {
	if box, ok := s.pool.Get().(*[]T); ok {
		if cap(*box) >= n {
			return box
		}
	}
	v := make([]T, 0, n)
	return &v
}

// put clears the elements used has put in box's array (so that the pool
// holds no pointers into buffers it does not own) and returns box to the
// pool. used is the longest slice built from (*box)[:0]; had it outgrown
// the box, the box's array is full and all of it is cleared.
func (s *scratch[T]) put(box *[]T, used []T) {
	v := (*box)[:0]
	clear(v[:min(len(used), cap(v))])
	*box = v
	s.pool.Put(box)
}

var (
	bufScratch scratch[[]byte]
	iovScratch scratch[unix.Iovec]
)
