package ext2

import (
	"fmt"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestSequentialLayoutBatched writes a file sequentially in writes of
// several pages, whose blocks WriteBeginBatch allocates a run at a time,
// and checks that it gets the layout a page-at-a-time writer gets (see
// TestSequentialLayout): data blocks 0-11, the indirect block, then data
// 12 onwards, all contiguous, and e2fsck finds the image clean.
func TestSequentialLayoutBatched(t *testing.T) {
	for _, chunk := range []int{4096, 8192, 128 << 10, 300 << 10} {
		t.Run(fmt.Sprintf("writes of %d bytes", chunk), func(t *testing.T) {
			img := emptyFilesImage(t, 1024, 128, 8<<20, "f")
			fs := mountImage(t, img, Options{})
			f := openPath(t, fs, "f")
			data := pattern(1, 300*1024)
			for off := 0; off < len(data); off += chunk {
				if _, err := f.WriteAt(data[off:min(off+chunk, len(data))], int64(off)); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			st := oracle.DebugfsStat(t, img, "/f")
			var start int
			if _, err := fmt.Sscanf(st.Blocks, "(0-11):%d", &start); err != nil {
				t.Fatalf("debugfs BLOCKS %q: %v", st.Blocks, err)
			}
			want := fmt.Sprintf("(0-11):%d-%d, (IND):%d, (12-267):%d-%d, (DIND):%d, (IND):%d, (268-299):%d-%d",
				start, start+11, start+12, start+13, start+13+255, start+269, start+270, start+271, start+271+31)
			if st.Blocks != want {
				t.Errorf("layout:\n got %s\nwant %s", st.Blocks, want)
			}
			if got, want := st.Blockcount, uint64(303*2); got != want {
				t.Errorf("i_blocks = %d, want %d", got, want)
			}
			oracle.RequireClean(t, img)
		})
	}
}
