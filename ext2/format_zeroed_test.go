package ext2

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/ext2/layout"
)

// TestFormatDeviceZeroed formats zeroed devices with and without
// DeviceZeroed: the images are byte for byte the same (the inode tables
// left unwritten read as the zeros Format would have written), for both
// block sizes and inode sizes; on a device that is not zeroed, an unused
// inode table block keeps its old bytes, so the option skips the writes.
func TestFormatDeviceZeroed(t *testing.T) {
	for _, tc := range []struct{ bs, isz int }{{1024, 128}, {1024, 256}, {4096, 256}} {
		t.Run(fmt.Sprintf("bs=%d,isz=%d", tc.bs, tc.isz), func(t *testing.T) {
			opts := FormatOptions{BlockSize: tc.bs, InodeSize: tc.isz, Time: time.Unix(1700000000, 0), UUID: [16]byte{1}, HashSeed: [16]byte{2}}
			const size = 24 << 20
			full, zeroed := block.NewMemory(size), block.NewMemory(size)
			if err := Format(full, opts); err != nil {
				t.Fatal(err)
			}
			zopts := opts
			zopts.DeviceZeroed = true
			if err := Format(zeroed, zopts); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(full.Bytes(), zeroed.Bytes()) {
				t.Errorf("Format with DeviceZeroed on a zeroed device differs from Format without it")
			}

			// On a device of 0xa5 bytes, the last block of group 0's
			// inode table (no inode in use there) is zeroed by Format
			// and left alone with DeviceZeroed.
			sb, err := layout.DecodeSuperblock(full.Bytes()[1024:2048])
			if err != nil {
				t.Fatal(err)
			}
			gdOff := (int(sb.FirstDataBlock) + 1) * tc.bs
			gd, err := layout.DecodeGroupDesc(full.Bytes()[gdOff : gdOff+32])
			if err != nil {
				t.Fatal(err)
			}
			itBlocks := int(sb.InodesPerGroup) * tc.isz / tc.bs
			last := (int(gd.InodeTable) + itBlocks - 1) * tc.bs
			for _, z := range []bool{false, true} {
				dirty := block.NewMemory(size)
				for i := range dirty.Bytes() {
					dirty.Bytes()[i] = 0xa5
				}
				o := opts
				o.DeviceZeroed = z
				if err := Format(dirty, o); err != nil {
					t.Fatal(err)
				}
				want := byte(0)
				if z {
					want = 0xa5
				}
				if got := dirty.Bytes()[last : last+tc.bs]; !bytes.Equal(got, bytes.Repeat([]byte{want}, tc.bs)) {
					t.Errorf("DeviceZeroed=%v on a device of 0xa5: the last inode table block of group 0 is not all %#x", z, want)
				}
			}
		})
	}
}
