package oracle

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TreeSpec describes a directory tree for GenerateTree. The zero value
// makes an empty directory; DefaultTree is a small tree with one of
// everything.
type TreeSpec struct {
	Seed        uint64  // seeds file contents; the same spec makes the same tree
	Depth       int     // levels of subdirectories below the root
	DirsPerDir  int     // subdirectories per directory above the last level
	FilesPerDir int     // regular files per directory
	Sizes       []int64 // file sizes, used in turn; default DefaultSizes
	Sparse      bool    // add sparse files: holes at the start, middle and end
	Symlinks    bool    // add fast (short), slow (long) and dangling symlinks
	HardLinks   bool    // add a file with three names in two directories
	Fifo        bool    // add a named pipe
}

// DefaultSizes are file sizes around the block and indirect-block
// boundaries of 1, 2 and 4 KiB blocks, including the empty file.
var DefaultSizes = []int64{0, 1, 100, 1023, 1024, 1025, 4095, 4096, 4097, 12*1024 + 1, 48*1024 + 7, 70000, 300000}

// DefaultTree has every kind of entry GenerateTree makes: 3 levels of
// directories, files of DefaultSizes, sparse files, symlinks, hard links
// and a fifo (about 2 MB in all).
var DefaultTree = TreeSpec{Seed: 1, Depth: 2, DirsPerDir: 2, FilesPerDir: 4, Sparse: true, Symlinks: true, HardLinks: true, Fifo: true}

// treeEpoch is the first modification time GenerateTree gives.
var treeEpoch = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// GenerateTree makes the tree described by spec under dir, which is
// created if needed, and returns the slash-separated paths it made,
// relative to dir, in lexical order. Contents, modes and modification
// times depend only on spec.
func GenerateTree(t testing.TB, dir string, spec TreeSpec) []string {
	t.Helper()
	paths, err := generateTree(dir, spec)
	if err != nil {
		t.Fatalf("oracle: generating tree: %v", err)
	}
	return paths
}

type treeGen struct {
	rng   *rand.Rand
	sizes []int64
	n     int // files made so far
	spec  TreeSpec
	root  string
	paths []string
	dirs  []string // in creation order, for the final directory times
}

var fileModes = []fs.FileMode{0o644, 0o600, 0o755, 0o640, 0o444}

func generateTree(dir string, spec TreeSpec) ([]string, error) {
	g := &treeGen{rng: rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15)), spec: spec, root: dir, sizes: spec.Sizes}
	if len(g.sizes) == 0 {
		g.sizes = DefaultSizes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := g.dir(".", 0); err != nil {
		return nil, err
	}
	if err := g.extras(); err != nil {
		return nil, err
	}
	// Directory times last, deepest first, since adding entries changes them.
	for i := len(g.dirs) - 1; i >= 0; i-- {
		ts := treeEpoch.Add(time.Duration(i) * time.Hour)
		if err := os.Chtimes(filepath.Join(dir, g.dirs[i]), ts, ts); err != nil {
			return nil, err
		}
	}
	sort.Strings(g.paths)
	return g.paths, nil
}

func (g *treeGen) add(rel string) string {
	if rel != "." {
		g.paths = append(g.paths, filepath.ToSlash(rel))
	}
	return filepath.Join(g.root, rel)
}

func (g *treeGen) dir(rel string, level int) error {
	g.dirs = append(g.dirs, rel)
	for i := range g.spec.FilesPerDir {
		size := g.sizes[g.n%len(g.sizes)]
		if err := g.file(filepath.Join(rel, fmt.Sprintf("f%02d-%d", i, size)), size); err != nil {
			return err
		}
	}
	if level >= g.spec.Depth {
		return nil
	}
	for i := range g.spec.DirsPerDir {
		sub := filepath.Join(rel, fmt.Sprintf("d%02d", i))
		mode := fs.FileMode(0o755)
		if i%3 == 2 {
			mode = 0o700
		}
		if err := os.Mkdir(g.add(sub), mode); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(g.root, sub), mode); err != nil { // past the umask
			return err
		}
		if err := g.dir(sub, level+1); err != nil {
			return err
		}
	}
	return nil
}

// file writes size pseudo-random bytes to a new file.
func (g *treeGen) file(rel string, size int64) error {
	buf := make([]byte, size)
	for i := 0; i < len(buf); i += 8 {
		v := g.rng.Uint64()
		for j := 0; j < 8 && i+j < len(buf); j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	return g.write(rel, func(f *os.File) error { _, err := f.Write(buf); return err })
}

// write creates a file with fill, then gives it the next mode and time.
func (g *treeGen) write(rel string, fill func(*os.File) error) error {
	p := g.add(rel)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	mode := fileModes[g.n%len(fileModes)]
	ts := treeEpoch.Add(time.Duration(g.n) * time.Minute)
	g.n++
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	return os.Chtimes(p, ts, ts)
}

func (g *treeGen) extras() error {
	if g.spec.Sparse {
		holes := []struct {
			name string
			data map[int64]int // offset -> length of data
			size int64
		}{
			{"sparse-hole-start", map[int64]int{1 << 20: 5000}, 1<<20 + 5000},
			{"sparse-hole-middle", map[int64]int{0: 4096, 200 << 10: 100}, 200<<10 + 100},
			{"sparse-hole-end", map[int64]int{0: 3000}, 5 << 20},
			{"sparse-all-hole", nil, 100000},
		}
		for _, h := range holes {
			err := g.write(h.name, func(f *os.File) error {
				for off, n := range h.data {
					b := bytes.Repeat([]byte{byte(off>>10) | 1}, n)
					if _, err := f.WriteAt(b, off); err != nil {
						return err
					}
				}
				return f.Truncate(h.size)
			})
			if err != nil {
				return err
			}
		}
	}
	if g.spec.Symlinks {
		links := [][2]string{
			{"link-short", "f00-0"},
			{"link-long", strings.Repeat("long-target/", 10) + "end"}, // 123 bytes: not a fast symlink
			{"link-60", strings.Repeat("s", 60)},                      // the longest that fits in i_block is 59
			{"link-dangling", "does/not/exist"},
			{"link-dir", "d00"},
		}
		for _, l := range links {
			if err := os.Symlink(l[1], g.add(l[0])); err != nil {
				return err
			}
		}
	}
	if g.spec.HardLinks {
		if err := g.file("hard-a", 5000); err != nil {
			return err
		}
		names := []string{"hard-b"}
		if g.spec.Depth > 0 && g.spec.DirsPerDir > 0 {
			names = append(names, filepath.Join("d00", "hard-c"))
		} else {
			names = append(names, "hard-c")
		}
		for _, n := range names {
			if err := os.Link(filepath.Join(g.root, "hard-a"), g.add(n)); err != nil {
				return err
			}
		}
	}
	if g.spec.Fifo {
		p := g.add("fifo")
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o620); err != nil {
			return err
		}
		// A fixed time, as every other entry has: two trees made a
		// second apart must compare equal with Times.
		if err := os.Chtimes(p, treeEpoch, treeEpoch); err != nil {
			return err
		}
	}
	return nil
}

// CompareOptions choose what CompareTrees compares beyond paths, types,
// permission bits, sizes, contents, symlink targets and hard-link
// structure, which it always compares.
type CompareOptions struct {
	Owners bool // uid and gid
	// Times compares modification times, to the second (ext2's
	// resolution), except of symlinks and of the roots themselves (a
	// fresh filesystem's root gains lost+found).
	Times bool
	// Ignore lists slash-separated relative paths left out of the
	// comparison together with everything below them, e.g. "lost+found".
	Ignore []string
}

type treeEntry struct {
	mode     fs.FileMode
	size     int64
	uid, gid uint32
	mtime    int64
	dev, ino uint64
	target   string
	sum      [32]byte
}

func scanTree(root string, opts CompareOptions) (map[string]*treeEntry, error) {
	out := map[string]*treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if slices.Contains(opts.Ignore, rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := &treeEntry{mode: info.Mode(), size: info.Size(), mtime: info.ModTime().Unix()}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			e.uid, e.gid, e.dev, e.ino = st.Uid, st.Gid, uint64(st.Dev), uint64(st.Ino)
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			copy(e.sum[:], h.Sum(nil))
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// DiffTrees compares the trees under a and b and returns one line per
// difference, in path order; nil means the trees agree.
func DiffTrees(a, b string, opts CompareOptions) ([]string, error) {
	ta, err := scanTree(a, opts)
	if err != nil {
		return nil, err
	}
	tb, err := scanTree(b, opts)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for p := range ta {
		names[p] = true
	}
	for p := range tb {
		names[p] = true
	}
	sorted := make([]string, 0, len(names))
	for p := range names {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	links := func(t map[string]*treeEntry, e *treeEntry) string {
		var ps []string
		for p, o := range t {
			if !o.mode.IsDir() && o.dev == e.dev && o.ino == e.ino {
				ps = append(ps, p)
			}
		}
		sort.Strings(ps)
		return strings.Join(ps, ", ")
	}
	var diffs []string
	for _, p := range sorted {
		ea, eb := ta[p], tb[p]
		switch {
		case ea == nil:
			diffs = append(diffs, fmt.Sprintf("%s: only in %s (%v)", p, b, eb.mode))
			continue
		case eb == nil:
			diffs = append(diffs, fmt.Sprintf("%s: only in %s (%v)", p, a, ea.mode))
			continue
		}
		df := func(format string, args ...any) { diffs = append(diffs, p+": "+fmt.Sprintf(format, args...)) }
		if ea.mode.Type() != eb.mode.Type() {
			df("type %v vs %v", ea.mode.Type(), eb.mode.Type())
			continue
		}
		perm := fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
		if ea.mode&fs.ModeSymlink == 0 && ea.mode&perm != eb.mode&perm {
			df("mode %v vs %v", ea.mode&perm, eb.mode&perm)
		}
		if ea.mode.IsRegular() {
			if ea.size != eb.size {
				df("size %d vs %d", ea.size, eb.size)
			} else if ea.sum != eb.sum {
				df("contents differ (sha256 %x vs %x)", ea.sum[:8], eb.sum[:8])
			}
		}
		if ea.target != eb.target {
			df("symlink target %q vs %q", ea.target, eb.target)
		}
		if opts.Owners && (ea.uid != eb.uid || ea.gid != eb.gid) {
			df("owner %d:%d vs %d:%d", ea.uid, ea.gid, eb.uid, eb.gid)
		}
		if opts.Times && p != "." && ea.mode&fs.ModeSymlink == 0 && ea.mtime != eb.mtime {
			df("mtime %v vs %v", time.Unix(ea.mtime, 0).UTC(), time.Unix(eb.mtime, 0).UTC())
		}
		if !ea.mode.IsDir() {
			if la, lb := links(ta, ea), links(tb, eb); la != lb {
				df("hard links {%s} vs {%s}", la, lb)
			}
		}
	}
	return diffs, nil
}

// CompareTrees reports through t.Errorf every difference between the
// trees under a and b (see DiffTrees), and returns whether they agree.
func CompareTrees(t testing.TB, a, b string, opts CompareOptions) bool {
	t.Helper()
	diffs, err := DiffTrees(a, b, opts)
	if err != nil {
		t.Fatalf("oracle: comparing %s and %s: %v", a, b, err)
	}
	const max = 50
	for i, d := range diffs {
		if i == max {
			t.Errorf("oracle: ... and %d more differences", len(diffs)-max)
			break
		}
		t.Errorf("oracle: tree %s vs %s: %s", a, b, d)
	}
	return len(diffs) == 0
}
