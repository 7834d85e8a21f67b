package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// requireMount skips where FUSE mounts cannot be made here.
func requireMount(t *testing.T) { oracle.RequireFUSE(t) }

// isMounted reports whether dir is a mount point in /proc/self/mountinfo.
func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mountServer finds the background server of the mount at dir: the
// process whose command line is "mpage ... mount --foreground ... dir".
func mountServer(t *testing.T, dir string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 3 || args[0] != mpageBin || args[len(args)-1] != dir {
			continue
		}
		for _, a := range args {
			if a == "--foreground" {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				return pid
			}
		}
	}
	t.Fatalf("no mount server process for %s", dir)
	return 0
}

// exited reports whether process pid is gone (or a zombie: not ours to
// reap).
func exited(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// unmountBackground unmounts dir with fusermount3 -u and waits for its
// server to write everything back and exit.
func unmountBackground(t *testing.T, dir string) {
	t.Helper()
	pid := mountServer(t, dir)
	if out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u %s: %v\n%s", dir, err, out)
	}
	waitFor(t, "the mount server to exit", func() bool { return exited(pid) })
}

// cleanupMount unmounts dir at the end of the test if it is still
// mounted.
func cleanupMount(t *testing.T, dir string) {
	t.Cleanup(func() {
		if isMounted(t, dir) {
			exec.Command("fusermount3", "-u", "-z", dir).Run()
		}
	})
}

// TestMountBackground mounts an mke2fs -d image in the background: the
// command returns, printing nothing, with the mount ready; the tree reads
// back as made; a file written through the mount is in the image after
// fusermount3 -u, which leaves it clean.
func TestMountBackground(t *testing.T) {
	requireMount(t)
	src := filepath.Join(t.TempDir(), "tree")
	oracle.GenerateTree(t, src, oracle.DefaultTree)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, FromDir: src})
	dir := t.TempDir()
	cleanupMount(t, dir)

	r := mpage(t, "mount", image, dir)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("mpage mount: exit %d, stdout %q, stderr %q; want 0 and no output", r.code, r.stdout, r.stderr)
	}
	if !isMounted(t, dir) {
		t.Fatalf("%s is not mounted when mpage mount returned", dir)
	}
	oracle.CompareTrees(t, src, dir, oracle.CompareOptions{Owners: true, Times: true, Ignore: []string{"lost+found"}})
	want := bytes.Repeat([]byte("written through FUSE\n"), 5000)
	if err := os.WriteFile(filepath.Join(dir, "d00", "new"), want, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "hard-a"), filepath.Join(dir, "d01", "moved")); err != nil {
		t.Fatal(err)
	}

	unmountBackground(t, dir)
	oracle.RequireClean(t, image)
	if got := oracle.DebugfsDump(t, image, "/d00/new"); !bytes.Equal(got, want) {
		t.Errorf("debugfs dump of the written file: %d bytes, want %d", len(got), len(want))
	}
	loop := oracle.LoopMount(t, image, true)
	if fi, err := os.Stat(filepath.Join(loop, "d01", "moved")); err != nil || fi.Mode().Perm() != mustStat(t, filepath.Join(src, "hard-a")).Mode().Perm() {
		t.Errorf("the kernel's ext2 driver sees the moved file: %v, %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(loop, "hard-a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old name after the move: got %v, want not exist", err)
	}
}

func mustStat(t *testing.T, name string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// TestMountForegroundSignals serves in the foreground: SIGTERM with a
// file open leaves the busy mount serving and says so; after the file is
// closed SIGINT unmounts, and the command exits 0 with the image clean and
// the data in it.
func TestMountForegroundSignals(t *testing.T) {
	requireMount(t)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	dir := t.TempDir()
	cleanupMount(t, dir)
	cmd := exec.Command(mpageBin, "--stats=json", "mount", "--foreground", image, dir)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exit := make(chan error, 1)
	go func() { exit <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exit
	})
	waitFor(t, "the mount", func() bool { return isMounted(t, dir) })

	f, err := os.Create(filepath.Join(dir, "open"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("still open at the first signal\n"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the busy message", func() bool { return strings.Contains(stderr.String(), "is busy") })
	if !isMounted(t, dir) {
		t.Fatalf("a busy mount went away at SIGTERM; stderr %q", stderr.String())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exit:
		exit <- err // for the cleanup
		if err != nil {
			t.Fatalf("mpage mount --foreground after SIGINT: %v; stderr %q", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("mpage mount --foreground did not exit after SIGINT; stderr %q", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q, want nothing", stdout.String())
	}
	if !strings.Contains(stderr.String(), `"command":"mount"`) {
		t.Errorf("stderr lacks the --stats=json line: %q", stderr.String())
	}
	if isMounted(t, dir) {
		t.Errorf("%s still mounted after the command exited", dir)
	}
	oracle.RequireClean(t, image)
	if got := string(oracle.DebugfsDump(t, image, "/open")); got != "still open at the first signal\n" {
		t.Errorf("debugfs dump /open: %q", got)
	}
}

// lockedBuffer is a bytes.Buffer that a command writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Len() int { return len(l.String()) }

// TestMountReadOnly mounts with --ro: changes fail with EROFS and the
// image is left byte for byte as it was.
func TestMountReadOnly(t *testing.T) {
	requireMount(t)
	src := filepath.Join(t.TempDir(), "tree")
	oracle.GenerateTree(t, src, oracle.TreeSpec{Seed: 3, Depth: 1, DirsPerDir: 1, FilesPerDir: 3})
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, FromDir: src})
	before, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cleanupMount(t, dir)
	mustRun(t, "mount", "--ro", image, dir)
	oracle.CompareTrees(t, src, dir, oracle.CompareOptions{Owners: true, Times: true, Ignore: []string{"lost+found"}})
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("creating a file on a --ro mount: got %v, want EROFS", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir on a --ro mount: got %v, want EROFS", err)
	}
	unmountBackground(t, dir)
	after, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("a --ro mount changed the image")
	}
}

// TestMountErrors checks what the command says when it cannot mount.
func TestMountErrors(t *testing.T) {
	requireMount(t)
	image := emptyImage(t, 4<<20)
	notExt2 := filepath.Join(t.TempDir(), "zeros.img")
	if err := os.WriteFile(notExt2, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"one argument", []string{"mount", image}, 2, "accepts 2 arg(s)"},
		{"missing image", []string{"mount", filepath.Join(dir, "nope.img"), dir}, 1, "no such file or directory"},
		{"mount point missing", []string{"mount", image, filepath.Join(dir, "nope")}, 1, "no such file or directory"},
		{"mount point a file", []string{"mount", image, notExt2}, 1, "not a directory"},
		{"not ext2, background", []string{"mount", notExt2, dir}, 1, "cannot open as ext2"},
		{"not ext2, foreground", []string{"mount", "--foreground", notExt2, dir}, 1, "cannot open as ext2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mpage(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.inStderr) {
				t.Errorf("mpage %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.code, tt.inStderr)
			}
			if isMounted(t, dir) {
				t.Fatalf("%s was mounted", dir)
			}
		})
	}
}

// TestMountNoXattr checks that --no-xattr turns extended attributes off
// (and is passed on to the background server), while a default mount
// serves them.
func TestMountNoXattr(t *testing.T) {
	requireMount(t)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, InodeSize: 256})
	for _, req := range []string{"write /dev/null f", "ea_set /f user.color blue"} {
		if out, err := exec.Command(oracle.Tool(t, "debugfs"), "-w", "-R", req, image).CombinedOutput(); err != nil {
			t.Fatalf("debugfs -w -R %q: %v: %s", req, err, out)
		}
	}
	for _, tt := range []struct {
		name    string
		flags   []string
		wantErr bool
	}{
		{name: "default", wantErr: false},
		{name: "no-xattr", flags: []string{"--no-xattr"}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cleanupMount(t, dir)
			args := append(append([]string{"mount"}, tt.flags...), image, dir)
			if r := mpage(t, args...); r.code != 0 {
				t.Fatalf("mpage %v: exit %d, stderr %q", args, r.code, r.stderr)
			}
			buf := make([]byte, 64)
			n, err := unix.Getxattr(filepath.Join(dir, "f"), "user.color", buf)
			if tt.wantErr {
				if err == nil {
					t.Errorf("getxattr user.color = %q, want an error with --no-xattr", buf[:n])
				}
			} else if err != nil || string(buf[:n]) != "blue" {
				t.Errorf("getxattr user.color = %q, %v; want \"blue\"", buf[:max(n, 0)], err)
			}
			unmountBackground(t, dir)
		})
	}
	oracle.RequireClean(t, image)
}
