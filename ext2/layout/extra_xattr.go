package layout

// Encode writes the header into b[:XattrHeaderSize], the inverse of
// DecodeXattrHeader. It panics if b is shorter than XattrHeaderSize.
// (Added by the ext2 package, which lowers h_refcount when an inode that
// shares an xattr block is deleted.)
func (h *XattrHeader) Encode(b []byte) {
	_ = b[XattrHeaderSize-1]
	e := encoder{b: b[:XattrHeaderSize]}
	e.u32(h.Magic)
	e.u32(h.Refcount)
	e.u32(h.Blocks)
	e.u32(h.Hash)
	e.u32(h.Checksum)
	for _, v := range h.Reserved {
		e.u32(v)
	}
}
