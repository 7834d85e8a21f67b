package pagecache

import "sync"

// errseq records writeback errors of a mapping so that each open file
// handle sees each error once (include/linux/errseq.h).
type errseq struct {
	mu  sync.Mutex
	err error
	seq uint64
}

func (e *errseq) set(err error) {
	if err == nil {
		return
	}
	e.mu.Lock()
	e.err = err
	e.seq++
	e.mu.Unlock()
}
