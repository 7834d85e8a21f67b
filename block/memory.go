package block

import (
	"fmt"
	"sync"
)

// Memory is a Device held in memory, for tests.
type Memory struct {
	mu     sync.RWMutex // guards data and closed
	data   []byte
	closed bool
}

var _ Device = (*Memory)(nil)

// NewMemory makes a zeroed in-memory device of size bytes.
func NewMemory(size int64) *Memory { return &Memory{data: make([]byte, size)} }

// Bytes returns the device's contents (not a copy).
func (m *Memory) Bytes() []byte { return m.data }

func (m *Memory) Size() int64 { return int64(len(m.data)) }

func (m *Memory) check(bufs [][]byte, off int64) error {
	n := int64(0)
	for _, b := range bufs {
		n += int64(len(b))
	}
	if m.closed {
		return ErrClosed
	}
	if off < 0 || off+n > int64(len(m.data)) {
		return fmt.Errorf("%w: %d bytes at offset %d, device size %d", ErrOutOfRange, n, off, len(m.data))
	}
	return nil
}

func (m *Memory) ReadVecAt(bufs [][]byte, off int64) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.check(bufs, off); err != nil {
		return err
	}
	for _, b := range bufs {
		off += int64(copy(b, m.data[off:]))
	}
	return nil
}

func (m *Memory) WriteVecAt(bufs [][]byte, off int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(bufs, off); err != nil {
		return err
	}
	for _, b := range bufs {
		off += int64(copy(m.data[off:], b))
	}
	return nil
}

// Flush does nothing but fail after Close: memory has no write cache.
func (m *Memory) Flush() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return fmt.Errorf("block: flush: %w", ErrClosed)
	}
	return nil
}

func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}
