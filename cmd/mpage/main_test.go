package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// mpageBin is the command built once by TestMain.
var mpageBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mpage-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mpageBin = filepath.Join(dir, "mpage")
	buildArgs := []string{"build", "-o", mpageBin}
	if oracle.RaceEnabled {
		buildArgs = append(buildArgs, "-race")
	}
	out, err := exec.Command("go", append(buildArgs, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building mpage: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// mpage runs the command with args and returns what it printed and its
// exit code.
func mpage(t *testing.T, args ...string) result {
	t.Helper()
	return mpageIn(t, "", args...)
}

func mpageIn(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(mpageBin, args...)
	cmd.Dir = dir
	// The race runtime sleeps a second at exit unless told not to; a
	// race report makes the command exit 66, which fails the test.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running mpage %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// mustRun runs mpage and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r := mpage(t, args...)
	if r.code != 0 {
		t.Fatalf("mpage %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// treeImage makes an image with mke2fs -d from oracle.DefaultTree.
func treeImage(t *testing.T) (image, src string, paths []string) {
	t.Helper()
	src = filepath.Join(t.TempDir(), "tree")
	paths = oracle.GenerateTree(t, src, oracle.DefaultTree)
	image = oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, FromDir: src})
	return image, src, paths
}

func emptyImage(t *testing.T, size int64) string {
	t.Helper()
	return oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: size})
}

var debugfsLsLine = regexp.MustCompile(`^\s*(\d+)\s+(\d+)\s+\(\d+\)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s+(.+)$`)

// unixModeString is modeString of a raw i_mode.
func unixModeString(m uint32) string {
	mode := unixToMode(m & 0o7777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	}
	return modeString(mode)
}

func TestLsMatchesDebugfs(t *testing.T) {
	image, _, _ := treeImage(t)
	for _, dir := range []string{"/", "/d00", "/d00/d01"} {
		t.Run(dir, func(t *testing.T) {
			var want []string
			for _, line := range strings.Split(oracle.Debugfs(t, image, "ls -l "+dir), "\n") {
				m := debugfsLsLine.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				mode, _ := strconv.ParseUint(m[2], 8, 32)
				want = append(want, strings.Join([]string{m[1], unixModeString(uint32(mode)), m[3], m[4], m[5], m[6]}, " "))
			}
			if len(want) < 3 {
				t.Fatalf("debugfs ls -l %s gave %d entries; want at least 3", dir, len(want))
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(mustRun(t, "ls", "-l", "-a", "-i", image+":"+dir)), "\n") {
				f := strings.Fields(line)
				if len(f) < 9 {
					t.Fatalf("ls -l line %q: want at least 9 fields", line)
				}
				// ino mode links uid gid size date time name [-> target]
				got = append(got, strings.Join([]string{f[0], f[1], f[3], f[4], f[5], f[8]}, " "))
			}
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("mpage ls -l -a -i %s:\n%s\nwant (debugfs ls -l):\n%s", dir, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// Plain ls lists the names alone, sorted, without . and ..
			var names []string
			for _, w := range want {
				n := w[strings.LastIndex(w, " ")+1:]
				if n != "." && n != ".." {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			if got := strings.Fields(mustRun(t, "ls", image+":"+dir)); strings.Join(got, " ") != strings.Join(names, " ") {
				t.Errorf("mpage ls %s = %v, want %v", dir, got, names)
			}
		})
	}
}

func TestCatMatchesDebugfsDump(t *testing.T) {
	image, src, paths := treeImage(t)
	n := 0
	for _, p := range paths {
		fi, err := os.Lstat(filepath.Join(src, p))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		n++
		got := mustRun(t, "cat", image+":/"+p)
		if want := oracle.DebugfsDump(t, image, "/"+p); got != string(want) {
			t.Errorf("cat %s: got %d bytes, want the %d bytes debugfs dumps", p, len(got), len(want))
		}
	}
	if n < 10 {
		t.Fatalf("only %d regular files in the tree", n)
	}
	// Several files at once, through a symlink.
	got := mustRun(t, "cat", image+":/link-short", image+":/f01-1")
	want := string(oracle.DebugfsDump(t, image, "/f00-0")) + string(oracle.DebugfsDump(t, image, "/f01-1"))
	if got != want {
		t.Errorf("cat link-short f01-1 = %q, want %q", got, want)
	}
	if r := mpage(t, "cat", image+":/nope"); r.code != 1 || !strings.Contains(r.stderr, "mpage: cat: ") || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("cat of a missing file: exit %d, stderr %q; want exit 1 and \"mpage: cat: ... no such file\"", r.code, r.stderr)
	}
}

func TestCpInThenFsckAndDebugfs(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tree")
	paths := oracle.GenerateTree(t, src, oracle.DefaultTree)
	image := emptyImage(t, 16<<20)
	mustRun(t, "cp", "-a", src, image+":/")
	oracle.RequireClean(t, image)
	for _, p := range paths {
		fi, err := os.Lstat(filepath.Join(src, p))
		if err != nil {
			t.Fatal(err)
		}
		st := oracle.DebugfsStat(t, image, "/tree/"+p)
		if got, want := st.Mode, uint32(modeToUnix(fi.Mode())); got != want {
			t.Errorf("%s: debugfs mode %o, want %o", p, got, want)
		}
		if fi.Mode().IsRegular() {
			want, _ := os.ReadFile(filepath.Join(src, p))
			if got := oracle.DebugfsDump(t, image, "/tree/"+p); !bytes.Equal(got, want) {
				t.Errorf("%s: debugfs dump gives %d bytes, want the source's %d", p, len(got), len(want))
			}
			if got, want := st.Mtime, fi.ModTime().Unix(); got != want {
				t.Errorf("%s: mtime %d, want %d", p, got, want)
			}
		}
	}
	// Holes stay holes: the 5 MiB file with 3000 bytes of data holds
	// a few blocks, not 5 MiB.
	if st := oracle.DebugfsStat(t, image, "/tree/sparse-hole-end"); st.Blockcount > 64 {
		t.Errorf("sparse-hole-end has %d sectors allocated; want the holes kept", st.Blockcount)
	}
	// Hard links stay links.
	a, b := oracle.DebugfsStat(t, image, "/tree/hard-a"), oracle.DebugfsStat(t, image, "/tree/d00/hard-c")
	if a.Ino != b.Ino || a.Links != 3 {
		t.Errorf("hard-a inode %d links %d, d00/hard-c inode %d: want one inode with 3 links", a.Ino, a.Links, b.Ino)
	}
	// A single file into a directory, and to a new name.
	mustRun(t, "cp", filepath.Join(src, "f01-1"), image+":/tree/d00")
	mustRun(t, "cp", filepath.Join(src, "f01-1"), image+":/copy")
	oracle.RequireClean(t, image)
	want, _ := os.ReadFile(filepath.Join(src, "f01-1"))
	for _, p := range []string{"/tree/d00/f01-1", "/copy"} {
		if got := oracle.DebugfsDump(t, image, p); !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, want %d", p, len(got), len(want))
		}
	}
	// Without -r, a directory is refused.
	if r := mpage(t, "cp", src, image+":/other"); r.code != 1 || !strings.Contains(r.stderr, "mpage: cp: ") {
		t.Errorf("cp of a directory without -r: exit %d, stderr %q; want exit 1", r.code, r.stderr)
	}
}

func TestCpOutEqualsSource(t *testing.T) {
	image, src, _ := treeImage(t)
	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "cp", "-a", image+":/", out)
	oracle.CompareTrees(t, src, out, oracle.CompareOptions{Owners: true, Times: true, Ignore: []string{"lost+found"}})

	// Image to image, then out again.
	mustRun(t, "cp", "-a", image+":/d00", image+":/copy-of-d00")
	oracle.RequireClean(t, image)
	out2 := filepath.Join(t.TempDir(), "d00")
	mustRun(t, "cp", "-a", image+":/copy-of-d00", out2)
	oracle.CompareTrees(t, filepath.Join(src, "d00"), out2, oracle.CompareOptions{Times: true})

	// A single file, out to a new name.
	f := filepath.Join(t.TempDir(), "one")
	mustRun(t, "cp", image+":/f02-100", f)
	got, _ := os.ReadFile(f)
	want, _ := os.ReadFile(filepath.Join(src, "f02-100"))
	if !bytes.Equal(got, want) {
		t.Errorf("cp out of f02-100: %d bytes, want %d", len(got), len(want))
	}
}

func TestMkfsFrom(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tree")
	oracle.GenerateTree(t, src, oracle.DefaultTree)
	root := os.Geteuid() == 0
	if root { // device nodes need root to make on the host
		if err := syscall.Mknod(filepath.Join(src, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mknod(filepath.Join(src, "d00", "loop200"), syscall.S_IFBLK|0o660, 7<<8|200); err != nil {
			t.Fatal(err)
		}
	}
	image := filepath.Join(t.TempDir(), "from.img")
	r := mpage(t, "mkfs", "--from", src, "--label", "fromtree", image)
	if r.code != 0 {
		t.Fatalf("mkfs --from: exit %d, stderr %q", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("mkfs printed %q on stderr, which is not a terminal; want nothing", r.stderr)
	}
	oracle.RequireClean(t, image)
	if got := oracle.DumpSuper(t, image)["Filesystem volume name"]; got != "fromtree" {
		t.Errorf("label %q, want fromtree", got)
	}
	fi, _ := os.Stat(image)
	if fi.Size() > 16<<20 {
		t.Errorf("image of a ~1 MB tree is %d bytes; want it sized to fit", fi.Size())
	}
	out := filepath.Join(t.TempDir(), "out")
	os.Mkdir(out, 0o755)
	mustRun(t, "cp", "-a", image+":/", out)
	oracle.CompareTrees(t, src, out, oracle.CompareOptions{Owners: true, Times: true, Ignore: []string{"lost+found"}})
	if root {
		for p, want := range map[string]string{"/null": "01:03", "/d00/loop200": "07:200"} {
			out := oracle.Debugfs(t, image, "stat "+p)
			if !strings.Contains(out, "Device major/minor number: "+want+" ") {
				t.Errorf("%s: debugfs stat does not show device number %s:\n%s", p, want, out)
			}
		}
		mnt := oracle.LoopMount(t, image, true)
		oracle.CompareTrees(t, src, mnt, oracle.CompareOptions{Owners: true, Times: true, Ignore: []string{"lost+found"}})
	}
}

func TestMkfsGeometry(t *testing.T) {
	image := filepath.Join(t.TempDir(), "g.img")
	mustRun(t, "mkfs", "--size", "32M", "--block-size", "4096", "--inodes", "5000", "--inode-size", "128", image)
	oracle.RequireClean(t, image)
	sb := oracle.DumpSuper(t, image)
	if sb["Block size"] != "4096" || sb["Block count"] != "8192" || sb["Inode size"] != "128" {
		t.Errorf("dumpe2fs: block size %s, count %s, inode size %s; want 4096, 8192, 128", sb["Block size"], sb["Block count"], sb["Inode size"])
	}
	if n, _ := strconv.Atoi(sb["Inode count"]); n < 5000 {
		t.Errorf("inode count %d, want at least 5000", n)
	}
	if r := mpage(t, "mkfs", "--size", "32M", "--block-size", "3000", image); r.code == 0 {
		t.Errorf("mkfs --block-size 3000 succeeded; want an error")
	}
}

func TestChangeCommands(t *testing.T) {
	image, _, _ := treeImage(t)
	img := func(p string) string { return image + ":" + p }
	mustRun(t, "mkdir", img("/new"))
	mustRun(t, "mkdir", "-p", "-m", "700", img("/new/a/b/c"))
	mustRun(t, "touch", "-d", "2020-01-02T03:04:05Z", img("/new/a/b/c/file"))
	mustRun(t, "ln", "-s", "../target", img("/new/sym"))
	mustRun(t, "ln", img("/f02-100"), img("/new/hard"))
	mustRun(t, "chmod", "4750", img("/f02-100"))
	mustRun(t, "chmod", "go-rwx,u+x", img("/f03-1023"))
	mustRun(t, "chown", "1234:567", img("/f02-100"))
	mustRun(t, "chown", "-h", "42", img("/new/sym"))
	mustRun(t, "mv", img("/f00-0"), img("/new/moved"))
	mustRun(t, "mv", img("/d01"), img("/new"))
	mustRun(t, "rm", img("/f01-1"))
	mustRun(t, "rm", "-r", img("/d00"))
	mustRun(t, "rm", "-f", img("/not-there"))
	oracle.RequireClean(t, image)

	st := oracle.DebugfsStat(t, image, "/new/a/b/c")
	if st.Type != "directory" || st.Mode != 0o700 {
		t.Errorf("/new/a/b/c: %s %o, want directory 700", st.Type, st.Mode)
	}
	if st := oracle.DebugfsStat(t, image, "/new/a/b/c/file"); st.Type != "regular" || st.Size != 0 || st.Mtime != 1577934245 || st.Atime != 1577934245 {
		t.Errorf("touched file: %s size %d mtime %d atime %d, want empty regular file at 1577934245", st.Type, st.Size, st.Mtime, st.Atime)
	}
	if st := oracle.DebugfsStat(t, image, "/new/sym"); st.Type != "symlink" || st.FastLinkDest != "../target" || st.UID != 42 {
		t.Errorf("symlink: %s -> %q uid %d, want symlink -> ../target uid 42", st.Type, st.FastLinkDest, st.UID)
	}
	f := oracle.DebugfsStat(t, image, "/f02-100")
	if f.Mode != 0o4750 || f.UID != 1234 || f.GID != 567 || f.Links != 2 {
		t.Errorf("/f02-100: mode %o uid %d gid %d links %d, want 4750 1234 567 2", f.Mode, f.UID, f.GID, f.Links)
	}
	if h := oracle.DebugfsStat(t, image, "/new/hard"); h.Ino != f.Ino {
		t.Errorf("/new/hard is inode %d, want %d", h.Ino, f.Ino)
	}
	if st := oracle.DebugfsStat(t, image, "/f03-1023"); st.Mode&0o077 != 0 || st.Mode&0o100 == 0 {
		t.Errorf("/f03-1023 mode %o after go-rwx,u+x: want u+x and no group or other bits", st.Mode)
	}
	if st := oracle.DebugfsStat(t, image, "/new/moved"); st.Type != "regular" {
		t.Errorf("/new/moved: %s, want regular", st.Type)
	}
	if st := oracle.DebugfsStat(t, image, "/new/d01"); st.Type != "directory" {
		t.Errorf("/new/d01: %s, want directory", st.Type)
	}
	for _, gone := range []string{"/f00-0", "/f01-1", "/d00", "/d01"} {
		if _, errOut := oracle.DebugfsOutput(t, image, "stat "+gone); !strings.Contains(errOut, "not found") {
			t.Errorf("%s is still there after rm/mv (debugfs: %q)", gone, errOut)
		}
	}
	// Errors: one line, exit 1.
	for _, c := range [][]string{
		{"rm", img("/new")},
		{"mkdir", img("/new")},
		{"mv", img("/none"), img("/x")},
		{"ln", img("/new"), img("/dirlink")},
	} {
		r := mpage(t, c...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "mpage: "+c[0]+": ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("mpage %v: exit %d, stderr %q; want exit 1 and one line \"mpage: %s: ...\"", c, r.code, r.stderr, c[0])
		}
	}
	oracle.RequireClean(t, image)
}

func TestStatMatchesDebugfs(t *testing.T) {
	image, _, _ := treeImage(t)
	for _, p := range []string{"/f00-0", "/d00/f02-4095", "/d00/d00/f03-70000", "/d00/d01/f00-300000", "/sparse-hole-middle", "/link-long", "/link-short", "/d00", "/fifo"} {
		t.Run(p, func(t *testing.T) {
			out := mustRun(t, "stat", "--runs", "-1", image+":"+p)
			want := oracle.DebugfsStat(t, image, p)
			field := func(name string) string {
				m := regexp.MustCompile(`(?m)^\s*` + name + `: (\S+)`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("stat output has no %s:\n%s", name, out)
				}
				return m[1]
			}
			for _, c := range []struct {
				name string
				want string
			}{
				{"Inode", fmt.Sprint(want.Ino)},
				{"Links", fmt.Sprint(want.Links)},
				{"Uid", fmt.Sprint(want.UID)},
				{"Gid", fmt.Sprint(want.GID)},
				{"Size", fmt.Sprint(want.Size)},
				{"Blocks", fmt.Sprint(want.Blockcount)},
				{"Mode", fmt.Sprintf("%04o", want.Mode)},
			} {
				if got := field(c.name); got != c.want {
					t.Errorf("%s: %s, want %s (debugfs)", c.name, got, c.want)
				}
			}
			// The block map: every data block where debugfs has it.
			if got, want := expandRuns(t, out, `^\s+\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?$`), expandRuns(t, want.Blocks, `\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?`); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("block map %v, want (debugfs) %v", got, want)
			}
		})
	}
}

// expandRuns reads "(file[-file]):dev[-dev]" runs into a map from file
// block to device block.
func expandRuns(t *testing.T, text, pattern string) map[int64]int64 {
	t.Helper()
	re := regexp.MustCompile("(?m)" + pattern)
	out := map[int64]int64{}
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		f0, _ := strconv.ParseInt(m[1], 10, 64)
		f1 := f0
		if m[2] != "" {
			f1, _ = strconv.ParseInt(m[2], 10, 64)
		}
		d0, _ := strconv.ParseInt(m[3], 10, 64)
		for i := int64(0); i <= f1-f0; i++ {
			out[f0+i] = d0 + i
		}
	}
	return out
}

func TestDfMatchesDumpe2fs(t *testing.T) {
	image, _, _ := treeImage(t)
	out := mustRun(t, "df", image)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("df printed %d lines, want a header and one line:\n%s", len(lines), out)
	}
	f := strings.Fields(lines[1])
	sb := oracle.DumpSuper(t, image)
	num := func(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v }
	blocks, freeBlocks := num(sb["Block count"]), num(sb["Free blocks"])
	inodes, freeInodes := num(sb["Inode count"]), num(sb["Free inodes"])
	// Image  Block size  Blocks  Used  Available  Use%  Inodes  IUsed  IFree  IUse%
	want := []string{image, sb["Block size"], fmt.Sprint(blocks), fmt.Sprint(blocks - freeBlocks),
		fmt.Sprint(freeBlocks - num(sb["Reserved block count"])), "", fmt.Sprint(inodes), fmt.Sprint(inodes - freeInodes), fmt.Sprint(freeInodes)}
	for i, w := range want {
		if w != "" && (i >= len(f) || f[i] != w) {
			t.Errorf("df field %d = %q, want %q (dumpe2fs)\n%s", i, f[i], w, out)
		}
	}
}

func TestStatsJSON(t *testing.T) {
	image, _, _ := treeImage(t)
	r := mpage(t, "--stats=json", "cat", image+":/d00/d00/f03-70000")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if len(r.stdout) != 70000 {
		t.Errorf("cat printed %d bytes, want 70000", len(r.stdout))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stderr), &m); err != nil {
		t.Fatalf("stderr %q is not one JSON object: %v", r.stderr, err)
	}
	for _, k := range []string{"read_bios", "write_bios", "read_calls", "write_calls", "bytes_read", "bytes_written", "merges", "largest_request", "elapsed_seconds", "read_pages"} {
		if _, ok := m[k]; !ok {
			t.Errorf("--stats=json has no key %q: %s", k, r.stderr)
		}
	}
	if v, _ := m["bytes_read"].(float64); v < 70000 {
		t.Errorf("bytes_read %v after reading a 70000-byte file; want at least 70000", m["bytes_read"])
	}
	// The text form is a few lines on stderr, nothing on stdout.
	r = mpage(t, "--stats", "df", image)
	if r.code != 0 || !strings.Contains(r.stderr, "read bios") || strings.Contains(r.stdout, "read bios") {
		t.Errorf("--stats df: exit %d, stderr %q; want the summary on stderr", r.code, r.stderr)
	}
}

func hashFile(t *testing.T, p string) [32]byte {
	t.Helper()
	sum, err := oracle.HashFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestReadonlyRefusesWrites(t *testing.T) {
	image, src, _ := treeImage(t)
	before := hashFile(t, image)
	img := func(p string) string { return image + ":" + p }
	for _, c := range [][]string{
		{"cp", filepath.Join(src, "f00-0"), img("/x")},
		{"rm", img("/f00-0")},
		{"mkdir", img("/x")},
		{"mv", img("/f00-0"), img("/x")},
		{"ln", "-s", "t", img("/x")},
		{"chmod", "600", img("/f00-0")},
		{"chown", "1:1", img("/f00-0")},
		{"touch", img("/f00-0")},
		{"mkfs", image},
	} {
		r := mpage(t, append([]string{"--readonly"}, c...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "--readonly") {
			t.Errorf("--readonly %v: exit %d, stderr %q; want exit 1 naming --readonly", c, r.code, r.stderr)
		}
	}
	// Reading works.
	mustRun(t, "--readonly", "ls", image)
	mustRun(t, "--readonly", "cat", img("/f01-1"))
	if hashFile(t, image) != before {
		t.Errorf("the image changed under --readonly")
	}
}

func TestENOSPCMidCopy(t *testing.T) {
	image := emptyImage(t, 1<<20)
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	data := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16)
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := mpage(t, "cp", big, image+":/big")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "mpage: cp: ") || !strings.Contains(r.stderr, "no space left") {
		t.Errorf("cp of 2 MiB into a 1 MiB image: exit %d, stderr %q; want exit 1 and \"no space left\"", r.code, r.stderr)
	}
	oracle.RequireClean(t, image)
	// The file that could not be copied whole is not left behind.
	if _, errOut := oracle.DebugfsOutput(t, image, "stat /big"); !strings.Contains(errOut, "not found") {
		t.Errorf("the partial copy /big is still in the image")
	}
	// A tree that does not fit either.
	tree := filepath.Join(dir, "tree")
	oracle.GenerateTree(t, tree, oracle.DefaultTree)
	image = emptyImage(t, 512<<10)
	r = mpage(t, "cp", "-a", tree, image+":/")
	if r.code != 1 {
		t.Errorf("cp -a of a tree into a full image: exit %d, want 1", r.code)
	}
	oracle.RequireClean(t, image)
	// A fixed --size too small for --from fails the same way.
	r = mpage(t, "mkfs", "--size", "512K", "--from", tree, filepath.Join(dir, "small.img"))
	if r.code != 1 || !strings.Contains(r.stderr, "no space left") {
		t.Errorf("mkfs --size 512K --from a 1 MB tree: exit %d, stderr %q; want exit 1, no space left", r.code, r.stderr)
	}
	oracle.RequireClean(t, filepath.Join(dir, "small.img"))
}

func TestHostileImageCopyOut(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	if err := os.MkdirAll(filepath.Join(src, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"esc":        "../../x",
		"dir/esc2":   "../../../outside",
		"abs":        outside,
		"dir/absdir": outside,
	} {
		if err := os.Symlink(target, filepath.Join(src, link)); err != nil {
			t.Fatal(err)
		}
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 4 << 20, FromDir: src})
	// Files in the image "inside" the symlinked directories, made through
	// debugfs, would be where a naive copy writes through the link.
	dst := filepath.Join(base, "a", "b", "dst")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "cp", "-r", image+":/", dst)
	mustRun(t, "cp", "-a", image+":/", dst) // again, over what is there
	for _, p := range []string{filepath.Join(base, "x"), filepath.Join(base, "a", "x")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists: the copy wrote outside its destination", p)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("%s holds %d entries after the copy; want none", outside, len(ents))
	}
	if got, err := os.Readlink(filepath.Join(dst, "esc")); err != nil || got != "../../x" {
		t.Errorf("dst/esc = %q, %v; want the symlink itself, ../../x", got, err)
	}
	// A second image holding real directories where the first had
	// symlinks pointing outside: copying it over the first copy must not
	// write through those symlinks.
	src2 := filepath.Join(base, "src2")
	for _, d := range []string{"esc", "dir/absdir", "abs"} {
		if err := os.MkdirAll(filepath.Join(src2, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src2, d, "pwned"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image2 := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 4 << 20, FromDir: src2})
	if r := mpage(t, "cp", "-r", image2+":/", dst); r.code != 1 {
		t.Errorf("copying directories over symlinks: exit %d, stderr %q; want exit 1", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("%s holds %d entries after copying over symlinks; want none", outside, len(ents))
	}
	if _, err := os.Lstat(filepath.Join(base, "a", "x")); err == nil {
		t.Errorf("%s exists: the copy wrote through dst/esc", filepath.Join(base, "a", "x"))
	}
	// Copying through a symlink of the image that points outside: the
	// name resolves inside the image, never on the host.
	if r := mpage(t, "cp", "-r", image+":/dir/absdir", filepath.Join(dst, "through")); r.code == 0 {
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Errorf("copying dir/absdir wrote into %s", outside)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range [][]string{
		{"cp"},
		{"ls", "--no-such-flag", "x"},
		{"no-such-command"},
		{"--stats=xml", "df", "x"},
		{"--cache", "lots", "df", "x"},
		{"mkfs"},
	} {
		r := mpage(t, c...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "mpage: ") {
			t.Errorf("mpage %v: exit %d, stderr %q; want exit 2 and \"mpage: ...\"", c, r.code, r.stderr)
		}
	}
	r := mpage(t, "ls", filepath.Join(t.TempDir(), "missing.img"))
	if r.code != 1 || !strings.HasPrefix(r.stderr, "mpage: ls: ") {
		t.Errorf("ls of a missing image: exit %d, stderr %q; want exit 1, \"mpage: ls: ...\"", r.code, r.stderr)
	}
}

func TestHelpAndCompletion(t *testing.T) {
	if out := mustRun(t, "help", "cp"); !strings.Contains(out, "IMAGE:PATH") || !strings.Contains(out, "--archive") {
		t.Errorf("help cp does not describe cp:\n%s", out)
	}
	if out := mustRun(t, "completion", "bash"); !strings.Contains(out, "bash completion") {
		t.Errorf("completion bash printed no bash completion script")
	}
	if out := mustRun(t, "--version"); !strings.Contains(out, version) {
		t.Errorf("--version = %q, want %s", out, version)
	}
}

// TestDemo runs demo in a module of its own: a go.mod and a copy of this
// package's sources in a temporary folder, started from a subfolder so
// that demo walks up to go.mod. (Run in the working tree, demo copies
// whatever lies there, up to its 48 MiB budget in name order: with
// large untracked or ignored folders sorting before go.mod, such as
// another process's bench results, go.mod was left out and the test
// failed now and then.)
func TestDemo(t *testing.T) {
	mod := t.TempDir()
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/demo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcs, err := filepath.Glob("*.go")
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no Go files in the package to copy (%v)", err)
	}
	sub := filepath.Join(mod, "cmd", "mpage")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	wantBytes := int64(len("module example.com/demo\n"))
	for _, name := range srcs {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		wantBytes += int64(len(data))
	}
	r := mpageIn(t, sub, "demo")
	if r.code != 0 {
		t.Fatalf("demo: exit %d, stderr %q", r.code, r.stderr)
	}
	m := regexp.MustCompile(`demo: (\d+) files, (\d+) bytes verified`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("demo did not report the files verified:\n%s", r.stdout)
	}
	if got, want := m[1]+" files, "+m[2]+" bytes", fmt.Sprintf("%d files, %d bytes", len(srcs)+1, wantBytes); got != want {
		t.Errorf("demo verified %s; want the module's %s", got, want)
	}
	for _, want := range []string{"lost+found", "read bios", "go.mod", "cmd"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	// With no go.mod above the working directory, a generated tree.
	r = mpageIn(t, t.TempDir(), "demo")
	if r.code != 0 || !strings.Contains(r.stdout, "a generated tree") || !strings.Contains(r.stdout, "bytes verified") {
		t.Errorf("demo outside a module: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestCacheLimit(t *testing.T) {
	image := emptyImage(t, 16<<20)
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 7 / 4096)
	}
	src := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "--cache", "256K", "cp", src, image+":/big")
	oracle.RequireClean(t, image)
	r := mpage(t, "--cache", "256K", "--stats=json", "cat", image+":/big")
	if r.code != 0 {
		t.Fatalf("cat: exit %d, stderr %q", r.code, r.stderr)
	}
	if !bytes.Equal([]byte(r.stdout), data) {
		t.Errorf("cat under a 256K cache: %d bytes that differ from the 4 MiB written", len(r.stdout))
	}
	var m struct {
		Peak    int64 `json:"peak_cache_pages"`
		Evicted int64 `json:"evicted_pages"`
	}
	if err := json.Unmarshal([]byte(r.stderr), &m); err != nil {
		t.Fatalf("--stats=json: %v: %q", err, r.stderr)
	}
	if m.Peak > 64 || m.Evicted == 0 {
		t.Errorf("reading 4 MiB with --cache 256K: peak %d pages, %d evicted; want at most 64 pages and evictions", m.Peak, m.Evicted)
	}
}
