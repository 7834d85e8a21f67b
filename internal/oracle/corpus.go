package oracle

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// CorpusEnv names an environment variable that, when set, is the folder of
// the e2fsprogs test image corpus, overriding the default
// ../shared/corpus/e2fsprogs-tests beside the repository root.
const CorpusEnv = "MPAGE_CORPUS"

// CorpusImage is one row of the corpus INDEX.tsv.
type CorpusImage struct {
	Name        string // test name, e.g. "f_dup"
	File        string // e.g. "f_dup.img.gz"
	Path        string // absolute path of the gzipped image
	RawBytes    int64  // size of the image once gunzipped
	Class       string // "ext2", "ext3 (journal)", "ext4-features", "unreadable-sb"
	FsckRC      int    // e2fsck 1.47.0 -fn exit code; 124 for its 60 s timeout
	Category    string
	BlockSize   int   // 0 where dumpe2fs could not read the superblock
	Blocks      int64 // s_blocks_count
	Inodes      int64 // s_inodes_count
	Rev         int
	Features    []string
	Description string // the test's one-line description
	// LinuxExt2Driver is "rw", "ro-only", "no" or "unknown(...)": whether
	// Linux's ext2 driver would mount the image, going by feature flags.
	LinuxExt2Driver string
}

// FsckClean reports whether e2fsck -fn found the image clean.
func (c CorpusImage) FsckClean() bool { return c.FsckRC == 0 }

// HasFeature reports whether dumpe2fs listed the named feature.
func (c CorpusImage) HasFeature(name string) bool {
	for _, f := range c.Features {
		if f == name {
			return true
		}
	}
	return false
}

// Image gunzips the image into a new t.TempDir and returns its path.
func (c CorpusImage) Image(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(c.File, ".gz"))
	if err := gunzip(c.Path, out); err != nil {
		t.Fatalf("oracle: corpus image %s: %v", c.File, err)
	}
	return out
}

func gunzip(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, zr)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// RepoRoot returns the directory holding the module's go.mod, found by
// walking up from the working directory (a test's package directory), or
// "" if there is none.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !st.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// CorpusDir returns the corpus folder: $MPAGE_CORPUS, or
// ../shared/corpus/e2fsprogs-tests from the repository root. It skips the
// test when the folder has no INDEX.tsv.
func CorpusDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(CorpusEnv)
	if dir == "" {
		root := RepoRoot()
		if root == "" {
			t.Skip("oracle: cannot find the repository root (go.mod) to locate the corpus; set " + CorpusEnv)
		}
		dir = filepath.Join(root, "..", "shared", "corpus", "e2fsprogs-tests")
	}
	if _, err := os.Stat(filepath.Join(dir, "INDEX.tsv")); err != nil {
		t.Skipf("oracle: no corpus of e2fsprogs test images at %s (set %s): %v", dir, CorpusEnv, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	return abs
}

var corpusCache struct {
	sync.Mutex // guards the fields below
	dir        string
	images     []CorpusImage
}

// Corpus returns the images listed in the corpus INDEX.tsv, in its order.
// It skips the test when the corpus is absent. The returned slice is the
// caller's to keep.
func Corpus(t testing.TB) []CorpusImage {
	t.Helper()
	dir := CorpusDir(t)
	corpusCache.Lock()
	defer corpusCache.Unlock()
	if corpusCache.dir != dir {
		b, err := os.ReadFile(filepath.Join(dir, "INDEX.tsv"))
		if err != nil {
			t.Fatalf("oracle: %v", err)
		}
		imgs, err := parseCorpusIndex(dir, string(b))
		if err != nil {
			t.Fatalf("oracle: %s/INDEX.tsv: %v", dir, err)
		}
		corpusCache.dir, corpusCache.images = dir, imgs
	}
	return append([]CorpusImage(nil), corpusCache.images...)
}

// parseCorpusIndex parses INDEX.tsv by its header's column names.
func parseCorpusIndex(dir, text string) ([]CorpusImage, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) < 2 {
		return nil, errorf("no rows")
	}
	col := map[string]int{}
	for i, h := range strings.Split(lines[0], "\t") {
		if strings.HasPrefix(h, "e2fsck_fn_rc") {
			h = "e2fsck_fn_rc"
		}
		col[h] = i
	}
	for _, need := range []string{"file", "class", "e2fsck_fn_rc", "features", "linux_ext2_driver"} {
		if _, ok := col[need]; !ok {
			return nil, errorf("no column %q in header %q", need, lines[0])
		}
	}
	var out []CorpusImage
	for n, line := range lines[1:] {
		f := strings.Split(line, "\t")
		get := func(k string) string {
			if i, ok := col[k]; ok && i < len(f) {
				return strings.TrimSpace(f[i])
			}
			return ""
		}
		num := func(k string) int64 { v, _ := strconv.ParseInt(get(k), 10, 64); return v }
		file := get("file")
		if file == "" {
			return nil, errorf("row %d has no file name", n+2)
		}
		feats := strings.Fields(get("features"))
		if len(feats) == 1 && feats[0] == "(none)" {
			feats = nil
		}
		rc, err := strconv.Atoi(get("e2fsck_fn_rc"))
		if err != nil {
			return nil, errorf("row %d (%s): e2fsck exit code: %v", n+2, file, err)
		}
		out = append(out, CorpusImage{
			Name:            strings.TrimSuffix(file, ".img.gz"),
			File:            file,
			Path:            filepath.Join(dir, file),
			RawBytes:        num("raw_bytes"),
			Class:           get("class"),
			FsckRC:          rc,
			Category:        get("category"),
			BlockSize:       int(num("blocksize")),
			Blocks:          num("blocks"),
			Inodes:          num("inodes"),
			Rev:             int(num("rev")),
			Features:        feats,
			Description:     get("description"),
			LinuxExt2Driver: get("linux_ext2_driver"),
		})
	}
	return out, nil
}
