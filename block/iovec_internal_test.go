package block

import (
	"bytes"
	"path/filepath"
	"testing"
	"unsafe"
)

// TestIovecsJoinAdjacentBuffers: buffers that follow each other in memory
// become one iovec; others stay apart; empty ones are dropped.
func TestIovecsJoinAdjacentBuffers(t *testing.T) {
	big := make([]byte, 4*4096)
	other := make([]byte, 4096)
	tests := []struct {
		name    string
		bufs    [][]byte
		wantLen []uint64
	}{
		{"four adjacent pages", [][]byte{big[:4096], big[4096:8192], big[8192:12288], big[12288:]}, []uint64{16384}},
		{"a gap between pages", [][]byte{big[:4096], big[8192:12288]}, []uint64{4096, 4096}},
		{"adjacent, then elsewhere, then adjacent", [][]byte{big[:512], big[512:4096], other, big[4096:8192], big[8192:8704]}, []uint64{4096, 4096, 4608}},
		{"empty buffers dropped", [][]byte{big[:0], big[:4096], {}, big[4096:8192]}, []uint64{8192}},
		{"out of order", [][]byte{big[4096:8192], big[:4096]}, []uint64{4096, 4096}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iov := iovecs(tc.bufs)
			var got []uint64
			for _, v := range iov {
				got = append(got, v.Len)
			}
			if len(got) != len(tc.wantLen) {
				t.Fatalf("iovec lengths %v, want %v", got, tc.wantLen)
			}
			for i := range got {
				if got[i] != tc.wantLen[i] {
					t.Fatalf("iovec lengths %v, want %v", got, tc.wantLen)
				}
			}
			// Each iovec starts at the first byte of its first buffer.
			var firsts []*byte
			for i, b := range tc.bufs {
				if len(b) == 0 {
					continue
				}
				if i == 0 || len(firsts) == 0 || !follows(tc.bufs, i) {
					firsts = append(firsts, unsafe.SliceData(b))
				}
			}
			for i, v := range iov {
				if v.Base != firsts[i] {
					t.Errorf("iovec %d starts at %p, want %p", i, v.Base, firsts[i])
				}
			}
		})
	}
}

// follows reports whether bufs[i] starts where the previous non-empty
// buffer ends.
func follows(bufs [][]byte, i int) bool {
	for j := i - 1; j >= 0; j-- {
		if len(bufs[j]) == 0 {
			continue
		}
		return uintptr(unsafe.Pointer(unsafe.SliceData(bufs[j])))+uintptr(len(bufs[j])) == uintptr(unsafe.Pointer(unsafe.SliceData(bufs[i])))
	}
	return false
}

// TestFileJoinedVectorRoundTrip writes and reads 3,000 sector-sized
// pieces of one buffer (more than IOV_MAX pieces, one iovec once
// joined) and pieces of separate buffers, and reads back what was
// written.
func TestFileJoinedVectorRoundTrip(t *testing.T) {
	f, err := CreateFile(filepath.Join(t.TempDir(), "img"), 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const pieces = 3000
	src := make([]byte, pieces*SectorSize)
	for i := range src {
		src[i] = byte(i*7 + i>>9)
	}
	var bufs [][]byte
	for i := 0; i < pieces; i++ {
		if i%1000 == 999 {
			// A separate buffer now and then: the vector joins in runs.
			bufs = append(bufs, append([]byte(nil), src[i*SectorSize:(i+1)*SectorSize]...))
			continue
		}
		bufs = append(bufs, src[i*SectorSize:(i+1)*SectorSize])
	}
	if err := f.WriteVecAt(bufs, 8192); err != nil {
		t.Fatalf("WriteVecAt: %v", err)
	}
	dst := make([]byte, len(src))
	var rbufs [][]byte
	for i := 0; i < pieces; i++ {
		rbufs = append(rbufs, dst[i*SectorSize:(i+1)*SectorSize])
	}
	if err := f.ReadVecAt(rbufs, 8192); err != nil {
		t.Fatalf("ReadVecAt: %v", err)
	}
	if !bytes.Equal(dst, src) {
		t.Fatal("read back differs from what was written")
	}
}
