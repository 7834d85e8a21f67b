package pagecache

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrseq(t *testing.T) {
	errA := errors.New("disk A failed")
	errNoSpace := fmt.Errorf("writeback: %w", ErrNoSpace)
	type step struct {
		op     string // "open h", "set", "check h"
		handle int
		err    error // for set: the error; for check: the error expected
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"no error", []step{{"open", 0, nil}, {"check", 0, nil}}},
		{"two handles see it once each", []step{
			{"open", 0, nil}, {"open", 1, nil},
			{"set", 0, errA},
			{"check", 0, errA}, {"check", 0, nil},
			{"check", 1, errA}, {"check", 1, nil},
		}},
		{"opened after a seen error does not see it", []step{
			{"open", 0, nil}, {"set", 0, errA}, {"check", 0, errA},
			{"open", 1, nil}, {"check", 1, nil},
		}},
		{"opened after an unseen error sees it", []step{
			{"set", 0, errA}, {"open", 1, nil}, {"check", 1, errA}, {"check", 1, nil},
		}},
		{"a new error after a seen one is seen again", []step{
			{"open", 0, nil}, {"open", 1, nil},
			{"set", 0, errA}, {"check", 0, errA},
			{"set", 0, errA},
			{"check", 0, errA}, {"check", 1, errA}, {"check", 1, nil},
		}},
		{"two unseen errors report the last once", []step{
			{"open", 0, nil}, {"set", 0, errA}, {"set", 0, errNoSpace},
			{"check", 0, errNoSpace}, {"check", 0, nil},
		}},
		{"handle opened between error and report", []step{
			{"open", 0, nil}, {"set", 0, errA}, {"open", 1, nil},
			{"check", 1, errA}, {"check", 0, errA},
			{"open", 2, nil}, {"check", 2, nil},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(Config{})
			m := c.NewMapping(newMemOps(t, nil, false), 10)
			handles := map[int]*ErrSeq{}
			for i, s := range tc.steps {
				switch s.op {
				case "open":
					e := m.SampleErr()
					handles[s.handle] = &e
				case "set":
					m.SetError(s.err)
				case "check":
					got := m.CheckAndAdvanceErr(handles[s.handle])
					if got != s.err {
						t.Errorf("step %d: handle %d check got %v, want %v", i, s.handle, got, s.err)
					}
				}
			}
		})
	}
}

func TestErrNoSpaceDistinguishable(t *testing.T) {
	c := NewCache(Config{})
	m := c.NewMapping(newMemOps(t, nil, false), 10)
	h := m.SampleErr()
	m.SetError(fmt.Errorf("block 9: %w", ErrNoSpace))
	if err := m.CheckErr(h); !errors.Is(err, ErrNoSpace) {
		t.Errorf("CheckErr got %v, want ErrNoSpace", err)
	}
	if err := m.CheckAndAdvanceErr(&h); !errors.Is(err, ErrNoSpace) {
		t.Errorf("CheckAndAdvanceErr got %v, want ErrNoSpace", err)
	}
	if err := m.CheckErrors(); err != ErrNoSpace {
		t.Errorf("CheckErrors got %v, want ErrNoSpace", err)
	}
	if err := m.CheckErrors(); err != nil {
		t.Errorf("second CheckErrors got %v, want nil", err)
	}
	m.SetError(errors.New("media error"))
	if err := m.CheckErrors(); err != ErrIO {
		t.Errorf("CheckErrors got %v, want ErrIO", err)
	}
}
