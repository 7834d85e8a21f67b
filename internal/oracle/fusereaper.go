package oracle

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpagefs/mpage/internal/mountinfo"
)

// A test process that serves a FUSE mount in-process and also uses it can
// be left unable to exit: when it dies (a panic, go test's timeout) while
// one of its threads waits for the answer to a request its own server had
// already read, the kernel makes that thread wait the request out
// (request_wait_answer), the thread keeps the process's file table and so
// /dev/fuse open, and nobody will ever answer. The process stays a zombie
// with one thread in D state, and go test waits for it forever.
//
// The reaper is a second process, started by TestMain, that the test
// process tells about each mount it makes. When the test process dies
// with mounts still registered, the reaper aborts their connections
// through fusectl (/sys/fs/fuse/connections/N/abort, as `fusermount -u`
// cannot), which fails the waiting requests with ENOTCONN and lets the
// process finish dying, and then detaches the mounts.

// reaperEnv names the parent pid in the reaper process's environment.
const reaperEnv = "MPAGE_FUSE_REAPER_PARENT"

// fusectlDir is where fusectl shows FUSE connections.
const fusectlDir = "/sys/fs/fuse/connections"

var reaper struct {
	mu sync.Mutex
	w  *os.File // the pipe to the reaper; nil when none runs
}

// RunFUSEReaper is for TestMain, before m.Run. In the reaper process (the
// test binary started again by it) it runs the reaper and exits. In the
// test process it starts the reaper, if it can, and returns; mounts
// registered with TrackFUSEMount are then aborted if the process dies
// with them still mounted.
func RunFUSEReaper() {
	if ppid := os.Getenv(reaperEnv); ppid != "" {
		pid, err := strconv.Atoi(ppid)
		if err != nil {
			os.Exit(2)
		}
		reap(pid, os.NewFile(3, "reaper-pipe"))
		os.Exit(0)
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fuse reaper: %v (tests run without it)\n", err)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), reaperEnv+"="+strconv.Itoa(os.Getpid()))
	cmd.ExtraFiles = []*os.File{r}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "fuse reaper: %v (tests run without it)\n", err)
		r.Close()
		w.Close()
		return
	}
	r.Close()
	go cmd.Wait() // reaped when it exits, after this process ends normally
	reaper.mu.Lock()
	reaper.w = w
	reaper.mu.Unlock()
}

// FUSEMount is a mount registered with the reaper (TrackFUSEMount).
type FUSEMount struct {
	id   int // fusectl connection number; -1 if not found
	dir  string
	once sync.Once
}

// TrackFUSEMount tells the reaper about the FUSE mount at dir, until
// Untrack or the end of tb. Register it after the mount is up, and before
// the cleanup that unmounts, so that the mount stays tracked until that
// cleanup is done.
func TrackFUSEMount(tb testing.TB, dir string) *FUSEMount {
	tb.Helper()
	m := &FUSEMount{id: -1, dir: dir}
	if id, ok := fuseConnID(dir); ok {
		m.id = id
		m.send('+')
	}
	tb.Cleanup(m.Untrack)
	return m
}

// send tells the reaper op ('+' mounted, '-' gone) for m.
func (m *FUSEMount) send(op byte) {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	if reaper.w != nil && m.id >= 0 {
		fmt.Fprintf(reaper.w, "%c%d %s\n", op, m.id, m.dir)
	}
}

// Untrack tells the reaper the mount is gone: call it after unmounting.
// Later calls do nothing.
func (m *FUSEMount) Untrack() { m.once.Do(func() { m.send('-') }) }

// Abort aborts the mount's FUSE connection now, for a test that found its
// server hung: requests waiting for an answer fail with ENOTCONN, so the
// goroutines waiting in them end, instead of staying until the process
// exits (and keeping it from exiting). The mount point is then detached.
func (m *FUSEMount) Abort() error {
	if m.id < 0 {
		return fmt.Errorf("aborting the FUSE mount at %s: its connection number was not found at mount time", m.dir)
	}
	err := abortFUSE(m.id)
	syscall.Unmount(m.dir, unix.MNT_DETACH)
	m.Untrack()
	return err
}

// fuseConnID returns the fusectl connection number of the FUSE mount at
// dir: the minor number of its device, read from mountinfo (no request to
// the mount).
func fuseConnID(dir string) (int, bool) {
	id, ok := fuseConns()[dir]
	return id, ok
}

// fuseConns maps the mount points of the FUSE mounts in mountinfo to
// their connection numbers.
func fuseConns() map[string]int {
	out := map[string]int{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+1 >= len(fields) || !strings.HasPrefix(fields[sep+1], "fuse") {
			continue
		}
		_, minor, ok := strings.Cut(fields[2], ":")
		if !ok {
			continue
		}
		if id, err := strconv.Atoi(minor); err == nil {
			out[mountinfo.Unescape(fields[4])] = id
		}
	}
	return out
}

// reap is the reaper: it keeps the mounts that the process pid reports
// on pipe, and when pid has died (gone, or a zombie whose other threads
// cannot end) it aborts those still registered and returns. It also
// returns when the pipe closes, which is how a test process that ended
// normally lets it go. A connection number that some other mount point
// uses by then (numbers are reused) is left alone.
func reap(pid int, pipe *os.File) {
	type mount struct {
		dir  string
		refs int
	}
	var mu sync.Mutex
	live := map[int]*mount{}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			if len(line) < 2 {
				continue
			}
			idText, dir, _ := strings.Cut(line[1:], " ")
			id, err := strconv.Atoi(idText)
			if err != nil {
				continue
			}
			mu.Lock()
			m := live[id]
			if line[0] == '+' {
				if m == nil {
					m = &mount{}
					live[id] = m
				}
				m.dir = dir
				m.refs++
			} else if m != nil {
				if m.refs--; m.refs <= 0 {
					delete(live, id)
				}
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
		case <-tick.C:
			if alive(pid) {
				continue
			}
		}
		mu.Lock()
		left := live
		live = map[int]*mount{}
		mu.Unlock()
		if len(left) == 0 {
			return
		}
		conns := fuseConns()
		for id, m := range left {
			if other, ok := conns[m.dir]; ok && other != id {
				continue
			}
			reused := false
			for dir, other := range conns {
				if other == id && dir != m.dir {
					reused = true
				}
			}
			if reused {
				continue
			}
			fmt.Fprintf(os.Stderr, "fuse reaper: test process %d ended with %s still mounted: aborting FUSE connection %d\n", pid, m.dir, id)
			if err := abortFUSE(id); err != nil {
				fmt.Fprintf(os.Stderr, "fuse reaper: %v\n", err)
			}
			syscall.Unmount(m.dir, unix.MNT_DETACH)
		}
		return
	}
}

// alive reports whether pid is running: not gone, not a zombie (whose
// main thread has exited, maybe with another stuck in the kernel), and
// not dying (SIGKILL pending, as exit_group leaves it on a thread that
// cannot end because it waits for a FUSE answer).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "State":
			if strings.HasPrefix(val, "Z") || strings.HasPrefix(val, "X") {
				return false
			}
		case "SigPnd", "ShdPnd":
			if mask, err := strconv.ParseUint(val, 16, 64); err == nil && mask&(1<<(unix.SIGKILL-1)) != 0 {
				return false
			}
		}
	}
	return true
}

// abortFUSE aborts FUSE connection id through fusectl, mounting fusectl
// first where it is not (root only).
func abortFUSE(id int) error {
	abort := filepath.Join(fusectlDir, strconv.Itoa(id), "abort")
	if _, err := os.Stat(abort); err != nil {
		if merr := syscall.Mount("none", fusectlDir, "fusectl", 0, ""); merr != nil {
			return fmt.Errorf("aborting FUSE connection %d: %s missing and fusectl cannot be mounted: %v", id, abort, merr)
		}
	}
	if err := os.WriteFile(abort, []byte("1"), 0); err != nil {
		return fmt.Errorf("aborting FUSE connection %d: %w", id, err)
	}
	return nil
}
