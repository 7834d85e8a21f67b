package oracle

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestMkfsFsckStat(t *testing.T) {
	img := MkfsImage(t, MkfsOptions{SizeBytes: 4 << 20, BlockSize: 1024, InodeSize: 128})
	RequireClean(t, img)

	sb := DumpSuper(t, img)
	for k, want := range map[string]string{"Block size": "1024", "Inode size": "128", "Block count": "4096", "Filesystem magic number": "0xEF53"} {
		if got := sb[k]; got != want {
			t.Errorf("dumpe2fs %q: got %q, want %q", k, got, want)
		}
	}
	st := DebugfsStat(t, img, "/")
	if st.Ino != 2 || st.Type != "directory" || st.Links != 3 || st.Mode != 0o755 || st.Size != 1024 {
		t.Errorf("stat /: got ino %d type %q links %d mode %o size %d, want 2 directory 3 755 1024", st.Ino, st.Type, st.Links, st.Mode, st.Size)
	}
	if st.Mtime == 0 || st.Blocks == "" {
		t.Errorf("stat /: got mtime %d blocks %q, want both set", st.Mtime, st.Blocks)
	}
	groups := DumpGroups(t, img)
	if len(groups) != 1 || !groups[0].Primary || groups[0].Superblock.First != 1 || !groups[0].InodeTable.Present() {
		t.Errorf("groups: got %+v, want one group with the primary superblock at 1", groups)
	}
	if got := groups[0].FreeBlocks; sb["Free blocks"] != strconv.FormatUint(got, 10) {
		t.Errorf("group 0 free blocks %d, superblock says %s", got, sb["Free blocks"])
	}

	// Break the magic number: e2fsck must complain.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0, 0}, 1024+56); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if ok, out := Fsck(t, img); ok {
		t.Errorf("e2fsck finds an image without magic clean:\n%s", out)
	}
}

func TestDebugfsDump(t *testing.T) {
	src := t.TempDir()
	paths := GenerateTree(t, src, TreeSpec{Seed: 7, FilesPerDir: 3, Sizes: []int64{0, 5000, 70000}})
	if len(paths) != 3 {
		t.Fatalf("GenerateTree made %v, want 3 files", paths)
	}
	img := MkfsImage(t, MkfsOptions{SizeBytes: 4 << 20, FromDir: src})
	RequireClean(t, img)
	for _, p := range paths {
		want, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			t.Fatal(err)
		}
		if got := DebugfsDump(t, img, "/"+p); string(got) != string(want) {
			t.Errorf("dump %s: got %d bytes, want %d bytes equal to the source", p, len(got), len(want))
		}
		if st := DebugfsStat(t, img, "/"+p); st.Size != uint64(len(want)) || st.Type != "regular" {
			t.Errorf("stat %s: got size %d type %q, want %d regular", p, st.Size, st.Type, len(want))
		}
	}
	if _, errs := DebugfsOutput(t, img, "stat /missing"); !strings.Contains(errs, "not found") {
		t.Errorf("stat of a missing file: got stderr %q, want a not-found error", errs)
	}
}

func TestGenerateTreeDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	pa := GenerateTree(t, a, DefaultTree)
	pb := GenerateTree(t, b, DefaultTree)
	if strings.Join(pa, "\n") != strings.Join(pb, "\n") {
		t.Fatalf("two runs made different paths:\n%v\n%v", pa, pb)
	}
	if diffs, err := DiffTrees(a, b, CompareOptions{Owners: true, Times: true}); err != nil || len(diffs) != 0 {
		t.Fatalf("two runs of the same spec differ: %v %v", diffs, err)
	}
	spec := DefaultTree
	spec.Seed = 2
	GenerateTree(t, c, spec)
	diffs, err := DiffTrees(a, c, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) == 0 {
		t.Fatalf("trees of different seeds compare equal")
	}
	for _, d := range diffs {
		if !strings.Contains(d, "contents differ") {
			t.Errorf("trees of different seeds: unexpected difference %q, want only contents", d)
		}
	}

	// Break one thing of each kind the comparison checks.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(b, "f00-0"), 0o666))
	must(os.Remove(filepath.Join(b, "link-short")))
	must(os.Symlink("elsewhere", filepath.Join(b, "link-short")))
	must(os.Remove(filepath.Join(b, "hard-b")))
	must(os.WriteFile(filepath.Join(b, "hard-b"), []byte("x"), 0o644))
	must(os.Remove(filepath.Join(b, "fifo")))
	diffs, err = DiffTrees(a, b, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(diffs, "\n")
	for _, want := range []string{"f00-0: mode", "link-short: symlink target", "hard-a: hard links", "hard-b: size", "fifo: only in " + a} {
		if !strings.Contains(got, want) {
			t.Errorf("DiffTrees after breaking the copy: missing %q in:\n%s", want, got)
		}
	}
}

func TestLoopMount(t *testing.T) {
	src := t.TempDir()
	spec := DefaultTree
	spec.Depth, spec.Sizes = 1, []int64{0, 1, 4097, 70000}
	GenerateTree(t, src, spec)
	img := MkfsImage(t, MkfsOptions{SizeBytes: 16 << 20, FromDir: src})
	dir := LoopMount(t, img, true)
	before := LoopStats(t, dir)
	CompareTrees(t, src, dir, CompareOptions{Times: true, Ignore: []string{"lost+found"}})
	after := LoopStats(t, dir)
	if d := after.Sub(before); d.ReadIOs == 0 {
		t.Errorf("reading the whole tree made no read requests on %s", LoopDevice(t, dir))
	}
	if d := after.Sub(before); d.WriteIOs != 0 {
		t.Errorf("a read-only mount made %d write requests", d.WriteIOs)
	}
	Umount(t, dir)
	RequireClean(t, img)
}

func TestLoopMountWrite(t *testing.T) {
	img := MkfsImage(t, MkfsOptions{SizeBytes: 8 << 20})
	dir := LoopMount(t, img, false)
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hello, world\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Umount(t, dir)
	RequireClean(t, img)
	if got := string(DebugfsDump(t, img, "/hello")); got != "hello, world\n" {
		t.Errorf("dump /hello after a kernel write: got %q", got)
	}
}

func TestParseBlockStat(t *testing.T) {
	s, err := ParseBlockStat("     120        3     4000       50       7        1      56      9        0      100      150   0 0 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.ReadIOs != 120 || s.ReadSectors != 4000 || s.WriteIOs != 7 || s.WriteSectors != 56 {
		t.Errorf("got %+v, want reads 120 (4000 sectors), writes 7 (56 sectors)", s)
	}
	if _, err := ParseBlockStat("1 2 3"); err == nil {
		t.Errorf("a short stat line parsed without error")
	}
}

func TestCorpus(t *testing.T) {
	imgs := Corpus(t)
	if len(imgs) < 100 {
		t.Fatalf("got %d corpus images, want the full index (236)", len(imgs))
	}
	var plain *CorpusImage
	for i := range imgs {
		c := &imgs[i]
		if c.Name == "" || c.Class == "" || c.LinuxExt2Driver == "" {
			t.Errorf("row %d: got %+v, want name, class and driver set", i, *c)
		}
		if plain == nil && c.Class == "ext2" && c.FsckClean() && c.RawBytes > 0 && c.RawBytes <= 8<<20 {
			plain = c
		}
	}
	if plain == nil {
		t.Fatal("no clean ext2 image in the corpus")
	}
	img := plain.Image(t)
	st, err := os.Stat(img)
	if err != nil || st.Size() != plain.RawBytes {
		t.Fatalf("gunzipped %s: got %v %v, want %d bytes", plain.File, st, err, plain.RawBytes)
	}
	if ok, out := Fsck(t, img); !ok {
		t.Errorf("%s: INDEX.tsv says e2fsck exits 0, got:\n%s", plain.Name, out)
	}
}
