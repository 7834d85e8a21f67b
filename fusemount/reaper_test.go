package fusemount

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestReaperEndsAStuckTestProcess runs TestReaperStuckHelper in a child
// test process: it mounts an image in-process, blocks its own server's
// answer to an O_DIRECT read made by one of its goroutines (it holds the
// page lock the READ handler needs), and exits. The reading thread then
// waits for an answer that will never come, the process cannot finish
// exiting, and without the FUSE reaper (TestMain) go test would wait for
// it forever. The child must be gone within 20 s, with the reaper saying
// it aborted the connection, and its mount must be gone too.
func TestReaperEndsAStuckTestProcess(t *testing.T) {
	requireFuse(t)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	cmd := exec.Command(os.Args[0], "-test.run=^TestReaperStuckHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "MPAGE_REAPER_STUCK="+image)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child reports its mount point and connection once stuck. Its
	// output is read on another goroutine: a stuck child keeps the pipe
	// open.
	var (
		mu    sync.Mutex
		dir   string
		conn  = -1
		lines []string
	)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			lines = append(lines, line)
			if rest, ok := strings.CutPrefix(line, "STUCK "); ok {
				if f := strings.Fields(rest); len(f) == 2 {
					dir = f[0]
					conn, _ = strconv.Atoi(f[1])
				}
			}
			mu.Unlock()
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		// The reaper failed: free the child ourselves, so that this
		// test does not hang too.
		mu.Lock()
		d, c := dir, conn
		mu.Unlock()
		if c >= 0 {
			os.WriteFile(fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", c), []byte("1"), 0)
			unix.Unmount(d, unix.MNT_DETACH)
		}
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the stuck child was not gone within 20 s; its output:\n%s\n%s", strings.Join(lines, "\n"), stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if dir == "" {
		t.Fatalf("the child never got stuck; its output:\n%s\n%s", strings.Join(lines, "\n"), stderr.String())
	}
	if !strings.Contains(stderr.String(), "fuse reaper: test process") || !strings.Contains(stderr.String(), "aborting FUSE connection") {
		t.Errorf("the reaper did not report the abort; child's stderr:\n%s", stderr.String())
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mounts), " "+dir+" ") {
		t.Errorf("%s is still mounted after the child ended", dir)
	}
}

// TestReaperStuckHelper is not a test: with MPAGE_REAPER_STUCK set to an
// image, it gets one of its goroutines stuck in a read of its own mount
// and exits (see TestReaperEndsAStuckTestProcess).
func TestReaperStuckHelper(t *testing.T) {
	image := os.Getenv("MPAGE_REAPER_STUCK")
	if image == "" {
		t.Skip("runs only as the child of TestReaperEndsAStuckTestProcess")
	}
	m := mountImage(t, image, Options{})
	data := bytes.Repeat([]byte("stuck "), 2000)
	if err := os.WriteFile(m.path("f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Hold the lock of the file's first page, so that a READ of it waits.
	e2 := m.fsys.Ext2()
	ino, err := e2.Lookup("f")
	if err != nil {
		t.Fatal(err)
	}
	p := ino.Mapping().Lookup(0)
	if p == nil {
		t.Fatal("page 0 of f is not cached after the write")
	}
	p.Lock()
	go func() {
		fd, err := unix.Open(m.path("f"), unix.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			return
		}
		buf := alignedBuf(4096)
		unix.Pread(fd, buf, 0) // never answered
	}()
	time.Sleep(500 * time.Millisecond)
	conn, _ := connOf(m.dir)
	fmt.Printf("STUCK %s %d\n", m.dir, conn)
	os.Stdout.Sync()
	os.Exit(3)
}

// connOf returns the FUSE connection number of the mount at dir (the
// minor number of its device in mountinfo).
func connOf(dir string) (int, bool) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == dir {
			_, minor, _ := strings.Cut(f[2], ":")
			n, err := strconv.Atoi(minor)
			return n, err == nil
		}
	}
	return 0, false
}

// alignedBuf returns n bytes aligned to 4096, for O_DIRECT.
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)) & 4095
	return b[off : off+n]
}
