package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/internal/mountinfo"
	"github.com/mpagefs/mpage/internal/oracle"
)

// cmdTimeout bounds every external command; a peer that hangs fails its
// run instead of the whole suite.
const cmdTimeout = 20 * time.Minute

// meter accumulates what the processes of one timed run cost: CPU seconds
// (user+sys, from each child's rusage), the largest peak resident set of
// any of them, and the device requests of the run when they are known.
type meter struct {
	cpu     float64 // seconds
	rssKiB  int64
	reads   int64 // device read requests; -1 when unknown
	writes  int64 // device write requests; -1 when unknown
	procs   []string
	verbose bool
}

func newMeter() *meter { return &meter{reads: -1, writes: -1} }

// setRequests records the device requests of the run.
func (m *meter) setRequests(reads, writes int64) {
	if m != nil {
		m.reads, m.writes = reads, writes
	}
}

// account adds the rusage of a finished process: from the report of
// /usr/bin/time -v when the process ran under it (timeReport names the
// report file), else from the rusage the kernel returned for it.
func (m *meter) account(name string, ps *os.ProcessState, timeReport string) {
	if m == nil || ps == nil {
		return
	}
	var cpu float64
	var rss int64
	if t, ok := parseTimeReport(timeReport); ok {
		cpu, rss = t.cpu, t.rssKiB
	} else {
		ru, ok := ps.SysUsage().(*syscall.Rusage)
		if !ok {
			return
		}
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		rss = ru.Maxrss // kilobytes on Linux
	}
	m.cpu += cpu
	m.rssKiB = max(m.rssKiB, rss)
	m.procs = append(m.procs, fmt.Sprintf("%s %.2fs %dKiB", name, cpu, rss))
}

// timeBin is GNU time, which measures each timed command when it is
// installed. Linux counts into a child's peak RSS, at exec, the peak
// resident size of the process it was forked from; under /usr/bin/time
// that is time's own (about 1 MiB), not the bench program's (tens of
// MiB once it has compared trees and hashed files).
var timeBin = func() string {
	if st, err := os.Stat("/usr/bin/time"); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return "/usr/bin/time"
	}
	return ""
}()

// timeReport is what the suite reads from "/usr/bin/time -v".
type timeReport struct {
	cpu    float64
	rssKiB int64
}

// parseTimeReport reads the -o file of /usr/bin/time -v.
func parseTimeReport(path string) (timeReport, bool) {
	if path == "" {
		return timeReport{}, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return timeReport{}, false
	}
	return parseTimeText(string(b))
}

func parseTimeText(text string) (timeReport, bool) {
	var t timeReport
	var user, sys, rss bool
	for _, l := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ": ")
		if !ok {
			continue
		}
		switch k {
		case "User time (seconds)":
			var x float64
			_, err := fmt.Sscanf(v, "%g", &x)
			t.cpu, user = t.cpu+x, err == nil
		case "System time (seconds)":
			var x float64
			_, err := fmt.Sscanf(v, "%g", &x)
			t.cpu, sys = t.cpu+x, err == nil
		case "Maximum resident set size (kbytes)":
			_, err := fmt.Sscanf(v, "%d", &t.rssKiB)
			rss = err == nil
		}
	}
	return t, user && sys && rss
}

// timed returns the command line to run prog under /usr/bin/time -v, and
// the report file (removed by the returned function), when the meter m
// wants measuring and GNU time is installed.
func timed(m *meter, prog string, args []string) (string, []string, string, func()) {
	if m == nil || timeBin == "" {
		return prog, args, "", func() {}
	}
	f, err := os.CreateTemp("", "bench-time-*.txt")
	if err != nil {
		return prog, args, "", func() {}
	}
	name := f.Name()
	f.Close()
	return timeBin, append([]string{"-v", "-o", name, prog}, args...), name, func() { os.Remove(name) }
}

// run runs prog with args, stdout going to stdout (nil: discarded through
// /dev/null), and returns its standard error. A non-zero exit is an error
// that quotes the end of standard error.
func run(m *meter, stdout io.Writer, prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	bin, argv, report, done := timed(m, prog, args)
	defer done()
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.WaitDelay = 5 * time.Second
	if stdout == nil {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return "", err
		}
		defer null.Close()
		stdout = null
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	err := cmd.Run()
	m.account(filepath.Base(prog), cmd.ProcessState, report)
	if ctx.Err() != nil {
		return stderr.String(), fmt.Errorf("%s: timed out after %v", commandLine(prog, args), cmdTimeout)
	}
	if err != nil {
		return stderr.String(), fmt.Errorf("%s: %v%s", commandLine(prog, args), err, tail(stderr.String()))
	}
	return stderr.String(), nil
}

// tail is the last few lines of a command's error output, for messages.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 4 {
		lines = lines[len(lines)-4:]
	}
	return ": " + strings.Join(lines, " | ")
}

// commandLine quotes a command for messages and the report.
func commandLine(prog string, args []string) string {
	parts := []string{filepath.Base(prog)}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$*?") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// daemon is a background process, a FUSE server running in the
// foreground of its own process.
type daemon struct {
	name   string
	report string // /usr/bin/time -v report, or ""
	rmRep  func()
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
	err    error
}

func startDaemon(m *meter, prog string, args ...string) (*daemon, error) {
	bin, argv, report, rm := timed(m, prog, args)
	cmd := exec.Command(bin, argv...)
	// Its own process group, so that a daemon that will not exit can be
	// killed together with /usr/bin/time above it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d := &daemon{name: filepath.Base(prog), report: report, rmRep: rm, cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{w: d.stderr}
	if err := cmd.Start(); err != nil {
		rm()
		return nil, fmt.Errorf("%s: %v", commandLine(prog, args), err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	return d, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// kill kills the daemon's process group.
func (d *daemon) kill() { syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL) }

// exited reports whether the daemon has exited.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// wait waits for the daemon to exit (after its file system was
// unmounted), accounts its rusage to m, and returns its exit error.
func (d *daemon) wait(m *meter, limit time.Duration) error {
	defer d.rmRep()
	select {
	case <-d.done:
	case <-time.After(limit):
		d.kill()
		<-d.done
		return fmt.Errorf("%s did not exit %v after unmount; killed", d.name, limit)
	}
	m.account(d.name, d.cmd.ProcessState, d.report)
	if d.err != nil {
		return fmt.Errorf("%s: %v%s", d.name, d.err, tail(d.stderr.String()))
	}
	return nil
}

// waitMounted waits until a FUSE daemon has mounted its file system at
// dir. A daemon that exits first has failed, unless it left the mount
// behind (it went to the background).
func waitMounted(d *daemon, dir string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, fstype, ok := mountinfo.Lookup(dir); ok && strings.HasPrefix(fstype, "fuse") {
			return nil
		}
		if d.exited() {
			if _, _, ok := mountinfo.Lookup(dir); ok {
				return nil
			}
			return fmt.Errorf("%s exited before mounting: %v%s", d.name, d.err, tail(d.stderr.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not mount %s within 15 s", d.name, dir)
}

// unmount unmounts dir, retrying while it is busy.
func unmount(m *meter, dir string) error {
	var err error
	for range 50 {
		if _, _, ok := mountinfo.Lookup(dir); !ok {
			return nil
		}
		if _, err = run(m, nil, tool("umount"), dir); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// loopAttach attaches image to a free loop device and returns it.
func loopAttach(m *meter, image string, readOnly bool) (string, error) {
	args := []string{"--find", "--show"}
	if readOnly {
		args = append(args, "--read-only")
	}
	var out bytes.Buffer
	if _, err := run(m, &out, tool("losetup"), append(args, image)...); err != nil {
		return "", err
	}
	dev := strings.TrimSpace(out.String())
	if !strings.HasPrefix(dev, "/dev/loop") {
		return "", fmt.Errorf("losetup printed %q, not a loop device", dev)
	}
	loopCleanups.Store(dev, pushCleanup(func() { exec.Command(tool("losetup"), "-d", dev).Run() }))
	return dev, nil
}

// loopCleanups holds the cleanup of each attached loop device.
var loopCleanups sync.Map // string -> func()

// loopDetach detaches a loop device.
func loopDetach(m *meter, dev string) error {
	_, err := run(m, nil, tool("losetup"), "-d", dev)
	if done, ok := loopCleanups.LoadAndDelete(dev); ok && err == nil {
		done.(func())()
	}
	return err
}

// loopStat reads /sys/block/loopN/stat.
func loopStat(dev string) (oracle.BlockStat, error) {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "stat"))
	if err != nil {
		return oracle.BlockStat{}, err
	}
	return oracle.ParseBlockStat(string(b))
}

// kernelSession attaches image to a loop device, mounts it with the
// kernel's ext2 at dir, runs body, unmounts and detaches, and records the
// device requests from attach to detach (fields 1 and 5 of the device's
// stat) in m.
func kernelSession(m *meter, image, dir string, readOnly bool, body func() error) error {
	dev, err := loopAttach(m, image, readOnly)
	if err != nil {
		return err
	}
	before, err := loopStat(dev)
	if err != nil {
		loopDetach(m, dev)
		return err
	}
	opts := "rw"
	if readOnly {
		opts = "ro"
	}
	if _, err := run(m, nil, tool("mount"), "-t", "ext2", "-o", opts, dev, dir); err != nil {
		loopDetach(m, dev)
		return err
	}
	done := pushCleanup(func() { exec.Command(tool("umount"), dir).Run() })
	berr := body()
	uerr := unmount(m, dir)
	if uerr == nil {
		done()
	}
	after, serr := loopStat(dev)
	derr := loopDetach(m, dev)
	if serr == nil {
		d := after.Sub(before)
		m.setRequests(int64(d.ReadIOs), int64(d.WriteIOs))
	}
	return errors.Join(berr, uerr, serr, derr)
}

// fuseSession starts a FUSE daemon (prog args..., which mounts at dir),
// waits for the mount, runs body, unmounts and waits for the daemon to
// exit.
func fuseSession(m *meter, dir string, body func() error, prog string, args ...string) error {
	d, err := startDaemon(m, prog, args...)
	if err != nil {
		return err
	}
	done := pushCleanup(func() { exec.Command(tool("umount"), dir).Run() })
	defer func() {
		if _, _, ok := mountinfo.Lookup(dir); !ok {
			done()
		}
	}()
	if err := waitMounted(d, dir); err != nil {
		if !d.exited() {
			d.kill()
		}
		d.wait(m, 10*time.Second)
		return err
	}
	berr := body()
	uerr := unmount(m, dir)
	werr := d.wait(m, 2*time.Minute)
	return errors.Join(berr, uerr, werr)
}

// fsyncFile opens path and fsyncs it: the last step of every timed write,
// so that every peer's result is on the disk, not in the OS cache.
func fsyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// dropCaches writes back dirty data and drops the OS page cache (echo 3 >
// /proc/sys/vm/drop_caches).
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// mpageStats is the part of "mpage --stats=json" the suite uses.
type mpageStats struct {
	ReadCalls  int64 `json:"read_calls"`
	WriteCalls int64 `json:"write_calls"`
}

// parseMpageStats finds the --stats=json object in mpage's standard
// error.
func parseMpageStats(stderr string) (mpageStats, error) {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "{") {
			var s mpageStats
			if err := json.Unmarshal([]byte(l), &s); err != nil {
				return s, fmt.Errorf("mpage --stats=json: %v", err)
			}
			return s, nil
		}
	}
	return mpageStats{}, fmt.Errorf("mpage --stats=json printed no JSON object")
}

// runMpage runs the mpage binary with --stats=json and records its
// device calls in m.
func runMpage(m *meter, stdout io.Writer, args ...string) error {
	stderr, err := run(m, stdout, mpageBin, append([]string{"--stats=json"}, args...)...)
	if err != nil {
		return err
	}
	s, err := parseMpageStats(stderr)
	if err != nil {
		return err
	}
	m.setRequests(s.ReadCalls, s.WriteCalls)
	return nil
}

// parseDDRecords reads the "N+M records in/out" lines of dd's report:
// the number of read and write calls it made.
func parseDDRecords(stderr string) (reads, writes int64, ok bool) {
	var gotIn, gotOut bool
	for _, l := range strings.Split(stderr, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[1] != "records" {
			continue
		}
		full, part, found := strings.Cut(f[0], "+")
		if !found {
			continue
		}
		a, err1 := strconv.ParseInt(full, 10, 64)
		b, err2 := strconv.ParseInt(part, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		switch f[2] {
		case "in":
			reads, gotIn = a+b, true
		case "out":
			writes, gotOut = a+b, true
		}
	}
	return reads, writes, gotIn && gotOut
}

// cleanups undo mounts and loop devices if the suite is interrupted half
// way. Each is removed as soon as its work is undone normally, so that a
// loop device number reused by someone else is never touched.
var cleanups struct {
	mu   sync.Mutex
	next int
	m    map[int]func()
}

// pushCleanup registers f and returns the function that unregisters it.
func pushCleanup(f func()) (done func()) {
	cleanups.mu.Lock()
	defer cleanups.mu.Unlock()
	if cleanups.m == nil {
		cleanups.m = map[int]func(){}
	}
	id := cleanups.next
	cleanups.next++
	cleanups.m[id] = f
	return func() {
		cleanups.mu.Lock()
		defer cleanups.mu.Unlock()
		delete(cleanups.m, id)
	}
}

// runCleanups runs the registered cleanups, newest first.
func runCleanups() {
	cleanups.mu.Lock()
	defer cleanups.mu.Unlock()
	for id := cleanups.next - 1; id >= 0; id-- {
		if f, ok := cleanups.m[id]; ok {
			f()
			delete(cleanups.m, id)
		}
	}
}
