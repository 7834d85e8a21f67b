package pagecache

import (
	"errors"
	"sync"
	"syscall"
)

// ErrSeq is a sample of a mapping's writeback error state, kept by each
// open file handle (errseq_t, file->f_wb_err). The zero value is "no error
// seen".
//
// Layout, as include/linux/errseq.h: the low errseqCodeBits bits name the
// last error (0: none ever), the next bit is the "seen" flag, and the bits
// above count errors recorded after one was seen.
type ErrSeq uint64

const (
	errseqCodeBits = 12
	errseqCodeMask = 1<<errseqCodeBits - 1 // MAX_ERRNO
	errseqSeen     = 1 << errseqCodeBits   // ERRSEQ_SEEN
	errseqCtrInc   = 1 << (errseqCodeBits + 1)

	// The error codes we keep in the low bits: errseq compares codes, as
	// Linux compares errnos, so two unseen ENOSPCs in a row are one event.
	errseqCodeEIO    = 5  // EIO
	errseqCodeENOSPC = 28 // ENOSPC
)

// errseq records writeback errors of a mapping so that each open file
// handle sees each error once (lib/errseq.c). Linux keeps only the errno;
// we keep the last error value beside it so callers can inspect the cause.
type errseq struct {
	mu   sync.Mutex // guards the fields below
	word ErrSeq
	err  error // the last error set; meaningful when word's code is not 0
}

func errseqCode(err error) ErrSeq {
	if errors.Is(err, ErrNoSpace) || errors.Is(err, syscall.ENOSPC) {
		return errseqCodeENOSPC
	}
	return errseqCodeEIO
}

// set mirrors lib/errseq.c:errseq_set(): store the new error code, and
// bump the counter if the previous error was seen by someone, so that
// every sampler notices the new one.
func (e *errseq) set(err error) {
	if err == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.word
	nw := old&^(errseqCodeMask|errseqSeen) | errseqCode(err)
	if old&errseqSeen != 0 {
		nw += errseqCtrInc
	}
	e.word = nw
	e.err = err
}

// sample mirrors errseq_sample(): a handle opened now must not see errors
// that were already reported to someone, but an error nobody has seen yet
// is reported to the first handle that checks, so sample returns 0 then.
func (e *errseq) sample() ErrSeq {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.word&errseqSeen == 0 {
		return 0
	}
	return e.word
}

// checkAndAdvance mirrors errseq_check_and_advance(): if the state moved
// since *since, mark it seen, advance *since to it and return the error.
func (e *errseq) checkAndAdvance(since *ErrSeq) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.word == *since {
		return nil
	}
	e.word |= errseqSeen
	*since = e.word
	if e.word&errseqCodeMask == 0 {
		return nil
	}
	return e.err
}

// check mirrors errseq_check(): the error recorded since since, without
// advancing.
func (e *errseq) check(since ErrSeq) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.word == since || e.word&errseqCodeMask == 0 {
		return nil
	}
	return e.err
}

// SetError records a writeback error against the mapping
// (mapping_set_error): in the errseq for file handles, and in the AS_EIO /
// AS_ENOSPC flags for CheckErrors. An error wrapping ErrNoSpace (or
// syscall.ENOSPC) counts as ENOSPC, any other as EIO; the error value
// itself is what handles get back, so errors.Is(err, ErrNoSpace) still
// holds for them.
func (m *Mapping) SetError(err error) {
	if err == nil {
		return
	}
	m.errs.set(err)
	m.mu.Lock()
	if errseqCode(err) == errseqCodeENOSPC {
		m.flagENOSPC = true
	} else {
		m.flagEIO = true
	}
	m.mu.Unlock()
}

// SampleErr samples the writeback error state for a file handle being
// opened (file_sample_sb_err / errseq_sample at do_dentry_open).
func (m *Mapping) SampleErr() ErrSeq { return m.errs.sample() }

// CheckAndAdvanceErr returns the writeback error recorded since *since, if
// any, and advances *since so that the same error is not returned to this
// handle again (file_check_and_advance_wb_err, called by fsync). Each
// handle thus sees each error once; a handle opened after an error was
// reported to another handle does not see it.
func (m *Mapping) CheckAndAdvanceErr(since *ErrSeq) error {
	return m.errs.checkAndAdvance(since)
}

// CheckErr returns the writeback error recorded since since without
// advancing (filemap_check_wb_err).
func (m *Mapping) CheckErr(since ErrSeq) error { return m.errs.check(since) }

// CheckErrors returns ErrNoSpace or ErrIO if an error was recorded since
// the last call, and clears the flags (filemap_check_errors): the legacy,
// handle-less way of reporting writeback errors.
func (m *Mapping) CheckErrors() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	if m.flagENOSPC {
		err = ErrNoSpace
	}
	if m.flagEIO {
		err = ErrIO
	}
	m.flagENOSPC, m.flagEIO = false, false
	return err
}
