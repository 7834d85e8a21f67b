// Command mpage makes, inspects and changes ext2 images through mpage's own
// I/O stack: the page cache, buffer heads and the multi-page bios of
// Linux's fs/mpage.c, over the image file.
//
// Paths inside an image are written IMAGE:PATH, as scp and e2cp write them
// ("disk.img:/etc/hostname"); a bare IMAGE means its root where a path
// inside an image is expected.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mpagefs/mpage/ext2"
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status: 0, 1 for
// a failed command, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, start: time.Now()}
	root := newRoot(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	a.stopProfile()
	a.printStats()
	if err == nil {
		return 0
	}
	name := "mpage"
	if cmd != nil && cmd != root {
		name = cmd.Name()
	}
	var ue *usageError
	usage := errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") ||
		strings.HasPrefix(err.Error(), "unknown flag") || strings.HasPrefix(err.Error(), "unknown shorthand flag")
	if name == "mpage" {
		fmt.Fprintf(stderr, "mpage: %s\n", errText(err))
	} else {
		fmt.Fprintf(stderr, "mpage: %s: %s\n", name, errText(err))
	}
	if usage {
		return 2
	}
	return 1
}

// usageError is a command line the command cannot make sense of (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// args wraps a cobra argument check so that its failures are usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

// globals are the flags every command takes.
type globals struct {
	cache    string // page-cache limit, e.g. "256M"
	stats    string // "", "text" or "json"
	readOnly bool
	// sb is --sb: the block of a backup superblock to open images from
	// (the sb= mount option, e2fsck -b), or 0 for the primary.
	sb int64
	// hugePages is --huge-pages: the page cache's memory on transparent
	// huge pages (ext2.Options.HugePages), which also makes ext2fs read
	// large runs of the image with O_DIRECT. Off by default. Measured on
	// this machine, 2026-11-26, alternated runs: the FUSE mount's cold
	// sequential read (fio, 1 GiB) 1180-1292 MB/s with it against
	// 539-1143 without, its daemon CPU 0.64-0.77 s against 0.83-2.52; but
	// 4 KiB random reads right after that read fell from 17.6-20k IOPS to
	// 7.8-8k, because the directly read data was not in the kernel's
	// cache, where a buffered read leaves it (the bench suite's FUSE run
	// does exactly this). Huge pages with buffered reads were worse than
	// either (614-636 MB/s, 2.0-2.3 s of daemon CPU), so the flag sets
	// both or neither.
	hugePages bool
	// atime is the --atime mode name ("relatime", "noatime",
	// "strictatime"); noDirAtime is --nodiratime.
	atime      string
	noDirAtime bool
	// cpuProfile, memProfile and trace are the files of a CPU profile,
	// an allocation profile and an execution trace of the run (hidden
	// flags, for developers), or "".
	cpuProfile, memProfile, trace string
}

// app is one run of the command: its flags, output streams and the I/O
// counters of the images it opened.
type app struct {
	g      globals
	stdout io.Writer
	stderr io.Writer
	start  time.Time
	cache  int64          // parsed --cache
	atime  ext2.AtimeMode // parsed --atime
	stats  runStats
	// command is the name of the command that ran, for --stats.
	command string
	profile *os.File // open while a CPU profile is being written
	memPath string   // where the allocation profile goes at exit, or ""
	trace   *os.File // open while an execution trace is being written
}

func newRoot(a *app) *cobra.Command {
	g := &a.g
	root := &cobra.Command{
		Use:   "mpage",
		Short: "Make, inspect and change ext2 images through a Go rebuild of Linux's block I/O stack",
		Long: `mpage makes, inspects and changes ext2 images through a Go rebuild of
Linux's buffered block I/O stack (page cache, buffer heads and the
multi-page bios of fs/mpage.c).

Paths inside an image are written IMAGE:PATH, e.g. disk.img:/etc/hostname.
Try "mpage demo" first.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.cache, "cache", "256M", "page-cache memory limit (K, M, G suffixes)")
	pf.StringVar(&g.stats, "stats", "", "print I/O counters at exit on stderr: text (the default when given without a value) or json (one object)")
	pf.Lookup("stats").NoOptDefVal = "text"
	pf.BoolVar(&g.readOnly, "readonly", false, "open images read-only; commands that change an image fail")
	pf.Int64Var(&g.sb, "sb", 0, "open images from the backup superblock at this block (the sb= mount option, e2fsck -b): 8193 for 1 KiB blocks, 32768 for 4 KiB; a read-write open writes the primary back")
	pf.BoolVar(&g.hugePages, "huge-pages", false, "keep the page cache on transparent huge pages and read large runs of an image with O_DIRECT into it: faster sequential reads for less CPU, but the kernel no longer caches what was read that way")
	pf.StringVar(&g.atime, "atime", "relatime", "when reads update access times in images a command opens for writing: relatime, noatime or strictatime (cat, ls, stat and cp out open images read-only and never change them)")
	pf.BoolVar(&g.noDirAtime, "nodiratime", false, "listing a directory never updates its access time")
	pf.StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this file (for go tool pprof)")
	pf.StringVar(&g.memProfile, "memprofile", "", "write an allocation profile of the command to this file at exit (for go tool pprof -sample_index=alloc_space)")
	pf.StringVar(&g.trace, "trace", "", "write an execution trace of the command to this file (for go tool trace)")
	pf.MarkHidden("cpuprofile")
	pf.MarkHidden("memprofile")
	pf.MarkHidden("trace")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		a.command = cmd.Name()
		switch g.stats {
		case "", "text", "json":
		default:
			return usagef("--stats takes text or json, not %q", g.stats)
		}
		n, err := parseSize(g.cache)
		if err != nil {
			return usagef("--cache: %v", err)
		}
		a.cache = n
		if a.atime, err = ext2.ParseAtimeMode(g.atime); err != nil {
			return usagef("--atime takes relatime, noatime or strictatime, not %q", g.atime)
		}
		if g.sb < 0 {
			return usagef("--sb takes a block number, not %d", g.sb)
		}
		a.memPath = g.memProfile
		return a.startProfile(g.cpuProfile, g.trace)
	}
	root.AddCommand(
		newMkfsCmd(a),
		newCpCmd(a),
		newLsCmd(a),
		newCatCmd(a),
		newStatCmd(a),
		newRmCmd(a),
		newMkdirCmd(a),
		newMvCmd(a),
		newLnCmd(a),
		newChmodCmd(a),
		newChownCmd(a),
		newTouchCmd(a),
		newDfCmd(a),
		newDemoCmd(a),
		newMountCmd(a),
	)
	return root
}
