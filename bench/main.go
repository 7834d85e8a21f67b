// Command bench measures mpage against its peers on the same machine in
// the same run: building an ext2 image from a directory tree, writing one
// large file into an image, reading it back cold, the device requests and
// the memory and CPU each needs, and (once "mpage mount" exists) fio
// through FUSE. It writes docs/BENCHMARKS.md and the chart
// docs/benchmarks.svg.
//
// Run it as root (loop mounts, FUSE mounts and dropping the OS page cache
// need root) from the repository:
//
//	scripts/bench            # the full suite: 1 warm-up + 5 counted runs
//	scripts/bench -quick     # a small smoke run
//
// The suite installs nothing: a peer whose tool is missing is skipped
// with a message, and the report says so.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/internal/oracle"
)

// config is the command line.
type config struct {
	runs      int
	warmup    int
	quick     bool
	size      int64  // bytes of the file of workloads 2, 3 and 6
	imageSize int64  // bytes of the images of workload 1
	tree      string // source tree of workload 1; "" chooses
	cache     string // mpage --cache
	only      string // comma-separated workload keys
	md, svg   string // report paths
	fioTime   int    // seconds cap of the random-read fio job
	notes     []string
	args      []string
}

// mpageBin is the mpage binary built for this run.
var mpageBin string

func main() {
	os.Exit(mainErr())
}

func mainErr() int {
	var c config
	var sizeFlag, imageFlag string
	flag.IntVar(&c.runs, "runs", 5, "counted runs per peer and workload")
	flag.IntVar(&c.warmup, "warmup", 1, "warm-up runs before the counted ones (not counted)")
	flag.BoolVar(&c.quick, "quick", false, "small smoke run: 1 run, no warm-up, 64 MiB file, small generated tree")
	flag.StringVar(&sizeFlag, "size", "1G", "size of the file written and read (K, M, G suffixes)")
	flag.StringVar(&imageFlag, "image-size", "512M", "size of the images built from the tree")
	flag.StringVar(&c.tree, "tree", "", "source tree for the build workload (default: $(go env GOROOT)/src, or a generated tree of that shape)")
	flag.StringVar(&c.cache, "cache", "256M", "mpage page-cache limit (--cache)")
	flag.StringVar(&c.only, "only", "", "run only these workloads: comma-separated of tree, write, read, fuse")
	flag.StringVar(&c.md, "md", "", "report path (default docs/BENCHMARKS.md; bench/results/BENCHMARKS.md with -quick)")
	flag.StringVar(&c.svg, "svg", "", "chart path (default docs/benchmarks.svg; bench/results/benchmarks.svg with -quick)")
	flag.IntVar(&c.fioTime, "fio-runtime", 20, "time limit in seconds of the fio random-read job")
	flag.Func("note", "a sentence for the report's header (repeatable), e.g. why -runs is below 5", func(s string) error {
		c.notes = append(c.notes, s)
		return nil
	})
	flag.Parse()
	c.args = os.Args[1:]
	var err error
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		if !set["runs"] {
			c.runs = 1
		}
		if !set["warmup"] {
			c.warmup = 0
		}
		if !set["size"] {
			sizeFlag = "64M"
		}
		if !set["image-size"] {
			imageFlag = "128M"
		}
		if !set["fio-runtime"] {
			c.fioTime = 3
		}
	}
	if c.size, err = parseSize(sizeFlag); err != nil || c.size < 1<<20 {
		fmt.Fprintf(os.Stderr, "bench: -size %q: want at least 1M\n", sizeFlag)
		return 2
	}
	if c.imageSize, err = parseSize(imageFlag); err != nil || c.imageSize < 16<<20 {
		fmt.Fprintf(os.Stderr, "bench: -image-size %q: want at least 16M\n", imageFlag)
		return 2
	}
	if c.runs < 1 || c.warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench: -runs must be at least 1 and -warmup at least 0")
		return 2
	}

	root, err := repoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	results := filepath.Join(root, "bench", "results")
	if c.md == "" {
		c.md = filepath.Join(root, "docs", "BENCHMARKS.md")
		if c.quick {
			c.md = filepath.Join(results, "BENCHMARKS.md")
		}
	}
	if c.svg == "" {
		c.svg = filepath.Join(root, "docs", "benchmarks.svg")
		if c.quick {
			c.svg = filepath.Join(results, "benchmarks.svg")
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\nbench: interrupted; unmounting and detaching what the suite set up")
		runCleanups()
		os.Exit(130)
	}()
	defer runCleanups()

	b, err := newBench(c, root, results)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if err := b.runAll(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if err := b.writeReport(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Printf("bench: report %s, chart %s\n", c.md, c.svg)
	return 0
}

// repoRoot is the directory of the module's go.mod.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run bench from inside the mpage module")
	}
	return filepath.Dir(mod), nil
}

// buildMpage builds the mpage command once into dir, from the working
// tree; if that does not build (another change is half-way), from a clean
// export of the committed HEAD. It returns the binary and a note saying
// which source it built.
func buildMpage(root, dir string) (bin, note string, err error) {
	bin = filepath.Join(dir, "mpage")
	werr := goBuild(root, bin)
	if werr == nil {
		return bin, "the working tree", nil
	}
	logf("the working tree does not build (%v); building the committed HEAD instead", firstLine(werr.Error()))
	src := filepath.Join(dir, "head-src")
	os.RemoveAll(src)
	defer os.RemoveAll(src)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", "", err
	}
	tarball := filepath.Join(dir, "head.tar")
	defer os.Remove(tarball)
	if out, err := exec.Command("git", "-C", root, "archive", "--format=tar", "-o", tarball, "HEAD").CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("%v; and git archive HEAD: %v %s", werr, err, out)
	}
	if out, err := exec.Command("tar", "-xf", tarball, "-C", src).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("%v; and unpacking HEAD: %v %s", werr, err, out)
	}
	if err := goBuild(src, bin); err != nil {
		return "", "", fmt.Errorf("neither the working tree nor HEAD builds: %v; %v", werr, err)
	}
	return bin, "a clean export of the committed HEAD (the working tree, with other work half-way, did not build)", nil
}

func goBuild(dir, bin string) error {
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mpage")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build -o %s ./cmd/mpage: %v\n%s", bin, err, out.String())
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// tool is the path of a program, or its bare name when it is not found
// (the error then names it).
func tool(name string) string {
	if p := oracle.LookTool(name); p != "" {
		return p
	}
	return name
}

// parseSize parses a size such as 64M, 1G or 4096.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	if s != "" {
		switch strings.ToUpper(s[len(s)-1:]) {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != s {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// logf prints a progress line.
func logf(format string, args ...any) {
	fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
