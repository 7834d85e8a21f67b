package scratch

import "testing"

// TestPutClears: a list goes back to its pool empty and cleared, even
// when what was built in it outgrew it, and a later Get has room.
func TestPutClears(t *testing.T) {
	var p Pool[[]byte]
	for _, n := range []int{3, 8} {
		box := p.Get(4)
		if len(*box) != 0 || cap(*box) < 4 {
			t.Fatalf("Get(4): len %d cap %d, want an empty slice with room for 4", len(*box), cap(*box))
		}
		used := *box
		for i := 0; i < n; i++ {
			used = append(used, make([]byte, 1))
		}
		arr := (*box)[:cap(*box)]
		p.Put(box, used)
		if len(*box) != 0 {
			t.Errorf("built %d: box holds %d after Put, want 0", n, len(*box))
		}
		for i, b := range arr {
			if b != nil {
				t.Errorf("built %d: slot %d of the box still holds a buffer", n, i)
			}
		}
	}
	if box := p.Get(64); cap(*box) < 64 {
		t.Errorf("Get(64): cap %d, want at least 64", cap(*box))
	}
}
