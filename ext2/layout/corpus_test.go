package layout

import (
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// corpusDir holds e2fsprogs' test images (see its README.md). They are
// read in place and never copied into the repository.
const corpusDir = "/work/shared/corpus/e2fsprogs-tests"

// corpusLimit is how much of each image the test decompresses: enough for
// the superblock, the descriptors, the first inode tables and, on most
// images, the root directory.
const corpusLimit = 32 << 20

// corpusRow is one line of the corpus INDEX.tsv.
type corpusRow struct {
	file, class                    string
	fsckRC, dumpRC                 int
	blockSize, blocks, inodes, rev string
	features                       string
}

func readCorpusIndex(t *testing.T) []corpusRow {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "INDEX.tsv"))
	if err != nil {
		t.Skipf("skipping: e2fsprogs image corpus not available: %v", err)
	}
	defer f.Close()
	var rows []corpusRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 13 || c[0] == "file" {
			continue
		}
		fsck, _ := strconv.Atoi(c[5])
		dump, _ := strconv.Atoi(c[11])
		rows = append(rows, corpusRow{file: c[0], class: c[4], fsckRC: fsck, dumpRC: dump,
			blockSize: c[7], blocks: c[8], inodes: c[9], rev: c[10], features: c[12]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// lazyImage decompresses a gzip image only as far as the test reads.
type lazyImage struct {
	t  *testing.T
	zr io.Reader
	b  []byte
}

func openGz(t *testing.T, path string) *lazyImage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return &lazyImage{t: t, zr: io.LimitReader(zr, corpusLimit)}
}

// bytes returns image bytes [off, off+n), or nil if the image (or the
// part of it the test reads) ends first.
func (im *lazyImage) bytes(off, n uint64) []byte {
	end := off + n
	if end > corpusLimit {
		return nil
	}
	if need := int64(end) - int64(len(im.b)); need > 0 {
		buf := make([]byte, need)
		got, err := io.ReadFull(im.zr, buf)
		im.b = append(im.b, buf[:got]...)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			im.t.Fatal(err)
		}
	}
	if end > uint64(len(im.b)) {
		return nil
	}
	return im.b[off:end]
}

// TestCorpus decodes the primary superblock of every e2fsprogs test image
// and compares it with the dumpe2fs -h facts recorded in INDEX.tsv. Where
// the superblock validates, it decodes the group descriptors, the root
// inode and the root directory's first block. Corrupt images may fail
// validation or parsing, but nothing may panic, and everything decoded
// must encode back to the same bytes. Images e2fsck -fn finds clean must
// validate, and their root directories must parse.
func TestCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping corpus decode in -short mode")
	}
	rows := readCorpusIndex(t)
	var validated, dirsParsed atomic.Int64
	// The images run in parallel inside one group, so the summary below
	// is logged after all of them finish.
	t.Run("images", func(t *testing.T) {
		for _, row := range rows {
			t.Run(strings.TrimSuffix(row.file, ".img.gz"), func(t *testing.T) {
				t.Parallel()
				checkCorpusRow(t, row, &validated, &dirsParsed)
			})
		}
	})
	t.Logf("%d images, %d superblocks valid, %d root directories parsed", len(rows), validated.Load(), dirsParsed.Load())
}

// checkCorpusRow checks one image of the corpus.
func checkCorpusRow(t *testing.T, row corpusRow, validated, dirsParsed *atomic.Int64) {
	img := openGz(t, filepath.Join(corpusDir, row.file))
	raw := img.bytes(SuperblockOffset, SuperblockSize)
	if raw == nil {
		t.Skipf("image too small to hold a primary superblock")
	}
	sb, err := DecodeSuperblock(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, SuperblockSize)
	sb.Encode(out)
	if string(out) != string(raw) {
		t.Fatalf("superblock round trip differs at %v", diffIdx(out, raw))
	}
	clean := row.fsckRC == 0 && row.class != "unreadable-sb"
	if row.dumpRC == 0 && row.class != "unreadable-sb" && sb.Magic == Magic {
		got := strings.Join(sb.FeatureNames(), " ")
		if got == "" {
			got = "(none)"
		}
		if got != row.features {
			t.Errorf("features: got %q, want %q (dumpe2fs)", got, row.features)
		}
		checks := []struct {
			name string
			got  uint64
			want string
		}{
			{"block size", uint64(sb.BlockSize()), row.blockSize},
			{"blocks", sb.BlocksCount(), row.blocks},
			{"inodes", uint64(sb.InodesCount), row.inodes},
			{"revision", uint64(sb.RevLevel), row.rev},
		}
		for _, c := range checks {
			if c.want != "" && strconv.FormatUint(c.got, 10) != c.want {
				t.Errorf("%s: got %d, want %s (dumpe2fs)", c.name, c.got, c.want)
			}
		}
	}
	if err := sb.Validate(); err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Validate: %v does not wrap ErrCorrupt", err)
		}
		if clean {
			t.Errorf("clean image fails Validate: %v", err)
		}
		t.Logf("Validate: %v", err)
		return
	}
	validated.Add(1)
	checkCorpusImage(t, img, sb, clean, dirsParsed)
}

func checkCorpusImage(t *testing.T, img *lazyImage, sb *Superblock, clean bool, dirsParsed *atomic.Int64) {
	t.Helper()
	bs := sb.BlockSize()
	groups, _ := sb.GroupCount()
	ds := sb.DescSize()
	gdt := (int(sb.FirstDataBlock) + 1) * bs
	var gd0 *GroupDesc
	for g := 0; g < int(groups); g++ {
		raw := img.bytes(uint64(gdt+g*ds), GroupDescSize)
		if raw == nil {
			return
		}
		gd, err := DecodeGroupDesc(raw)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, GroupDescSize)
		gd.Encode(out)
		if string(out) != string(raw) {
			t.Fatalf("group %d round trip differs at %v", g, diffIdx(out, raw))
		}
		if g == 0 {
			gd0 = gd
		}
	}
	if gd0 == nil {
		return
	}
	is := sb.InodeSize()
	raw := img.bytes(uint64(gd0.InodeTable)*uint64(bs)+uint64(RootIno-1)*uint64(is), uint64(is))
	if raw == nil {
		return
	}
	root, err := DecodeInode(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, is)
	root.Encode(out)
	if string(out) != string(raw) {
		t.Fatalf("root inode round trip differs at %v", diffIdx(out, raw))
	}
	if !root.IsDir() || root.Flags&(FlExtents|FlInlineData) != 0 || root.Block[0] == 0 {
		return
	}
	blk := img.bytes(uint64(root.Block[0])*uint64(bs), uint64(bs))
	if blk == nil {
		return
	}
	ents, err := ParseDirBlock(blk, sb.HasIncompat(IncompatFiletype), sb.InodesCount)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("ParseDirBlock: %v does not wrap ErrCorrupt", err)
		}
		if clean {
			t.Errorf("clean image: root directory block %d: %v", root.Block[0], err)
		}
		t.Logf("root directory block %d: %v", root.Block[0], err)
		return
	}
	dirsParsed.Add(1)
	if clean && (len(ents) < 2 || ents[0].Name != "." || ents[1].Name != "..") {
		t.Errorf("clean image: root directory starts %v, want . and ..", ents[:min(2, len(ents))])
	}
}
