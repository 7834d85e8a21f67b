package block

import (
	"fmt"
	"testing"
)

// TestBioVectorGrowsThroughClasses: a bio allocated for n segments takes
// exactly n pages whatever the pool classes are, keeps them in order as
// its vector moves from class to class, and refuses the next one.
func TestBioVectorGrowsThroughClasses(t *testing.T) {
	for _, n := range []int{1, 4, 5, 17, 1024, 1500} {
		t.Run(fmt.Sprintf("%d segments", n), func(t *testing.T) {
			q := NewQueue(NewMemory(64<<20), Config{MaxRequestBytes: 8 << 20})
			t.Cleanup(func() { q.Close() })
			b := q.AllocBio(Read, 0, n)
			bufs := make([][]byte, n)
			for i := range bufs {
				bufs[i] = make([]byte, SectorSize)
				if !b.AddPage(bufs[i], i) {
					t.Fatalf("AddPage %d of %d refused", i, n)
				}
			}
			if b.AddPage(make([]byte, SectorSize), n) {
				t.Fatalf("AddPage %d accepted past the %d segments allocated", n, n)
			}
			if len(b.Vecs) != n {
				t.Fatalf("len(Vecs) = %d, want %d", len(b.Vecs), n)
			}
			for i, v := range b.Vecs {
				if &v.Buf[0] != &bufs[i][0] || v.Page != i {
					t.Fatalf("Vecs[%d] = page %v, not the buffer and page added %d-th", i, v.Page, i)
				}
			}
			box := b.box
			b.Put()
			if b.Vecs != nil || b.box != nil {
				t.Errorf("after Put: Vecs %d long, box %p; want both nil", len(b.Vecs), b.box)
			}
			for i, v := range (*box)[:cap(*box)] {
				if v.Buf != nil || v.Page != nil {
					t.Fatalf("the put vector still holds slot %d (page %v): the pool would keep pages alive", i, v.Page)
				}
			}
		})
	}
}

// TestBioPutAfterCallerAppend: a caller that appended to Vecs itself, past
// the pooled array, leaves the pool nothing it still holds.
func TestBioPutAfterCallerAppend(t *testing.T) {
	q := NewQueue(NewMemory(1<<20), Config{})
	t.Cleanup(func() { q.Close() })
	b := q.AllocBio(Write, 0, 64)
	for i := 0; i < 4; i++ {
		b.AddPage(make([]byte, SectorSize), i)
	}
	box := b.box
	b.Vecs = append(b.Vecs, Vec{Buf: make([]byte, SectorSize), Page: 4}) // moves past the 4-slot class
	if ownsVecs(box, b.Vecs) {
		t.Fatalf("append within the class: the test needs it to move the vector")
	}
	b.Put()
	for i, v := range *box {
		if v.Buf != nil || v.Page != nil {
			t.Errorf("slot %d of the put vector still holds page %v", i, v.Page)
		}
	}
}

// TestPutBioComesBackClean: bios allocated after others were put carry
// nothing of them: no completion, owner data, polled flag, size or pages.
func TestPutBioComesBackClean(t *testing.T) {
	q := NewQueue(NewMemory(1<<20), Config{})
	t.Cleanup(func() { q.Close() })
	for i := 0; i < 100; i++ {
		b := q.AllocBio(Write, 8, 16)
		b.AddPage(make([]byte, 4096), i)
		b.EndIO = func(*Bio, error) { t.Errorf("EndIO of a put bio called") }
		b.Private, b.Polled = i, true
		b.Put()
	}
	for i := 0; i < 100; i++ {
		b := q.AllocBio(Read, 16, 4)
		if b.EndIO != nil || b.Private != nil || b.Polled || b.Size() != 0 || len(b.Vecs) != 0 || b.Op != Read || b.Sector != 16 || b.MaxVecs() != 4 {
			t.Fatalf("bio %d after puts: EndIO set %v, Private %v, Polled %v, size %d, %d vecs, op %v, sector %d, max %d; want a fresh read at 16 for 4",
				i, b.EndIO != nil, b.Private, b.Polled, b.Size(), len(b.Vecs), b.Op, b.Sector, b.MaxVecs())
		}
		if err := q.SubmitWait(func() *Bio { b.AddPage(make([]byte, 4096), nil); return b }()); err != nil {
			t.Fatal(err)
		}
	}
}
