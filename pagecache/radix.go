package pagecache

import (
	"math"
	"math/bits"
)

// The mapping's index is a radix tree with per-slot tag bitmaps, as
// lib/radix-tree.c was under the address_space of Linux 2.6.12 (and the
// XArray is today). We chose it over an ordered B-tree because the tag
// bitmaps answer "next page carrying tag T at or after i" directly: a
// subtree without the tag is skipped by one bit test, so LookupTag costs
// O(height + k) node visits for k results, however many untagged pages lie
// between them (a B-tree would need one tree per tag to do as well, and
// an update of three trees per flag change). Dense file offsets also give
// compact 64-slot leaves. The height grows with the largest index, at most
// ceil(51/6) = 9 levels for MaxIndex.
//
// The tree is not safe for concurrent use; Mapping.mu guards it.

const (
	radixShift = 6
	radixSize  = 1 << radixShift
	radixMask  = radixSize - 1
)

// MaxIndex is the largest page index a mapping holds: the page of the
// largest int64 byte offset.
const MaxIndex = math.MaxInt64 >> PageShift

type radixNode struct {
	shift   uint   // index bits below this node's slots; 0 for leaves
	present uint64 // bit i: slot i is in use
	tags    [numTags]uint64
	child   [radixSize]*radixNode // interior nodes
	page    [radixSize]*Page      // leaves
}

// maxIndex is the largest index a node at shift can hold, counted from its
// first index.
func maxIndexAt(shift uint) int64 {
	if shift+radixShift >= 63 {
		return math.MaxInt64
	}
	return int64(radixSize)<<shift - 1
}

type radixTree struct {
	root  *radixNode
	count int
}

// extend grows the tree until the root covers index
// (radix_tree_extend).
func (t *radixTree) extend(index int64) {
	if t.root == nil {
		var shift uint
		for index > maxIndexAt(shift) {
			shift += radixShift
		}
		t.root = &radixNode{shift: shift}
		return
	}
	for index > maxIndexAt(t.root.shift) {
		old := t.root
		n := &radixNode{shift: old.shift + radixShift, present: 1}
		n.child[0] = old
		for tg := range n.tags {
			if old.tags[tg] != 0 {
				n.tags[tg] = 1
			}
		}
		t.root = n
	}
}

// insert puts p at index and reports false if the slot is taken
// (radix_tree_insert).
func (t *radixTree) insert(index int64, p *Page) bool {
	t.extend(index)
	n := t.root
	for n.shift > 0 {
		i := (index >> n.shift) & radixMask
		if n.child[i] == nil {
			n.child[i] = &radixNode{shift: n.shift - radixShift}
			n.present |= 1 << i
		}
		n = n.child[i]
	}
	i := index & radixMask
	if n.page[i] != nil {
		return false
	}
	n.page[i] = p
	n.present |= 1 << i
	t.count++
	return true
}

// path fills nodes with the nodes from the root to the leaf holding index
// and returns how many there are, or 0 when the index is not present.
func (t *radixTree) path(index int64, nodes *[12]*radixNode) int {
	n := t.root
	if n == nil || index < 0 || index > maxIndexAt(n.shift) {
		return 0
	}
	d := 0
	for {
		nodes[d] = n
		d++
		if n.shift == 0 {
			break
		}
		n = n.child[(index>>n.shift)&radixMask]
		if n == nil {
			return 0
		}
	}
	if nodes[d-1].page[index&radixMask] == nil {
		return 0
	}
	return d
}

// lookup returns the page at index or nil (radix_tree_lookup).
func (t *radixTree) lookup(index int64) *Page {
	n := t.root
	if n == nil || index < 0 || index > maxIndexAt(n.shift) {
		return nil
	}
	for n.shift > 0 {
		n = n.child[(index>>n.shift)&radixMask]
		if n == nil {
			return nil
		}
	}
	return n.page[index&radixMask]
}

// setTag tags the page at index and every node above it
// (radix_tree_tag_set).
func (t *radixTree) setTag(index int64, tag Tag) {
	var nodes [12]*radixNode
	d := t.path(index, &nodes)
	for i := 0; i < d; i++ {
		n := nodes[i]
		n.tags[tag] |= 1 << ((index >> n.shift) & radixMask)
	}
}

// clearTag untags the page at index and clears the tag of each node above
// it whose subtree no longer carries it (radix_tree_tag_clear).
func (t *radixTree) clearTag(index int64, tag Tag) {
	var nodes [12]*radixNode
	d := t.path(index, &nodes)
	for i := d - 1; i >= 0; i-- {
		n := nodes[i]
		n.tags[tag] &^= 1 << ((index >> n.shift) & radixMask)
		if n.tags[tag] != 0 {
			return
		}
	}
}

// getTag reports whether the page at index carries tag
// (radix_tree_tag_get).
func (t *radixTree) getTag(index int64, tag Tag) bool {
	var nodes [12]*radixNode
	d := t.path(index, &nodes)
	if d == 0 {
		return false
	}
	return nodes[d-1].tags[tag]&(1<<(index&radixMask)) != 0
}

// tagged reports whether any page carries tag (radix_tree_tagged).
func (t *radixTree) tagged(tag Tag) bool {
	return t.root != nil && t.root.tags[tag] != 0
}

// delete removes the page at index with its tags, freeing nodes left
// empty and shrinking the height (radix_tree_delete, radix_tree_shrink).
func (t *radixTree) delete(index int64) *Page {
	var nodes [12]*radixNode
	d := t.path(index, &nodes)
	if d == 0 {
		return nil
	}
	leaf := nodes[d-1]
	p := leaf.page[index&radixMask]
	for tg := Tag(0); tg < numTags; tg++ {
		if leaf.tags[tg]&(1<<(index&radixMask)) != 0 {
			t.clearTag(index, tg)
		}
	}
	leaf.page[index&radixMask] = nil
	for i := d - 1; i >= 0; i-- {
		n := nodes[i]
		slot := (index >> n.shift) & radixMask
		n.present &^= 1 << slot
		if n.shift > 0 {
			n.child[slot] = nil
		}
		if n.present != 0 {
			break
		}
		if i == 0 {
			t.root = nil
		}
	}
	t.count--
	for t.root != nil && t.root.shift > 0 && t.root.present == 1 {
		t.root = t.root.child[0]
	}
	return p
}

// gather appends to out the pages in [start, end], only those carrying tag
// when tag < numTags, in index order, until out holds max pages
// (radix_tree_gang_lookup, radix_tree_gang_lookup_tag). It reports whether
// it stopped because out was full.
func (t *radixTree) gather(start, end int64, tag Tag, max int, out *[]*Page) bool {
	if t.root == nil || start > end || max <= 0 {
		return false
	}
	if start < 0 {
		start = 0
	}
	if end > maxIndexAt(t.root.shift) {
		end = maxIndexAt(t.root.shift)
	}
	if start > end {
		return false
	}
	return t.root.gather(0, start, end, tag, max, out)
}

func (n *radixNode) gather(base, start, end int64, tag Tag, max int, out *[]*Page) bool {
	mask := n.present
	if tag < numTags {
		mask = n.tags[tag]
	}
	if start > base {
		first := uint((start - base) >> n.shift)
		mask &^= (1 << first) - 1
	}
	for mask != 0 {
		i := uint(bits.TrailingZeros64(mask))
		mask &^= 1 << i
		slotBase := base + int64(i)<<n.shift
		if slotBase > end {
			return false
		}
		if n.shift == 0 {
			*out = append(*out, n.page[i])
			if len(*out) >= max {
				return true
			}
			continue
		}
		if n.child[i].gather(slotBase, start, end, tag, max, out) {
			return true
		}
	}
	return false
}
