package layout

import "encoding/binary"

// decoder reads little-endian fields one after the other. The caller
// checks the buffer length first; decoder itself does no bounds checks
// beyond Go's.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) u8() uint8 {
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) u16() uint16 {
	v := binary.LittleEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *decoder) u32() uint32 {
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) u64() uint64 {
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) bytes(dst []byte) {
	d.off += copy(dst, d.b[d.off:d.off+len(dst)])
}

// encoder writes little-endian fields one after the other.
type encoder struct {
	b   []byte
	off int
}

func (e *encoder) u8(v uint8) {
	e.b[e.off] = v
	e.off++
}

func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.b[e.off:], v)
	e.off += 2
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.b[e.off:], v)
	e.off += 4
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.b[e.off:], v)
	e.off += 8
}

func (e *encoder) bytes(src []byte) {
	e.off += copy(e.b[e.off:e.off+len(src)], src)
}
