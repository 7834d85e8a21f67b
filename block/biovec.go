package block

import "sync"

// This file mirrors the biovec pools of fs/bio.c (bvec_alloc_bs,
// bvec_free_bs and the biovec slabs of sizes 1 to BIO_MAX_PAGES) and
// bio_put: a bio's vector comes from a pool of its size class and goes
// back when the bio's owner puts it, usually at the end of its EndIO, as
// mpage_end_io_read() does. A 1 GiB sequential read builds 256 vectors of
// 1024 slots (40 KiB each); grown by doubling and left to the garbage
// collector they were about a quarter of what the read path allocated.
// A bio that is never put costs nothing more than before: the garbage
// collector takes its vector.

// vecClasses are the pooled vector capacities, smallest first: a bio
// starts in the first and moves up a class when AddPage fills it. A bio
// allocated for more slots than the last class gets a vector of its own,
// not pooled, when it grows past the last class.
var vecClasses = [...]int{4, 16, 64, 256, 1024}

// vecPools holds, per class, boxes (*[]Vec) whose slice has exactly the
// class's length and capacity and only zero entries.
var vecPools [len(vecClasses)]sync.Pool

// vecClassFor returns the index of the smallest class holding n slots, or
// -1 when n is larger than every class.
func vecClassFor(n int) int {
	for i, c := range vecClasses {
		if n <= c {
			return i
		}
	}
	return -1
}

// getVecs returns a box whose vector has class ci's length and only zero
// entries; the caller slices it to [:0].
func getVecs(ci int) *[]Vec {
	if box, ok := vecPools[ci].Get().(*[]Vec); ok {
		return box
	}
	v := make([]Vec, vecClasses[ci])
	return &v
}

// putVecs clears the first used slots of box (the rest are zero already)
// and returns it to its class's pool.
func putVecs(box *[]Vec, used int) {
	v := *box
	clear(v[:min(used, len(v))])
	if ci := vecClassFor(len(v)); ci >= 0 && vecClasses[ci] == len(v) {
		vecPools[ci].Put(box)
	}
}

// initVecs gives a new bio its first vector, of the smallest class.
func (b *Bio) initVecs() {
	b.box = getVecs(0)
	b.Vecs = (*b.box)[:0]
}

// growVecs moves the bio's vector to the next class, or to a vector of
// exactly maxVecs slots past the last class. It is called by AddPage when
// the vector is full and the bio may hold more (len(b.Vecs) < b.maxVecs).
func (b *Bio) growVecs() {
	n := len(b.Vecs)
	var next *[]Vec
	if ci := vecClassFor(n + 1); ci >= 0 {
		next = getVecs(ci)
	} else {
		v := make([]Vec, b.maxVecs)
		next = &v
	}
	copy(*next, b.Vecs)
	if b.box != nil && ownsVecs(b.box, b.Vecs) {
		putVecs(b.box, n)
	}
	b.box = next
	b.Vecs = (*next)[:n]
}

// ownsVecs reports whether vecs lies in box's array: a caller that
// appended to Vecs itself may have moved it elsewhere.
func ownsVecs(box *[]Vec, vecs []Vec) bool {
	v := *box
	return cap(vecs) > 0 && len(v) > 0 && &v[:1][0] == &vecs[:1][0]
}

// bios holds put bios for AllocBio (the bio_set mempool).
var bios sync.Pool

// newBio returns a zero Bio, a put one if there is one.
func newBio() *Bio {
	if b, ok := bios.Get().(*Bio); ok {
		return b
	}
	return new(Bio)
}

// Put releases the bio and its vector to their pools (bio_put). The bio
// and its Vecs must not be used afterwards, and it must be put once only;
// EndIO handlers that own their bios call it last. A bio that is never put
// is left to the garbage collector. Put does nothing to a bio that
// AllocBio did not make.
func (b *Bio) Put() {
	box := b.box
	if box == nil {
		return
	}
	if ownsVecs(box, b.Vecs) {
		putVecs(box, len(b.Vecs))
	} else {
		putVecs(box, len(*box))
	}
	*b = Bio{}
	bios.Put(b)
}
