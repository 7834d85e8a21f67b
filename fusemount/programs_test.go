package fusemount

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/internal/oracle"
)

// This file runs real programs on the mount: fio with data verification
// and git. Each test unmounts at the end, has e2fsck -fn check the image
// and, where loop mounts work, lets the kernel's ext2 driver read what
// the programs wrote.

// programTimeout bounds one run of fio or git: a mount that stops
// answering must fail the test, not hang it.
const programTimeout = 3 * time.Minute

// requireProgram skips the test where the named program is missing.
func requireProgram(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (Debian: apt-get install %s; scripts/check installs it as root)", name, name)
	}
	return p
}

// fioWorkload is one fio job, run with numjobs processes, each on a file
// of its own (fio names them name.N.0).
type fioWorkload struct {
	name    string
	numjobs int
	size    int64    // file size, bytes per process (--size)
	ioSize  int64    // bytes each process reads and writes (--io_size)
	args    []string // the I/O pattern: --rw, --bs, ...
	// mixed: reads are part of the workload, so a process writes less
	// than ioSize (and reads, with its verification, ioSize in all).
	mixed bool
	// sparse: the files are made with truncate(2) before the first run
	// (fio would lay them out, or, for a write-only job, leave them
	// shorter than size and lay them out again, empty, at the
	// --verify_only run).
	sparse bool
}

// fioWorkloads are the three fio runs. The sequential file is 256 MiB,
// far more than the mount's page cache (16 MiB); the random workloads
// write 4 MiB in 4 KiB blocks at random offsets into each of four 64 MiB
// sparse files (256 MiB in all), so that their writes allocate blocks
// and indirect blocks all over the files while staying few enough for
// the race detector.
var fioWorkloads = []fioWorkload{
	// One process writes 256 MiB in 1 MiB writes through the kernel's
	// page cache.
	{name: "seq", numjobs: 1, size: 256 << 20, ioSize: 256 << 20,
		args: []string{"--rw=write", "--bs=1M", "--ioengine=psync"}},
	// Four processes write 4 KiB blocks at random offsets, each block
	// at most once, through the page cache.
	{name: "rand", numjobs: 4, size: 64 << 20, ioSize: 4 << 20, sparse: true,
		args: []string{"--rw=randwrite", "--bs=4k", "--ioengine=psync"}},
	// Four processes read and write 4 KiB blocks at random, half each,
	// with O_DIRECT and eight requests in flight (libaio): the mount
	// sees reads and writes of one file at once, reads of holes among
	// them.
	{name: "mixed", numjobs: 4, size: 64 << 20, ioSize: 4 << 20, sparse: true, mixed: true,
		args: []string{"--rw=randrw", "--rwmixread=50", "--bs=4k", "--direct=1", "--ioengine=libaio", "--iodepth=8"}},
}

// files returns the paths of the workload's files under dir.
func (w fioWorkload) files(dir string) []string {
	var out []string
	for i := range w.numjobs {
		out = append(out, filepath.Join(dir, fmt.Sprintf("%s.%d.0", w.name, i)))
	}
	return out
}

// fioReport is the part of fio's JSON output the tests read.
type fioReport struct {
	Jobs []struct {
		Jobname string `json:"jobname"`
		Error   int    `json:"error"`
		Read    struct {
			IOBytes int64 `json:"io_bytes"`
		} `json:"read"`
		Write struct {
			IOBytes int64 `json:"io_bytes"`
		} `json:"write"`
	} `json:"jobs"`
}

// runFio runs the workload on the files in dir with crc32c verification
// and extra arguments (--do_verify=1 or --verify_only), and fails the
// test unless fio exits 0 and every process reports no error. It returns
// fio's report.
func runFio(t *testing.T, fio, dir string, w fioWorkload, extra ...string) fioReport {
	t.Helper()
	work := t.TempDir() // fio's working directory and report
	out := filepath.Join(work, "report.json")
	args := []string{
		"--name=" + w.name, "--directory=" + dir,
		fmt.Sprintf("--numjobs=%d", w.numjobs), fmt.Sprintf("--size=%d", w.size),
		fmt.Sprintf("--io_size=%d", w.ioSize),
		"--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0",
		// ext2 has no fallocate; fio would try it and fall back.
		"--fallocate=none",
		// The same offsets and the same data on every run, so that
		// --verify_only finds what an earlier run wrote.
		"--randrepeat=1",
		"--output-format=json", "--output=" + out,
	}
	args = append(append(args, w.args...), extra...)
	ctx, cancel := context.WithTimeout(context.Background(), programTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, fio, args...)
	cmd.Dir = work
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("fio %s %s: %v", w.name, strings.Join(extra, " "), time.Since(start).Round(time.Millisecond))
	report, _ := os.ReadFile(out)
	var r fioReport
	jsonErr := json.Unmarshal(report, &r)
	if err != nil {
		var errs []string
		for i, j := range r.Jobs {
			errs = append(errs, fmt.Sprintf("job %d: error %d (%v)", i, j.Error, syscall.Errno(j.Error)))
		}
		t.Fatalf("fio %s: %v (context: %v)\n%s\n%s", strings.Join(args, " "), err, ctx.Err(), stderr.Bytes(), strings.Join(errs, "\n"))
	}
	if jsonErr != nil {
		t.Fatalf("fio %s: reading its JSON report: %v\n%.2000s", w.name, jsonErr, report)
	}
	if len(r.Jobs) != w.numjobs {
		t.Fatalf("fio %s: report has %d jobs, want %d", w.name, len(r.Jobs), w.numjobs)
	}
	for i, j := range r.Jobs {
		if j.Error != 0 {
			t.Fatalf("fio %s exited 0, but its job %d (%s) reports error %d (%v)\n%s", w.name, i, j.Jobname, j.Error, syscall.Errno(j.Error), stderr.Bytes())
		}
	}
	return r
}

// TestFioVerify runs fio through the mount: a 256 MiB file written
// sequentially, 4 KiB blocks written at random by four processes, and
// 4 KiB blocks read and written at random with O_DIRECT by four
// processes (see fioWorkloads), each verified by fio's crc32c headers
// right after writing. It verifies all of it again after a remount, so
// that the data comes from the image, and finally has the kernel's ext2
// driver read the same bytes. e2fsck finds the image clean after each
// unmount.
func TestFioVerify(t *testing.T) {
	requireFuse(t)
	fio := requireProgram(t, "fio")
	// 256 MiB of data and its indirect blocks; the image is sparse.
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 384 << 20, BlockSize: 4096})
	m := mountImage(t, image, Options{})

	for _, w := range fioWorkloads {
		if w.sparse {
			for _, p := range w.files(m.dir) {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(p, w.size); err != nil {
					t.Fatal(err)
				}
			}
		}
		r := runFio(t, fio, m.dir, w, "--do_verify=1")
		checkFioBytes(t, "writing", w, r)
		for i, j := range r.Jobs {
			switch {
			case !w.mixed && j.Write.IOBytes != w.ioSize:
				t.Errorf("fio %s job %d: wrote %d bytes, want %d", w.name, i, j.Write.IOBytes, w.ioSize)
			case w.mixed && (j.Write.IOBytes <= 0 || j.Write.IOBytes >= w.ioSize):
				t.Errorf("fio %s job %d: wrote %d bytes, want more than 0 and less than %d", w.name, i, j.Write.IOBytes, w.ioSize)
			}
		}
		for _, p := range w.files(m.dir) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("fio %s: %v", w.name, err)
			}
			if fi.Size() != w.size {
				t.Errorf("%s: size %d, want %d", p, fi.Size(), w.size)
			}
		}
	}
	m.unmount(t)
	oracle.RequireClean(t, image)

	// After a remount the data comes from the image: fio verifies it
	// again, and the size and blocks of each file as the mount shows it
	// are kept for the kernel to match, and the SHA-256 of the files of
	// the mixed workload: fio verifies only the blocks it wrote, and
	// these files also have holes, blocks written with O_DIRECT while
	// others were read, and blocks fio read but never wrote. (Hashing
	// every file would read 768 MiB, most of it holes, once more: 12 s
	// under the race detector; fio's verification already covers each
	// byte of the sequential file and each written block of the others.)
	type fileState struct {
		size, blocks int64
		sum          *[32]byte
	}
	states := map[string]fileState{}
	m = mountImage(t, image, Options{})
	for _, w := range fioWorkloads {
		checkFioBytes(t, "verifying after a remount", w, runFio(t, fio, m.dir, w, "--verify_only"))
		for _, p := range w.files(m.dir) {
			var st fileState
			st.size, st.blocks = statSizeBlocks(t, p)
			if w.mixed {
				sum, err := oracle.HashFile(p)
				if err != nil {
					t.Fatal(err)
				}
				st.sum = &sum
			}
			states[filepath.Base(p)] = st
		}
	}
	m.unmount(t)
	oracle.RequireClean(t, image)

	// The kernel's ext2 driver reads the same: fio verifies every block
	// it wrote (so every byte of the sequential file) and sizes, blocks
	// and checksums agree. fio opens the files for writing even to
	// verify them: the kernel mounts the image read-write (it changes
	// only access times).
	loop := oracle.LoopMount(t, image, false)
	for _, w := range fioWorkloads {
		checkFioBytes(t, "verifying through the kernel", w, runFio(t, fio, loop, w, "--verify_only"))
	}
	names := make([]string, 0, len(states))
	for name := range states {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := states[name]
		p := filepath.Join(loop, name)
		size, blocks := statSizeBlocks(t, p)
		if size != want.size || blocks != want.blocks {
			t.Errorf("%s: size and 512-byte blocks through the kernel's ext2 %d, %d; through the mount %d, %d", name, size, blocks, want.size, want.blocks)
		}
		if want.sum == nil {
			continue
		}
		sum, err := oracle.HashFile(p)
		if err != nil {
			t.Errorf("kernel loop mount: %v", err)
			continue
		}
		if sum != *want.sum {
			t.Errorf("%s: sha256 through the kernel's ext2 %x, through the mount %x", name, sum[:8], want.sum[:8])
		}
	}
}

// checkFioBytes checks that each process of a fio run read ioSize bytes:
// it verifies every byte it wrote, and in the mixed workload the reads
// of the mix make up the rest.
func checkFioBytes(t *testing.T, what string, w fioWorkload, r fioReport) {
	t.Helper()
	for i, j := range r.Jobs {
		if j.Read.IOBytes != w.ioSize {
			t.Errorf("fio %s, %s: job %d read %d bytes, want %d", w.name, what, i, j.Read.IOBytes, w.ioSize)
		}
	}
}

// statSizeBlocks returns a file's size and st_blocks.
func statSizeBlocks(t *testing.T, path string) (size, blocks int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat: %v", err)
	}
	return st.Size, st.Blocks
}

// gitRunner runs git with a configuration of its own: no system or user
// configuration, a fixed identity and dates, and every file git writes
// fsynced (core.fsync=all), so that git's fsyncs reach the mount.
type gitRunner struct {
	t    *testing.T
	prog string
	env  []string
}

func newGitRunner(t *testing.T) *gitRunner {
	t.Helper()
	prog := requireProgram(t, "git")
	home := t.TempDir()
	env := append(os.Environ(),
		"HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"LC_ALL=C", "TZ=UTC", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_DATE=2005-04-07T22:13:13Z", "GIT_COMMITTER_DATE=2005-04-07T22:13:13Z")
	return &gitRunner{t: t, prog: prog, env: env}
}

// run runs git in dir and returns its standard output; it fails the test
// if git fails.
func (g *gitRunner) run(dir string, args ...string) string {
	g.t.Helper()
	out, err := g.try(dir, args...)
	if err != nil {
		g.t.Fatalf("git %s (in %s): %v", strings.Join(args, " "), dir, err)
	}
	return out
}

// try is run returning git's failure, with its output, as an error.
func (g *gitRunner) try(dir string, args ...string) (string, error) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), programTimeout)
	defer cancel()
	all := append([]string{
		"-c", "user.name=Mpage Test", "-c", "user.email=test@mpage.invalid",
		"-c", "core.fsync=all", "-c", "core.fsyncMethod=fsync",
		"-c", "init.defaultBranch=main", "-c", "gc.auto=0",
	}, args...)
	cmd := exec.CommandContext(ctx, g.prog, all...)
	cmd.Dir = dir
	cmd.Env = g.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v (context: %v)\nstdout:\n%s\nstderr:\n%s", err, ctx.Err(), stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}

// fsck runs git fsck --full --strict in dir and fails the test unless it
// exits 0 and prints nothing (no errors, warnings or dangling objects).
func (g *gitRunner) fsck(dir string) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), programTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.prog, "fsck", "--full", "--strict", "--no-progress")
	cmd.Dir = dir
	cmd.Env = g.env
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) != 0 {
		g.t.Fatalf("git fsck --full --strict in %s: %v\n%s", dir, err, out)
	}
}

// writeGitTree writes the files of the first commit under dir: 240
// source-like text files in 12 directories (each different, so that
// renames are found by content), two incompressible binary files, an
// executable, a symbolic link, an empty file and a deep directory.
func writeGitTree(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	for d := range 12 {
		for f := range 20 {
			rel := fmt.Sprintf("src/pkg%d/file%d.go", d, f)
			var b bytes.Buffer
			fmt.Fprintf(&b, "package pkg%d\n\n", d)
			for l := range rng.IntN(150) + 5 {
				fmt.Fprintf(&b, "// %s line %d: %x\nvar v%d = %d\n", rel, l, rng.Uint64(), l, rng.IntN(1000))
			}
			write(rel, b.Bytes(), 0o644)
		}
	}
	for _, b := range []struct {
		name string
		size int
	}{{"bin/blob1", 1 << 20}, {"bin/blob2", 300 << 10}} {
		data := make([]byte, b.size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		write(b.name, data, 0o644)
	}
	write("tools/run.sh", []byte("#!/bin/sh\necho run\n"), 0o755)
	write("empty", nil, 0o644)
	write("deep/a/b/c/d/e/f/g/leaf.txt", []byte("deep leaf\n"), 0o644)
	if err := os.Symlink("src/pkg0/file0.go", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// gitLog is git log --format=%s of the repository of TestGitThroughMount.
const gitLog = "third\nsecond\nfirst\n"

// checkPacked fails the test unless git count-objects -v finds no loose
// objects and one pack in repo, as after git gc.
func checkPacked(t *testing.T, g *gitRunner, repo string) {
	t.Helper()
	out := g.run(repo, "count-objects", "-v")
	counts := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			counts[k] = v
		}
	}
	if counts["count"] != "0" || counts["packs"] != "1" || counts["garbage"] != "0" {
		t.Errorf("git count-objects -v after git gc: want no loose objects, one pack and no garbage, got\n%s", out)
	}
}

// catFile is a running git cat-file --batch.
type catFile struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr bytes.Buffer
}

func startCatFile(t *testing.T, g *gitRunner, repo string) *catFile {
	t.Helper()
	c := &catFile{t: t, cmd: exec.Command(g.prog, "cat-file", "--batch")}
	c.cmd.Dir = repo
	c.cmd.Env = g.env
	c.cmd.Stderr = &c.stderr
	var err error
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewReader(stdout)
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("git cat-file --batch: %v", err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// check asks for object id and fails the test unless its contents are
// those of the file at path.
func (c *catFile) check(id, path string) {
	c.t.Helper()
	want, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := fmt.Fprintln(c.in, id); err != nil {
		c.t.Fatalf("git cat-file --batch: writing %s: %v\n%s", id, err, c.stderr.Bytes())
	}
	header, err := c.out.ReadString('\n')
	if err != nil {
		c.t.Fatalf("git cat-file --batch: reading the header of %s: %v\n%s", id, err, c.stderr.Bytes())
	}
	var gotID, typ string
	var size int
	if _, err := fmt.Sscanf(header, "%s %s %d", &gotID, &typ, &size); err != nil || gotID != id || typ != "blob" {
		c.t.Fatalf("git cat-file --batch: header %q for %s (%v)", header, id, err)
	}
	got := make([]byte, size+1)
	if _, err := io.ReadFull(c.out, got); err != nil {
		c.t.Fatalf("git cat-file --batch: reading %s: %v", id, err)
	}
	if !bytes.Equal(got[:size], want) {
		c.t.Errorf("git cat-file --batch: blob %s differs from %s (%d bytes, want %d)", id, path, size, len(want))
	}
}

// holds reports whether the process has the file at path open or
// mapped.
func (c *catFile) holds(path string) bool {
	maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", c.cmd.Process.Pid))
	if bytes.Contains(maps, []byte(path)) {
		return true
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", c.cmd.Process.Pid))
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == path {
			return true
		}
	}
	return false
}

// close ends the process, which must exit 0.
func (c *catFile) close() {
	c.t.Helper()
	c.in.Close()
	if err := c.cmd.Wait(); err != nil {
		c.t.Errorf("git cat-file --batch: %v\n%s", err, c.stderr.Bytes())
	}
}

// TestGitThroughMount runs git on a repository in the mount, with every
// file git writes fsynced: a first commit of 246 files; a second that
// renames and deletes files and whole directories (git diff must name
// exactly those changes); git gc, which packs the objects, deletes the
// loose ones and renames its temporary files into place; a third commit
// and a second git gc, which deletes the first pack while another git
// process (cat-file --batch) has it open and mapped and goes on reading
// from it; git fsck --full --strict after each step. Then a clone from
// the mount to the host and one back into the mount over git's pack
// protocol, and a local clone within the mount (which hard-links the
// pack): the working trees must agree. After unmounting, the image must
// be clean, and the kernel's ext2 driver must see the same files (by
// contents, modes, owners, times and links) as the mount showed, and
// repositories git fsck finds sound.
func TestGitThroughMount(t *testing.T) {
	requireFuse(t)
	g := newGitRunner(t)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 64 << 20})
	m := mountImage(t, image, Options{})
	repo := m.path("repo")
	g.run(m.dir, "init", "-q", "repo")
	writeGitTree(t, repo)

	g.run(repo, "add", "-A")
	g.run(repo, "commit", "-q", "-m", "first")
	if got := g.run(repo, "log", "--format=%s"); got != "first\n" {
		t.Errorf("git log after the first commit: got %q, want %q", got, "first\n")
	}
	if got := g.run(repo, "ls-files"); strings.Count(got, "\n") != 246 {
		t.Errorf("git ls-files after the first commit: %d files, want 246", strings.Count(got, "\n"))
	}
	if got := g.run(repo, "status", "--porcelain"); got != "" {
		t.Errorf("git status --porcelain after the first commit: got %q, want nothing", got)
	}
	g.fsck(repo)

	// The second commit: renames (a file, a whole directory), deletions
	// (a file, a whole directory), changes and a new file.
	g.run(repo, "mv", "src/pkg0/file3.go", "src/pkg0/renamed.go")
	g.run(repo, "mv", "src/pkg1", "moved")
	g.run(repo, "rm", "-q", "src/pkg2/file5.go")
	g.run(repo, "rm", "-q", "-r", "src/pkg3")
	want := map[string]bool{
		"R100\tsrc/pkg0/file3.go\tsrc/pkg0/renamed.go": true,
		"D\tsrc/pkg2/file5.go":                         true,
		"A\tnotes/new.txt":                             true,
	}
	for f := range 20 {
		want[fmt.Sprintf("R100\tsrc/pkg1/file%d.go\tmoved/file%d.go", f, f)] = true
		want[fmt.Sprintf("D\tsrc/pkg3/file%d.go", f)] = true
	}
	for f := range 5 {
		rel := fmt.Sprintf("src/pkg4/file%d.go", f)
		fh, err := os.OpenFile(filepath.Join(repo, rel), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(fh, "// changed in the second commit\nvar changed%d = true\n", f); err != nil {
			t.Fatal(err)
		}
		if err := fh.Close(); err != nil {
			t.Fatal(err)
		}
		want["M\t"+rel] = true
	}
	if err := os.MkdirAll(filepath.Join(repo, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "notes/new.txt"), []byte("a new file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.run(repo, "add", "-A")
	g.run(repo, "commit", "-q", "-m", "second")
	diff := g.run(repo, "diff", "-M", "--name-status", "HEAD~", "HEAD")
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(diff), "\n") {
		got[line] = true
		if !want[line] {
			t.Errorf("git diff --name-status HEAD~ HEAD: unexpected %q", line)
		}
	}
	for line := range want {
		if !got[line] {
			t.Errorf("git diff --name-status HEAD~ HEAD: missing %q", line)
		}
	}
	g.fsck(repo)

	g.run(repo, "gc", "-q", "--prune=now")
	checkPacked(t, g, repo)
	if got := g.run(repo, "log", "--format=%s"); got != "second\nfirst\n" {
		t.Errorf("git log after git gc: got %q, want %q", got, "second\nfirst\n")
	}
	if got := g.run(repo, "status", "--porcelain"); got != "" {
		t.Errorf("git status --porcelain after git gc: got %q, want nothing", got)
	}
	g.fsck(repo)

	// A second git gc after a third commit writes a new pack and
	// deletes the old one while another git process (cat-file --batch)
	// has it open and mapped; that process goes on reading objects
	// from the deleted pack.
	oldPacks, _ := filepath.Glob(filepath.Join(repo, ".git/objects/pack/*.pack"))
	blobs := strings.Fields(g.run(repo, "rev-parse", "HEAD:bin/blob1", "HEAD:src/pkg5/file7.go", "HEAD:moved/file2.go"))
	reader := startCatFile(t, g, repo)
	reader.check(blobs[0], filepath.Join(repo, "bin/blob1"))
	if len(oldPacks) != 1 || !reader.holds(oldPacks[0]) {
		t.Fatalf("git cat-file --batch does not hold the pack %v open: the test no longer deletes a pack in use", oldPacks)
	}
	if err := os.WriteFile(filepath.Join(repo, "notes/third.txt"), []byte("third\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.run(repo, "add", "-A")
	g.run(repo, "commit", "-q", "-m", "third")
	g.run(repo, "gc", "-q", "--prune=now")
	checkPacked(t, g, repo)
	if _, err := os.Stat(oldPacks[0]); !os.IsNotExist(err) {
		t.Errorf("the pack of the first git gc after the second: %v, want it deleted", err)
	}
	reader.check(blobs[1], filepath.Join(repo, "src/pkg5/file7.go"))
	reader.check(blobs[2], filepath.Join(repo, "moved/file2.go"))
	reader.close()
	if got := g.run(repo, "log", "--format=%s"); got != gitLog {
		t.Errorf("git log after the second git gc: got %q, want %q", got, gitLog)
	}
	g.fsck(repo)
	head := g.run(repo, "rev-parse", "HEAD")

	// Out of the mount and back in, over the pack protocol (--no-local:
	// git upload-pack reads the packed repository in the mount, git
	// index-pack writes the pack in the mount), and a local clone within
	// the mount, which hard-links the object files.
	host := filepath.Join(t.TempDir(), "host")
	g.run(m.dir, "clone", "-q", "--no-local", repo, host)
	back := m.path("back")
	g.run(m.dir, "clone", "-q", "--no-local", host, back)
	local := m.path("local")
	g.run(m.dir, "clone", "-q", repo, local)
	noGit := oracle.CompareOptions{Ignore: []string{".git"}}
	for _, clone := range []string{host, back, local} {
		if got := g.run(clone, "rev-parse", "HEAD"); got != head {
			t.Errorf("%s: HEAD %q, want %q", clone, got, head)
		}
		if got := g.run(clone, "status", "--porcelain"); got != "" {
			t.Errorf("%s: git status --porcelain: got %q, want nothing", clone, got)
		}
		g.fsck(clone)
		oracle.CompareTrees(t, repo, clone, noGit)
	}
	packs, err := filepath.Glob(filepath.Join(local, ".git/objects/pack/*.pack"))
	if err != nil || len(packs) != 1 {
		t.Fatalf("the local clone's packs: %v, %v; want one", packs, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(packs[0], &st); err != nil || st.Nlink != 2 {
		t.Errorf("the local clone's pack %s: %d links (%v), want 2 (hard-linked by git clone)", packs[0], st.Nlink, err)
	}

	// What the mount shows, copied out, is what the kernel must see.
	snap := filepath.Join(t.TempDir(), "snap")
	run(t, "cp", "-a", m.dir+"/.", snap)
	m.unmount(t)
	oracle.RequireClean(t, image)
	loop := oracle.LoopMount(t, image, true)
	oracle.CompareTrees(t, snap, loop, oracle.CompareOptions{Owners: true, Times: true, Ignore: []string{"lost+found"}})
	for _, r := range []string{"repo", "back", "local"} {
		g.fsck(filepath.Join(loop, r))
		if got := g.run(filepath.Join(loop, r), "log", "--format=%s"); got != gitLog {
			t.Errorf("git log in %s on the kernel's mount: got %q, want %q", r, got, gitLog)
		}
	}
}
