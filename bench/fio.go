package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mpagefs/mpage/internal/oracle"
)

// fioWorkload is workload 6: fio on a file in a FUSE mount, mpage's own
// mount against fuse2fs.
type fioWorkload struct {
	skipped string // why the whole workload did not run
	size    int64
	what    string
	peers   []*fioPeer
}

type fioPeer struct {
	name    string
	ours    bool
	command string
	missing string
	mount   func(image, dir string) (string, []string) // the FUSE daemon's command
	runs    []fioRun
}

// fioRun is one counted run: the three fio jobs and what the FUSE daemon
// cost over both of its mounts.
type fioRun struct {
	writeBW, readBW float64 // bytes per second
	randIOPS        float64 // one job
	randIOPS4       float64 // randJobs jobs at once
	cpu             float64
	rssKiB          int64
	failed          string
}

// mpageMountHelp returns "mpage help mount" when the command exists.
func mpageMountHelp() (string, bool) {
	out, err := exec.Command(mpageBin, "help", "mount").CombinedOutput()
	s := string(out)
	if err != nil || strings.Contains(s, "Unknown help topic") || !strings.Contains(s, "mount") {
		return s, false
	}
	return s, true
}

func (b *bench) runFio() {
	w := &fioWorkload{size: b.cfg.size}
	b.fio = w
	switch {
	case oracle.LookTool("fio") == "":
		w.skipped = "fio is not installed"
	case !b.root0:
		w.skipped = "needs root here (FUSE mounts, dropping the OS page cache)"
	case !isCharDev("/dev/fuse"):
		w.skipped = "no /dev/fuse"
	}
	if w.skipped != "" {
		logf("fuse: skipping the fio workload: %s", w.skipped)
		return
	}
	help, haveMount := mpageMountHelp()
	ours := &fioPeer{name: "mpage mount", ours: true}
	if !haveMount {
		ours.missing = "`mpage mount` does not exist yet in this build (`mpage help mount` knows no such command)"
	} else {
		fg := ""
		if strings.Contains(help, "--foreground") {
			fg = "--foreground"
		}
		ours.mount = func(image, dir string) (string, []string) {
			args := []string{"--cache", b.cfg.cache, "mount"}
			if fg != "" {
				args = append(args, fg)
			}
			return mpageBin, append(args, image, dir)
		}
		ours.command = fmt.Sprintf("mpage --cache %s mount %sIMAGE MNT", b.cfg.cache, map[bool]string{true: "--foreground ", false: ""}[fg != ""])
	}
	theirs := &fioPeer{name: "fuse2fs", command: "fuse2fs -f IMAGE MNT",
		mount: func(image, dir string) (string, []string) { return tool("fuse2fs"), []string{"-f", image, dir} }}
	if oracle.LookTool("fuse2fs") == "" {
		theirs.missing = "fuse2fs not installed"
	}
	w.peers = []*fioPeer{ours, theirs}
	w.what = fmt.Sprintf("fio %s on one %s file in a FUSE mount of an empty %s ext2 image (made by mke2fs): "+
		"sequential 1 MiB writes (`--rw=write --bs=1M --end_fsync=1`, then unmount), then, after dropping the OS page cache "+
		"and mounting again, sequential 1 MiB reads, random 4 KiB reads by one job (`--rw=randread --bs=4k`, at most %d s) and by %d jobs at once, each reading its own part of the file (`--numjobs=%d --offset_increment=SIZE/%d --size=SIZE/%d --group_reporting`, at most %d s, IOPS of all together). "+
		"The write job stores crc32c verification headers every 4 KiB (`--verify=crc32c --verify_interval=4096 --do_verify=0`); "+
		"both read jobs check them (`--verify=crc32c --verify_fatal=1`), so a read that returns wrong data fails the run. "+
		"After the write, `e2fsck -fn` must find the image clean. CPU and peak RSS are the FUSE daemon's, over both mounts.",
		b.sys.versions["fio"], humanBytes(w.size), humanBytes(roundUp(w.size+w.size/8+64<<20, 4<<20)), b.cfg.fioTime, randJobs, randJobs, randJobs, randJobs, max(1, b.cfg.fioTime/2))
	total := b.cfg.warmup + b.cfg.runs
	for _, p := range w.peers {
		if p.missing != "" {
			logf("fuse: skipping %s: %s", p.name, p.missing)
			continue
		}
		for i := range total {
			counted := i >= b.cfg.warmup
			r := b.fioOnce(p)
			status := "ok"
			if r.failed != "" {
				status = "FAILED: " + r.failed
			}
			logf("fuse  %-14s %s  write %.0f MB/s  read %.0f MB/s  randread %.0f IOPS (%d jobs %.0f)  cpu %.2f s  rss %d MiB  %s",
				p.name, map[bool]string{true: "counted", false: "warm-up"}[counted],
				r.writeBW/1e6, r.readBW/1e6, r.randIOPS, randJobs, r.randIOPS4, r.cpu, r.rssKiB>>10, status)
			if counted {
				p.runs = append(p.runs, r)
			}
		}
	}
}

func isCharDev(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// fioOnce does one run of the three fio jobs through p's FUSE mount.
func (b *bench) fioOnce(p *fioPeer) (r fioRun) {
	image := filepath.Join(b.work, "fio.img")
	defer os.Remove(image)
	fail := func(format string, args ...any) fioRun {
		r.failed = fmt.Sprintf(format, args...)
		return r
	}
	if err := mke2fs(nil, image, roundUp(b.cfg.size+b.cfg.size/8+64<<20, 4<<20), 0); err != nil {
		return fail("mke2fs: %v", err)
	}
	syscall.Sync()
	m := newMeter()
	file := filepath.Join(b.mnt, "fio.dat")
	size := fmt.Sprint(b.cfg.size)
	common := []string{"--filename=" + file, "--size=" + size, "--ioengine=psync", "--verify=crc32c", "--verify_interval=4096", "--verify_fatal=1"}
	session := func(body func() error) error {
		prog, args := p.mount(image, b.mnt)
		// The daemon's own rusage is what counts: fio's is the same
		// for both peers, so it goes to a separate meter.
		return fuseSession(m, b.mnt, body, prog, args...)
	}
	err := session(func() error {
		j, err := b.fioJob(append([]string{"--name=seqwrite", "--rw=write", "--bs=1M", "--end_fsync=1", "--do_verify=0", "--verify_state_save=0"}, common...))
		if err != nil {
			return err
		}
		r.writeBW = j.Write.BWBytes
		return nil
	})
	if err != nil {
		return fail("write: %v", err)
	}
	if err := fsck(image); err != nil {
		return fail("after the write: %v", err)
	}
	if b.canDrop {
		if err := dropCaches(); err != nil {
			return fail("dropping caches: %v", err)
		}
	}
	err = session(func() error {
		j, err := b.fioJob(append([]string{"--name=seqread", "--rw=read", "--bs=1M"}, common...))
		if err != nil {
			return err
		}
		r.readBW = j.Read.BWBytes
		j, err = b.fioJob(append([]string{"--name=randread", "--rw=randread", "--bs=4k", fmt.Sprintf("--runtime=%d", b.cfg.fioTime)}, common...))
		if err != nil {
			return err
		}
		r.randIOPS = j.Read.IOPS
		// Random reads from several processes at once: one job waits
		// for each READ before it sends the next, so it measures a
		// round trip; several keep the server busy. Each job reads its
		// own part of the file, each page once, so that no job finds a
		// page another one brought into the kernel's cache.
		part := roundUp(b.cfg.size/randJobs, 4096)
		args := []string{"--name=randread4", "--rw=randread", "--bs=4k", fmt.Sprintf("--numjobs=%d", randJobs), "--group_reporting",
			fmt.Sprintf("--runtime=%d", max(1, b.cfg.fioTime/2)), fmt.Sprintf("--offset_increment=%d", part)}
		for _, a := range common {
			if strings.HasPrefix(a, "--size=") {
				a = fmt.Sprintf("--size=%d", part)
			}
			args = append(args, a)
		}
		j, err = b.fioJob(args)
		if err != nil {
			return err
		}
		r.randIOPS4 = j.Read.IOPS
		return nil
	})
	r.cpu, r.rssKiB = m.cpu, m.rssKiB
	if err != nil {
		return fail("read: %v", err)
	}
	return r
}

// randJobs is how many fio jobs read at random at once in the second
// random-read job.
const randJobs = 4

// fioJobResult is the part of fio's JSON output the suite reads.
type fioJobResult struct {
	Error int `json:"error"`
	Read  struct {
		BWBytes float64 `json:"bw_bytes"`
		IOPS    float64 `json:"iops"`
	} `json:"read"`
	Write struct {
		BWBytes float64 `json:"bw_bytes"`
		IOPS    float64 `json:"iops"`
	} `json:"write"`
}

// fioJob runs one fio job and returns its result.
func (b *bench) fioJob(args []string) (fioJobResult, error) {
	out := filepath.Join(b.work, "fio.json")
	defer os.Remove(out)
	args = append(args, "--output-format=json", "--output="+out)
	stderr, err := run(nil, nil, tool("fio"), args...)
	if err != nil {
		return fioJobResult{}, err
	}
	// Without --verify_fatal, fio 3.33 reports a sequential read's
	// verification failure only on stderr and exits 0; the suite sets it,
	// and checks stderr as well.
	if i := strings.Index(stderr, "verify failed"); i >= 0 {
		return fioJobResult{}, fmt.Errorf("fio: %s", strings.TrimSpace(stderr[i:min(len(stderr), i+200)]))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return fioJobResult{}, err
	}
	// fio may print notes before the JSON object.
	if i := bytes.IndexByte(data, '{'); i > 0 {
		data = data[i:]
	}
	var doc struct {
		Jobs []fioJobResult `json:"jobs"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return fioJobResult{}, fmt.Errorf("fio JSON: %v", err)
	}
	if len(doc.Jobs) != 1 {
		return fioJobResult{}, fmt.Errorf("fio JSON has %d jobs, want 1", len(doc.Jobs))
	}
	if doc.Jobs[0].Error != 0 {
		return doc.Jobs[0], fmt.Errorf("fio job error %d", doc.Jobs[0].Error)
	}
	return doc.Jobs[0], nil
}
