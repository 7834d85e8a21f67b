package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/internal/mountinfo"
	"github.com/mpagefs/mpage/internal/oracle"
)

// bench is one run of the suite.
type bench struct {
	cfg     config
	root    string // repository
	results string // bench/results
	work    string // scratch files, on the same disk as results
	mnt     string // mount point
	start   time.Time
	end     time.Time
	root0   bool // running as root
	canDrop bool // can drop the OS page cache
	notes   []string
	sys     sysInfo
	// selfHWMKiB is the bench program's own peak RSS (VmHWM): the floor
	// of every child's rusage maxrss.
	selfHWMKiB int64

	workloads []*workload
	fio       *fioWorkload

	srcFile string   // the file of workloads 2 and 3
	srcSum  [32]byte // its SHA-256
}

// workload is one timed task done by every peer.
type workload struct {
	key   string
	title string
	what  string // one paragraph for the report
	bytes int64  // payload of one run, for MB/s
	peers []*peer
	res   []*peerResult
	notes []string
	// explain, if set, returns a paragraph explaining a peer's failure.
	explain func(r *peerResult, failure string) string
}

// peer is one way to do a workload.
type peer struct {
	name    string
	ours    bool // mpage
	raw     bool // the raw-disk limit, not a file system
	need    []string
	command string // what is timed, for the report

	prepare func() error          // untimed, before each run
	timed   func(m *meter) error  // the timed part
	verify  func(m *meter) error  // untimed, after each counted run
	after   func()                // untimed, after each run
	missing string                // why the peer is skipped
	check   func() (string, bool) // extra availability check
}

// sample is one counted run of one peer.
type sample struct {
	wall, cpu     float64
	rssKiB        int64
	reads, writes int64 // device requests; -1 unknown
	failed        string
}

// peerResult is the counted runs of one peer on one workload.
type peerResult struct {
	peer    *peer
	skipped string
	samples []sample
}

func newBench(c config, root, results string) (*bench, error) {
	b := &bench{cfg: c, root: root, results: results, start: time.Now(), root0: os.Geteuid() == 0}
	b.work = filepath.Join(results, "work")
	b.mnt = filepath.Join(b.work, "mnt")
	if err := b.cleanWork(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(b.mnt, 0o755); err != nil {
		return nil, err
	}
	// The mount point as the kernel names it in mountinfo.
	if p, err := filepath.EvalSymlinks(b.mnt); err == nil {
		b.mnt = p
	}
	if !b.root0 {
		b.note("Not run as root: the kernel (loop mount) and FUSE peers are skipped and the OS page cache could not be dropped before cold reads.")
	}
	if err := dropCaches(); err != nil {
		b.note(fmt.Sprintf("The OS page cache could not be dropped (%v): cold-read numbers are not cold.", err))
	} else {
		b.canDrop = true
	}
	logf("building mpage: go build -o %s ./cmd/mpage", filepath.Join(results, "mpage"))
	bin, built, err := buildMpage(root, results)
	if err != nil {
		return nil, err
	}
	mpageBin = bin
	b.sys = collectSysInfo(b.work, root)
	b.sys.built = built
	return b, nil
}

// cleanWork removes the scratch directory, unmounting anything a previous,
// interrupted run left mounted in it.
func (b *bench) cleanWork() error {
	mnt := filepath.Join(b.work, "mnt")
	if p, err := filepath.EvalSymlinks(mnt); err == nil {
		mnt = p
	}
	if _, _, ok := mountinfo.Lookup(mnt); ok {
		if err := unmount(nil, mnt); err != nil {
			return fmt.Errorf("%s is still mounted from an earlier run: %v", mnt, err)
		}
	}
	return os.RemoveAll(b.work)
}

func (b *bench) note(s string) {
	b.notes = append(b.notes, s)
	logf("note: %s", s)
}

func (b *bench) want(key string) bool {
	if b.cfg.only == "" {
		return true
	}
	for _, k := range strings.Split(b.cfg.only, ",") {
		if strings.TrimSpace(k) == key {
			return true
		}
	}
	return false
}

func (b *bench) runAll() error {
	defer func() {
		b.end = time.Now()
		os.RemoveAll(b.work)
		if v := firstField("/proc/self/status", "VmHWM"); v != "" {
			fmt.Sscanf(v, "%d", &b.selfHWMKiB)
		}
	}()
	if b.want("tree") {
		w, err := b.treeWorkload()
		if err != nil {
			return err
		}
		b.measure(w)
	}
	if b.want("write") || b.want("read") || b.want("fuse") {
		if err := b.makeSource(); err != nil {
			return err
		}
	}
	if b.want("write") {
		b.measure(b.writeWorkload())
	}
	if b.want("read") {
		w, err := b.readWorkload()
		if err != nil {
			return err
		}
		b.measure(w)
	}
	if b.want("fuse") {
		b.runFio()
	}
	return nil
}

// availability fills p.missing.
func (b *bench) availability(p *peer) {
	var miss []string
	for _, t := range p.need {
		if oracle.LookTool(t) == "" {
			miss = append(miss, t)
		}
	}
	if len(miss) > 0 {
		p.missing = strings.Join(miss, ", ") + " not installed"
		return
	}
	if p.check != nil {
		if why, ok := p.check(); !ok {
			p.missing = why
		}
	}
}

// measure runs every available peer of w: warm-up runs, then counted
// runs, each prepared, timed and (if counted) verified.
func (b *bench) measure(w *workload) {
	b.workloads = append(b.workloads, w)
	total := b.cfg.warmup + b.cfg.runs
	for _, p := range w.peers {
		b.availability(p)
		r := &peerResult{peer: p}
		w.res = append(w.res, r)
		if p.missing != "" {
			r.skipped = p.missing
			logf("%s: skipping %s: %s", w.key, p.name, p.missing)
			continue
		}
		for i := range total {
			counted := i >= b.cfg.warmup
			label := fmt.Sprintf("warm-up %d/%d", i+1, b.cfg.warmup)
			if counted {
				label = fmt.Sprintf("run %d/%d", i-b.cfg.warmup+1, b.cfg.runs)
			}
			s := b.once(p, counted)
			status := "ok"
			if s.failed != "" {
				status = "FAILED: " + s.failed
			}
			req := ""
			if s.reads >= 0 {
				req = fmt.Sprintf(" requests r%d/w%d", s.reads, s.writes)
			}
			logf("%-5s %-22s %-12s %7.2f s  cpu %6.2f s  rss %5d MiB%s  %s",
				w.key, p.name, label, s.wall, s.cpu, s.rssKiB>>10, req, status)
			if counted {
				r.samples = append(r.samples, s)
			}
		}
	}
}

// once does one run of p.
func (b *bench) once(p *peer, counted bool) sample {
	if p.after != nil {
		defer p.after()
	}
	if p.prepare != nil {
		if err := p.prepare(); err != nil {
			return sample{failed: "preparing: " + err.Error(), reads: -1, writes: -1}
		}
	}
	m := newMeter()
	t0 := time.Now()
	err := p.timed(m)
	wall := time.Since(t0).Seconds()
	s := sample{wall: wall, cpu: m.cpu, rssKiB: m.rssKiB, reads: m.reads, writes: m.writes}
	if err != nil {
		s.failed = err.Error()
		return s
	}
	if counted && p.verify != nil {
		if err := p.verify(nil); err != nil {
			s.failed = "verification: " + err.Error()
		}
	}
	return s
}

// ---- shared steps ----

// mke2fs makes an empty ext2 image as every write peer gets it.
func mke2fs(m *meter, image string, size int64, inodes int64) error {
	os.Remove(image)
	args := []string{"-q", "-F", "-t", "ext2", "-b", "4096", "-I", "256"}
	if inodes > 0 {
		args = append(args, "-N", fmt.Sprint(inodes))
	}
	args = append(args, image, fmt.Sprintf("%dk", size>>10))
	_, err := run(m, nil, tool("mke2fs"), args...)
	return err
}

// fsck runs e2fsck -fn and fails unless the image is clean.
func fsck(image string) error {
	out, err := run(nil, nil, tool("e2fsck"), "-fn", image)
	if err != nil {
		return fmt.Errorf("e2fsck -fn does not find the image clean: %v%s", err, tail(out))
	}
	return nil
}

// hashCommand runs a command and returns the SHA-256 of its output.
func hashCommand(prog string, args ...string) ([32]byte, int64, error) {
	h := sha256.New()
	cw := &countWriter{w: h}
	_, err := run(nil, cw, prog, args...)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readAll reads a file to bring it into the OS page cache.
func readAll(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

// makeSource writes the file of workloads 2 and 3: random content, made
// once, synced, with its SHA-256 kept for verification.
func (b *bench) makeSource() error {
	b.srcFile = filepath.Join(b.work, "source.bin")
	logf("making the %d MiB source file %s (random content)", b.cfg.size>>20, b.srcFile)
	f, err := os.Create(b.srcFile)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'m', 'p', 'a', 'g', 'e'})
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := b.cfg.size; left > 0; {
		n := min(left, int64(len(buf)))
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	copy(b.srcSum[:], h.Sum(nil))
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ---- workload 2: write one file ----

func (b *bench) writeWorkload() *workload {
	size := b.cfg.size
	w := &workload{
		key:   "write",
		title: fmt.Sprintf("2. Write one %s file into an empty image, synced", humanBytes(size)),
		bytes: size,
		what: "Each run gets a fresh empty image made by `mke2fs -t ext2 -b 4096 -I 256` (untimed), " +
			"the source file is read once before timing so that it comes from the OS page cache, " +
			"and `sync` runs before the clock starts. Every timed command ends with an fsync(2) of the image " +
			"(of the plain file for dd), so each result is on the disk. Verified after each counted run: " +
			"`e2fsck -fn` clean and the SHA-256 of /f, " + b.imageReader() + ", equal to the source's.",
	}
	image := filepath.Join(b.work, "write.img")
	plain := filepath.Join(b.work, "plain.bin")
	imgSize := roundUp(size+size/8+64<<20, 4<<20)
	prep := func() error {
		if err := mke2fs(nil, image, imgSize, 0); err != nil {
			return err
		}
		os.Remove(plain)
		if err := readAll(b.srcFile); err != nil {
			return err
		}
		syscall.Sync()
		return nil
	}
	verify := func(*meter) error {
		if err := fsck(image); err != nil {
			return err
		}
		sum, n, err := b.hashImageFile(image, "f")
		if err != nil {
			return err
		}
		if sum != b.srcSum || n != size {
			return fmt.Errorf("/f in the image (%d bytes) differs from the source (%d bytes)", n, size)
		}
		return nil
	}
	after := func() { os.Remove(image); os.Remove(plain) }
	src := b.srcFile
	w.peers = []*peer{
		{
			name: "mpage cp", ours: true,
			command: fmt.Sprintf("mpage --cache %s --stats=json cp SRC IMAGE:/f", b.cfg.cache),
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if err := runMpage(m, nil, "--cache", b.cfg.cache, "cp", src, image+":/f"); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		},
		{
			name: "debugfs write", need: []string{"debugfs"},
			command: "debugfs -w -R 'write SRC f' IMAGE",
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if _, err := run(m, nil, tool("debugfs"), "-w", "-R", "write "+src+" f", image); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		},
		{
			name: "e2cp", need: []string{"e2cp"},
			command: "e2cp SRC IMAGE:/f",
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if _, err := run(m, nil, tool("e2cp"), src, image+":/f"); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		},
		{
			name: "kernel (loop mount)", need: []string{"losetup", "mount", "umount", "cp"}, check: b.needRoot,
			command: "losetup; mount -t ext2; cp SRC MNT/f; umount; losetup -d",
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if err := kernelSession(m, image, b.mnt, false, func() error {
					_, err := run(m, nil, tool("cp"), src, filepath.Join(b.mnt, "f"))
					return err
				}); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		},
		{
			name: "fuse2fs", need: []string{"fuse2fs", "cp", "umount"}, check: b.needFuse,
			command: "fuse2fs -f IMAGE MNT & cp SRC MNT/f; umount MNT; wait",
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if err := fuseSession(m, b.mnt, func() error {
					_, err := run(m, nil, tool("cp"), src, filepath.Join(b.mnt, "f"))
					return err
				}, tool("fuse2fs"), "-f", image, b.mnt); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		},
		{
			name: "raw dd (limit)", raw: true, need: []string{"dd"},
			command: "dd if=SRC of=PLAINFILE bs=1M conv=fsync",
			prepare: prep, after: after,
			verify: func(*meter) error {
				sum, err := oracle.HashFile(plain)
				if err != nil {
					return err
				}
				if sum != b.srcSum {
					return fmt.Errorf("the plain file differs from the source")
				}
				return nil
			},
			timed: func(m *meter) error {
				return ddRun(m, "if="+src, "of="+plain, "bs=1M", "conv=fsync")
			},
		},
	}
	return w
}

// hashImageFile returns the SHA-256 and length of the file name in the
// root of image, read by the kernel through a read-only loop mount when
// the suite runs as root, else by debugfs.
func (b *bench) hashImageFile(image, name string) ([32]byte, int64, error) {
	if !b.root0 {
		return hashCommand(tool("debugfs"), "-R", "cat /"+name, image)
	}
	var sum [32]byte
	var n int64
	err := kernelSession(nil, image, b.mnt, true, func() error {
		f, err := os.Open(filepath.Join(b.mnt, name))
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err = io.Copy(h, f)
		copy(sum[:], h.Sum(nil))
		return err
	})
	return sum, n, err
}

func (b *bench) imageReader() string {
	if b.root0 {
		return "read through a read-only kernel loop mount"
	}
	return "read by `debugfs -R 'cat /f'`"
}

// ddRun runs dd and records its read and write calls.
func ddRun(m *meter, args ...string) error {
	stderr, err := run(m, nil, tool("dd"), args...)
	if err != nil {
		return err
	}
	if r, wr, ok := parseDDRecords(stderr); ok {
		m.setRequests(r, wr)
	}
	return nil
}

func (b *bench) needRoot() (string, bool) {
	if !b.root0 {
		return "needs root (loop devices and mount)", false
	}
	return "", true
}

func (b *bench) needFuse() (string, bool) {
	if !b.root0 {
		return "needs root here (mounting FUSE)", false
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "no /dev/fuse", false
	}
	return "", true
}

// ---- workload 3: read it back cold ----

func (b *bench) readWorkload() (*workload, error) {
	size := b.cfg.size
	w := &workload{
		key:   "read",
		title: fmt.Sprintf("3. Read the %s file back, cold", humanBytes(size)),
		bytes: size,
	}
	image := filepath.Join(b.work, "read.img")
	plain := filepath.Join(b.work, "read-plain.bin")
	// One image for every reader, written once by the kernel when it can
	// (the reference allocator), else by debugfs, else by mpage.
	imgSize := roundUp(size+size/8+64<<20, 4<<20)
	if err := mke2fs(nil, image, imgSize, 0); err != nil {
		return nil, fmt.Errorf("making the read image: %v", err)
	}
	writer := ""
	switch {
	case b.root0 && oracle.LookTool("losetup") != "":
		writer = "the kernel (loop mount + cp)"
		if err := kernelSession(nil, image, b.mnt, false, func() error {
			_, err := run(nil, nil, tool("cp"), b.srcFile, filepath.Join(b.mnt, "f"))
			return err
		}); err != nil {
			return nil, fmt.Errorf("writing the read image: %v", err)
		}
	case oracle.LookTool("debugfs") != "":
		writer = "debugfs write"
		if _, err := run(nil, nil, tool("debugfs"), "-w", "-R", "write "+b.srcFile+" f", image); err != nil {
			return nil, fmt.Errorf("writing the read image: %v", err)
		}
	default:
		writer = "mpage cp"
		if err := runMpage(newMeter(), nil, "cp", b.srcFile, image+":/f"); err != nil {
			return nil, fmt.Errorf("writing the read image: %v", err)
		}
	}
	if oracle.LookTool("e2fsck") != "" {
		if err := fsck(image); err != nil {
			return nil, fmt.Errorf("the read image: %v", err)
		}
	}
	if _, err := run(nil, nil, tool("cp"), b.srcFile, plain); err != nil {
		return nil, err
	}
	if err := fsyncFile(image); err != nil {
		return nil, err
	}
	if err := fsyncFile(plain); err != nil {
		return nil, err
	}
	cold := "The OS page cache is dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) before each run"
	if !b.canDrop {
		cold = "The OS page cache could NOT be dropped (not root, or not allowed): these reads are warm, not cold"
	}
	w.what = fmt.Sprintf("One image, made by `mke2fs` and written by %s, is read by every peer; dd reads a plain copy of "+
		"the source on the same disk. %s. Output goes to /dev/null (debugfs dump and e2cp accept /dev/null as "+
		"the destination file). Verification: after each counted run the same command runs again, untimed, "+
		"with its output sent to a pipe whose SHA-256 must equal the source's (the timed run itself wrote to /dev/null).",
		writer, cold)
	prep := func() error {
		if !b.canDrop {
			syscall.Sync()
			return nil
		}
		return dropCaches()
	}
	mkVerify := func(f func(m *meter, out string, stdout io.Writer) error) func(*meter) error {
		return func(*meter) error {
			h := sha256.New()
			cw := &countWriter{w: h}
			if err := f(newMeter(), "/dev/stdout", cw); err != nil {
				return err
			}
			var sum [32]byte
			copy(sum[:], h.Sum(nil))
			if sum != b.srcSum || cw.n != size {
				return fmt.Errorf("read %d bytes that differ from the source (%d bytes)", cw.n, size)
			}
			return nil
		}
	}
	mk := func(p *peer, f func(m *meter, out string, stdout io.Writer) error) *peer {
		p.prepare = prep
		p.timed = func(m *meter) error { return f(m, os.DevNull, nil) }
		p.verify = mkVerify(f)
		return p
	}
	w.peers = []*peer{
		mk(&peer{name: "mpage cat", ours: true,
			command: fmt.Sprintf("mpage --cache %s --stats=json cat IMAGE:/f > /dev/null", b.cfg.cache)},
			func(m *meter, _ string, stdout io.Writer) error {
				return runMpage(m, stdout, "--cache", b.cfg.cache, "cat", image+":/f")
			}),
		mk(&peer{name: "debugfs dump", need: []string{"debugfs"},
			command: "debugfs -R 'dump /f /dev/null' IMAGE"},
			func(m *meter, out string, stdout io.Writer) error {
				_, err := run(m, stdout, tool("debugfs"), "-R", "dump /f "+out, image)
				return err
			}),
		mk(&peer{name: "e2cp", need: []string{"e2cp"},
			command: "e2cp IMAGE:/f /dev/null"},
			func(m *meter, out string, stdout io.Writer) error {
				_, err := run(m, stdout, tool("e2cp"), image+":/f", out)
				return err
			}),
		mk(&peer{name: "kernel (loop mount)", need: []string{"losetup", "mount", "umount", "cat"}, check: b.needRoot,
			command: "losetup -r; mount -t ext2 -o ro; cat MNT/f > /dev/null; umount; losetup -d"},
			func(m *meter, _ string, stdout io.Writer) error {
				return kernelSession(m, image, b.mnt, true, func() error {
					_, err := run(m, stdout, tool("cat"), filepath.Join(b.mnt, "f"))
					return err
				})
			}),
		mk(&peer{name: "fuse2fs", need: []string{"fuse2fs", "cat", "umount"}, check: b.needFuse,
			command: "fuse2fs -o ro -f IMAGE MNT & cat MNT/f > /dev/null; umount MNT; wait"},
			func(m *meter, _ string, stdout io.Writer) error {
				return fuseSession(m, b.mnt, func() error {
					_, err := run(m, stdout, tool("cat"), filepath.Join(b.mnt, "f"))
					return err
				}, tool("fuse2fs"), "-o", "ro", "-f", image, b.mnt)
			}),
		mk(&peer{name: "raw dd (limit)", raw: true, need: []string{"dd"},
			command: "dd if=PLAINFILE of=/dev/null bs=1M"},
			func(m *meter, out string, stdout io.Writer) error {
				if m == nil {
					m = newMeter()
				}
				stderr, err := run(m, stdout, tool("dd"), "if="+plain, "of="+out, "bs=1M")
				if err != nil {
					return err
				}
				if r, wr, ok := parseDDRecords(stderr); ok {
					m.setRequests(r, wr)
				}
				return nil
			}),
	}
	return w, nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// humanBytes prints a size with a binary unit: "1 GiB", "64 MiB".
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
