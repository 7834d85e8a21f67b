package ext2fs

import (
	"errors"
	"io/fs"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// debugfsExtents turns debugfs stat's BLOCKS list, e.g. "(0-11):1234-1245,
// (IND):1246, (12):1247", into the data runs, merging runs that continue
// each other in the file and on the device (debugfs breaks a run where an
// indirect block is listed).
func debugfsExtents(t *testing.T, blocks string) []Extent {
	t.Helper()
	var out []Extent
	for _, tok := range strings.Split(blocks, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		l, p, ok := strings.Cut(tok, ":")
		l = strings.Trim(l, "()")
		if !ok || l == "IND" || l == "DIND" || l == "TIND" {
			continue
		}
		rng := func(s string) (int64, int64) {
			a, b, two := strings.Cut(s, "-")
			x, err1 := strconv.ParseInt(a, 10, 64)
			y := x
			var err2 error
			if two {
				y, err2 = strconv.ParseInt(b, 10, 64)
			}
			if err1 != nil || err2 != nil {
				t.Fatalf("cannot parse %q in debugfs BLOCKS %q", tok, blocks)
			}
			return x, y
		}
		l0, l1 := rng(l)
		p0, _ := rng(p)
		e := Extent{Logical: l0, Physical: p0, Count: l1 - l0 + 1}
		if k := len(out) - 1; k >= 0 && out[k].Logical+out[k].Count == e.Logical && out[k].Physical+out[k].Count == e.Physical {
			out[k].Count += e.Count
			continue
		}
		out = append(out, e)
	}
	return out
}

// TestFollowupBlockMap compares BlockMap with debugfs stat for every
// kind of file: contiguous ones past the indirect thresholds, sparse
// ones (a missing indirect block too), fragmented ones, directories,
// slow and fast symlinks, empty files and device nodes.
func TestFollowupBlockMap(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(strconv.Itoa(bs), func(t *testing.T) {
			image, _, paths := treeImage(t, oracle.DefaultTree, bs)
			fsys := mustOpen(t, image, Options{})
			// Written by us: fragmented (even blocks, then odd ones),
			// and sparse past a whole missing indirect block.
			f, err := fsys.Create("frag")
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, bs)
			for _, first := range []int{0, 1} {
				for blk := first; blk < 300; blk += 2 {
					buf[0] = byte(blk)
					if _, err := f.WriteAt(buf, int64(blk*bs)); err != nil {
						t.Fatal(err)
					}
				}
			}
			f.Close()
			s, err := fsys.Create("sparse-far")
			if err != nil {
				t.Fatal(err)
			}
			apb := int64(bs / 4)
			for _, blk := range []int64{3, 12 + apb + 5, 12 + apb + 3*apb + 1} {
				if _, err := s.WriteAt(buf, blk*int64(bs)); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			if err := fsys.Mknod("dev", fs.ModeDevice|0o600, 0x0801); err != nil {
				t.Fatal(err)
			}
			if err := fsys.Close(); err != nil {
				t.Fatal(err)
			}
			fsys = mustOpen(t, image, Options{ReadOnly: true})
			paths = append(paths, "frag", "sparse-far", "dev", ".")
			checked := 0
			for _, p := range paths {
				got, err := fsys.BlockMap(p)
				if err != nil {
					t.Errorf("BlockMap(%s): %v", p, err)
					continue
				}
				st := oracle.DebugfsStat(t, image, "/"+p)
				want := debugfsExtents(t, st.Blocks)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("BlockMap(%s) = %v\nwant (debugfs %q) %v", p, got, st.Blocks, want)
				}
				checked++
				if testing.Verbose() {
					t.Logf("%s: %v", p, got)
				}
			}
			if checked < 20 {
				t.Errorf("compared %d files with debugfs, want at least 20", checked)
			}
			if got, _ := fsys.BlockMap("frag"); len(got) < 100 {
				t.Errorf("BlockMap(frag): %d runs, want a fragmented file", len(got))
			}
			if _, err := fsys.BlockMap("no/such"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("BlockMap(no/such): %v, want ErrNotExist", err)
			}
		})
	}
}
