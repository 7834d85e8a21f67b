package block

// Op is the direction of a bio.
type Op uint8

// Directions.
const (
	Read Op = iota
	Write
)

func (op Op) String() string {
	if op == Write {
		return "write"
	}
	return "read"
}

// Vec is one segment of a bio: a buffer inside a page-cache page (or a
// metadata buffer) and the page it belongs to. Page is opaque to the block
// layer; completion handlers use it to find their pages (bio_vec.bv_page).
type Vec struct {
	Buf  []byte
	Page any
}

// Bio is one block I/O: a run of contiguous sectors on one device moved to or
// from a vector of buffers. It mirrors struct bio.
//
// A bio is built by one goroutine (AddPage), then handed to Queue.Submit;
// after that the submitter must not touch it until EndIO is called.
type Bio struct {
	Op     Op
	Sector int64 // first sector (bi_sector)
	Vecs   []Vec // bi_io_vec[0:bi_vcnt]

	// EndIO is called exactly once with nil or the transfer's error
	// (bi_end_io): off the submitter's goroutine, except for a Polled bio
	// the queue issues itself (see Queue.Submit). It may be nil.
	EndIO func(b *Bio, err error)
	// Private is for the bio's owner (bi_private).
	Private any
	// Polled marks a bio whose submitter will wait for it at once and
	// would rather do the device call itself than hand it to a worker and
	// sleep (REQ_POLLED, as io_uring's IOPOLL and preadv2's RWF_HIPRI set
	// it). On an idle queue Submit then makes the device call and runs
	// EndIO on the submitter's goroutine before it returns; otherwise the
	// bio is queued like any other.
	Polled bool

	q        *Queue // the queue that allocated the bio, or nil
	box      *[]Vec // the pooled vector Vecs lies in (biovec.go), or nil
	maxVecs  int
	size     int
	released bool // vector slots returned to q's budget; guarded by q.mu
}

// Size is the number of bytes in the bio (bi_size before submission).
func (b *Bio) Size() int { return b.size }

// MaxVecs is the vector capacity the bio was allocated with.
func (b *Bio) MaxVecs() int { return b.maxVecs }

// EndSector is the first sector after the bio.
func (b *Bio) EndSector() int64 { return b.Sector + int64(b.size>>SectorShift) }

// AddPage appends buf (part of page) to the bio and reports whether it was
// added. It refuses when the vector is full or the bio would exceed the
// queue's request limit, as bio_add_page() does; the caller then submits the
// bio and starts a new one. len(buf) must be a multiple of SectorSize.
func (b *Bio) AddPage(buf []byte, page any) bool {
	if len(b.Vecs) >= b.maxVecs {
		return false
	}
	if b.q != nil && b.size+len(buf) > b.q.limits.MaxRequestBytes {
		return false
	}
	if b.q != nil && b.q.refuse != nil && b.q.refuse(b, len(buf)) {
		return false
	}
	if len(b.Vecs) == cap(b.Vecs) {
		b.growVecs()
	}
	b.Vecs = append(b.Vecs, Vec{Buf: buf, Page: page})
	b.size += len(buf)
	return true
}
