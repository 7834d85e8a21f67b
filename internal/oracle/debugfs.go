package oracle

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// DebugfsOutput runs "debugfs -R request image" and returns its standard
// output and standard error (debugfs reports most errors on standard
// error and still exits 0; its version banner is removed).
func DebugfsOutput(t testing.TB, image, request string) (stdout, stderr string) {
	t.Helper()
	prog := Tool(t, "debugfs")
	args := []string{"-R", request, image}
	r := run(t, prog, args...)
	if r.timedOut || r.code != 0 {
		t.Fatalf("oracle: %s", r.describe(prog, args))
	}
	var kept []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "debugfs ") && strings.Contains(l, "(") || strings.TrimSpace(l) == "" {
			continue
		}
		kept = append(kept, l)
	}
	return r.stdout, strings.Join(kept, "\n")
}

// Debugfs runs "debugfs -R request image" and returns its standard
// output. Errors debugfs prints (such as "File not found by
// ext2_lookup") are logged, not fatal: use DebugfsOutput to see them.
func Debugfs(t testing.TB, image, request string) string {
	t.Helper()
	out, errs := DebugfsOutput(t, image, request)
	if errs != "" {
		t.Logf("oracle: debugfs -R %q: %s", request, errs)
	}
	return out
}

// DebugfsDump returns the contents of the file at path inside image, as
// "debugfs -R 'dump path OUT'" extracts them. It fails the test if
// debugfs cannot dump it.
func DebugfsDump(t testing.TB, image, path string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dump")
	_, errs := DebugfsOutput(t, image, "dump "+quoteArg(path)+" "+quoteArg(out))
	b, err := os.ReadFile(out)
	if err != nil || errs != "" {
		t.Fatalf("oracle: debugfs cannot dump %s from %s: %s (%v)", path, image, errs, err)
	}
	return b
}

// quoteArg quotes a debugfs argument that contains spaces.
func quoteArg(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return strconv.Quote(s)
	}
	return s
}

// InodeStat is the parse of "debugfs -R 'stat path'".
type InodeStat struct {
	Ino        uint32
	Type       string // "regular", "directory", "symlink", "FIFO", "socket", "character special", "block special"
	Mode       uint32 // permission bits (and setuid/setgid/sticky), as debugfs prints them in octal
	Flags      uint32
	Generation uint32
	UID, GID   uint32
	Size       uint64
	Links      uint32
	Blockcount uint64 // i_blocks, in 512-byte units
	FileACL    uint64
	// Times in seconds since the epoch (the low 32 bits debugfs prints in
	// hex; with 256-byte inodes debugfs also prints nanoseconds, dropped
	// here). Crtime is 0 for 128-byte inodes.
	Ctime, Atime, Mtime, Dtime, Crtime int64
	// FastLinkDest is the target of a fast (in-inode) symlink.
	FastLinkDest string
	// Blocks is the BLOCKS section as debugfs prints it, e.g.
	// "(0-11):1234-1245, (IND):1246, (12):1247"; empty for no blocks.
	Blocks string
	// Fields holds every "Key: value" pair of the header lines.
	Fields map[string]string
}

var (
	statTimeRE = regexp.MustCompile(`^\s*(ctime|atime|mtime|dtime|crtime):\s*0x([0-9a-fA-F]+)`)
	statTypeRE = regexp.MustCompile(`Type:\s+(.*?)\s+Mode:`)
)

// DebugfsStat runs "debugfs -R 'stat path' image" and parses its output.
// It fails the test if debugfs cannot find path.
func DebugfsStat(t testing.TB, image, path string) *InodeStat {
	t.Helper()
	out, errs := DebugfsOutput(t, image, "stat "+quoteArg(path))
	if strings.TrimSpace(out) == "" {
		t.Fatalf("oracle: debugfs cannot stat %s in %s: %s", path, image, errs)
	}
	st, err := ParseDebugfsStat(out)
	if err != nil {
		t.Fatalf("oracle: %v\n%s", err, out)
	}
	return st
}

// ParseDebugfsStat parses the output of debugfs's stat command.
func ParseDebugfsStat(out string) (*InodeStat, error) {
	st := &InodeStat{Fields: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	inBlocks := false
	var blocks []string
	for sc.Scan() {
		line := sc.Text()
		if inBlocks {
			if strings.HasPrefix(line, "TOTAL:") || strings.TrimSpace(line) == "" {
				inBlocks = false
				continue
			}
			blocks = append(blocks, strings.TrimSpace(line))
			continue
		}
		if m := statTimeRE.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseUint(m[2], 16, 32)
			switch m[1] {
			case "ctime":
				st.Ctime = int64(v)
			case "atime":
				st.Atime = int64(v)
			case "mtime":
				st.Mtime = int64(v)
			case "dtime":
				st.Dtime = int64(v)
			case "crtime":
				st.Crtime = int64(v)
			}
			continue
		}
		switch {
		case strings.HasPrefix(line, "BLOCKS:"):
			inBlocks = true
			continue
		case strings.HasPrefix(line, "EXTENTS:"):
			inBlocks = true
			continue
		case strings.HasPrefix(line, "Fast link dest:"):
			v := strings.TrimSpace(strings.TrimPrefix(line, "Fast link dest:"))
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			st.FastLinkDest = v
			continue
		}
		if m := statTypeRE.FindStringSubmatch(line); m != nil {
			st.Type = m[1]
		}
		// "Key: value   Key: value" pairs; a key is the token ending in ':'.
		toks := strings.Fields(line)
		for i := 0; i < len(toks); i++ {
			k, ok := strings.CutSuffix(toks[i], ":")
			if !ok || k == "" {
				continue
			}
			if i+1 < len(toks) && !strings.HasSuffix(toks[i+1], ":") {
				if _, dup := st.Fields[k]; !dup {
					st.Fields[k] = toks[i+1]
				}
				i++
			}
		}
	}
	st.Blocks = strings.Join(blocks, " ")
	num := func(k string, base int) uint64 {
		s := st.Fields[k]
		if base == 16 {
			s = strings.TrimPrefix(s, "0x")
		}
		v, _ := strconv.ParseUint(s, base, 64)
		return v
	}
	if _, ok := st.Fields["Inode"]; !ok {
		return nil, fmt.Errorf("debugfs stat output has no Inode: line")
	}
	st.Ino = uint32(num("Inode", 10))
	st.Mode = uint32(num("Mode", 8))
	st.Flags = uint32(num("Flags", 16))
	st.Generation = uint32(num("Generation", 10))
	st.UID = uint32(num("User", 10))
	st.GID = uint32(num("Group", 10))
	st.Size = num("Size", 10)
	st.Links = uint32(num("Links", 10))
	st.Blockcount = num("Blockcount", 10)
	st.FileACL = num("ACL", 10)
	return st, nil
}

// Dumpe2fs returns the full output of "dumpe2fs image": the superblock
// fields, then every group.
func Dumpe2fs(t testing.TB, image string) string {
	t.Helper()
	prog := Tool(t, "dumpe2fs")
	r := run(t, prog, image)
	if r.timedOut || r.code != 0 {
		t.Fatalf("oracle: %s", r.describe(prog, []string{image}))
	}
	return r.stdout
}

// DumpSuper runs "dumpe2fs -h image" and returns its "Key: value" lines as
// a map, keys and values trimmed, e.g. "Block size" -> "1024",
// "Filesystem features" -> "ext_attr dir_index filetype sparse_super".
func DumpSuper(t testing.TB, image string) map[string]string {
	t.Helper()
	prog := Tool(t, "dumpe2fs")
	r := run(t, prog, "-h", image)
	if r.timedOut || r.code != 0 {
		t.Fatalf("oracle: %s", r.describe(prog, []string{"-h", image}))
	}
	return ParseDumpSuper(r.stdout)
}

// ParseDumpSuper parses the superblock part of dumpe2fs output, up to the
// first empty line.
func ParseDumpSuper(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			if len(m) > 0 {
				break
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

// Range is an inclusive range of block or inode numbers; a Range with
// Last < First is absent.
type Range struct{ First, Last uint64 }

// None is the absent Range.
var None = Range{1, 0}

// Present reports whether the range is set.
func (r Range) Present() bool { return r.Last >= r.First }

// GroupInfo is one group of "dumpe2fs image".
type GroupInfo struct {
	Number          int
	Blocks          Range // the group's blocks
	Superblock      Range // primary or backup superblock, if any
	Primary         bool  // the superblock is the primary one
	GDT             Range // group descriptor table copy, if any
	ReservedGDT     Range // reserved GDT blocks, if any
	BlockBitmap     uint64
	InodeBitmap     uint64
	InodeTable      Range
	FreeBlocks      uint64
	FreeInodes      uint64
	Directories     uint64
	FreeBlockRanges string // as dumpe2fs prints them, e.g. "524-8192"
	FreeInodeRanges string
}

var (
	groupRE   = regexp.MustCompile(`^Group (\d+): \(Blocks (\d+)-(\d+)\)`)
	superRE   = regexp.MustCompile(`^\s*(Primary|Backup) superblock at (\d+)(?:, Group descriptors at (\d+)-(\d+))?`)
	resGDTRE  = regexp.MustCompile(`^\s*Reserved GDT blocks at (\d+)-(\d+)`)
	bbitmapRE = regexp.MustCompile(`^\s*Block bitmap at (\d+)`)
	ibitmapRE = regexp.MustCompile(`^\s*Inode bitmap at (\d+)`)
	itableRE  = regexp.MustCompile(`^\s*Inode table at (\d+)-(\d+)`)
	countsRE  = regexp.MustCompile(`^\s*(\d+) free blocks?, (\d+) free inodes?, (\d+) director`)
	freeBlkRE = regexp.MustCompile(`^\s*Free blocks: ?(.*)$`)
	freeInoRE = regexp.MustCompile(`^\s*Free inodes: ?(.*)$`)
)

// DumpGroups runs dumpe2fs on image and parses its groups.
func DumpGroups(t testing.TB, image string) []GroupInfo {
	t.Helper()
	gs, err := ParseDumpGroups(Dumpe2fs(t, image))
	if err != nil {
		t.Fatalf("oracle: dumpe2fs %s: %v", image, err)
	}
	return gs
}

// ParseDumpGroups parses the group part of dumpe2fs output.
func ParseDumpGroups(out string) ([]GroupInfo, error) {
	var gs []GroupInfo
	var g *GroupInfo
	u := func(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v }
	for _, line := range strings.Split(out, "\n") {
		if m := groupRE.FindStringSubmatch(line); m != nil {
			gs = append(gs, GroupInfo{Number: int(u(m[1])), Blocks: Range{u(m[2]), u(m[3])},
				Superblock: None, GDT: None, ReservedGDT: None, InodeTable: None})
			g = &gs[len(gs)-1]
			continue
		}
		if g == nil {
			continue
		}
		if m := superRE.FindStringSubmatch(line); m != nil {
			g.Primary = m[1] == "Primary"
			g.Superblock = Range{u(m[2]), u(m[2])}
			if m[3] != "" {
				g.GDT = Range{u(m[3]), u(m[4])}
			}
		} else if m := resGDTRE.FindStringSubmatch(line); m != nil {
			g.ReservedGDT = Range{u(m[1]), u(m[2])}
		} else if m := bbitmapRE.FindStringSubmatch(line); m != nil {
			g.BlockBitmap = u(m[1])
		} else if m := ibitmapRE.FindStringSubmatch(line); m != nil {
			g.InodeBitmap = u(m[1])
		} else if m := itableRE.FindStringSubmatch(line); m != nil {
			g.InodeTable = Range{u(m[1]), u(m[2])}
		} else if m := countsRE.FindStringSubmatch(line); m != nil {
			g.FreeBlocks, g.FreeInodes, g.Directories = u(m[1]), u(m[2]), u(m[3])
		} else if m := freeBlkRE.FindStringSubmatch(line); m != nil {
			g.FreeBlockRanges = strings.TrimSpace(m[1])
		} else if m := freeInoRE.FindStringSubmatch(line); m != nil {
			g.FreeInodeRanges = strings.TrimSpace(m[1])
		}
	}
	if len(gs) == 0 {
		return nil, fmt.Errorf("no groups in dumpe2fs output")
	}
	for i, g := range gs {
		if g.Number != i {
			return nil, fmt.Errorf("group %d listed as number %d", i, g.Number)
		}
	}
	return gs, nil
}
