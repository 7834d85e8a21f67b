package block

import (
	"testing"
	"time"
)

// TestUnplugEmptyTakesNoLock checks the cheap elv_queue_empty test on the
// unplug path: unplugging an empty queue must not wait for the queue lock.
func TestUnplugEmptyTakesNoLock(t *testing.T) {
	q := NewQueue(NewMemory(1<<20), Config{})
	q.mu.Lock()
	done := make(chan struct{})
	go func() {
		q.Unplug()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("Unplug of an empty queue waited for the queue lock")
	}
	q.mu.Unlock()
	<-done
}
