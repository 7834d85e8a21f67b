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

func (q *Queue) workerCount() (workers, idle int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.workers, q.idleWork
}

// readOne reads sector s through q's workers (a bio that is not Polled)
// and waits for it.
func readOne(t *testing.T, q *Queue, s int64) {
	t.Helper()
	b := q.AllocBio(Read, s, 1)
	if b == nil || !b.AddPage(make([]byte, 4096), nil) {
		t.Fatal("cannot build a bio")
	}
	done := make(chan error, 1)
	b.EndIO = func(_ *Bio, err error) { done <- err }
	q.Submit(b)
	q.Unplug()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Workers stay parked a while after their last request, so that one read
// after another reuses one worker instead of starting a goroutine each,
// and end after workerLinger, or at Close.
func TestWorkersLingerThenEnd(t *testing.T) {
	q := NewQueue(NewMemory(1<<20), Config{})
	for i := range 20 {
		readOne(t, q, int64(i*8))
	}
	if w, _ := q.workerCount(); w != 1 {
		t.Errorf("workers after 20 reads one at a time: got %d, want 1 (reused)", w)
	}
	deadline := time.Now().Add(10 * workerLinger)
	for {
		w, idle := q.workerCount()
		if w == 0 && idle == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers (%d idle) left %v after the last request; want none after %v", w, idle, 10*workerLinger, workerLinger)
		}
		time.Sleep(workerLinger / 10)
	}
	readOne(t, q, 0) // a worker starts again
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for w, _ := q.workerCount(); w != 0; w, _ = q.workerCount() {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers left 5 s after Close", w)
		}
		time.Sleep(time.Millisecond)
	}
}
