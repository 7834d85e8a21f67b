package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/mpagefs/mpage/internal/mountinfo"
	"github.com/mpagefs/mpage/internal/oracle"
)

// sysInfo describes the machine and the software of a run.
type sysInfo struct {
	cpu       string
	cores     int
	memory    string
	disk      string // device, file system and kind of the work directory
	kernel    string
	goVersion string
	commit    string
	built     string // what mpage was built from
	loadStart string
	versions  map[string]string // peer -> version
}

func collectSysInfo(work, root string) sysInfo {
	s := sysInfo{cores: runtime.NumCPU(), versions: map[string]string{}}
	s.cpu = firstField("/proc/cpuinfo", "model name")
	if kb := firstField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int64
		fmt.Sscanf(kb, "%d", &n)
		s.memory = fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		s.kernel = "Linux " + utsString(u.Release[:])
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		s.goVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	s.commit = gitCommit(root)
	s.disk = diskOf(work)
	s.loadStart = loadAverage()
	pkgs := []struct{ name, pkg, tool string }{
		{"e2fsprogs (mke2fs, debugfs, e2fsck)", "e2fsprogs", "mke2fs"},
		{"e2tools (e2cp)", "e2tools", "e2cp"},
		{"genext2fs", "genext2fs", "genext2fs"},
		{"fuse2fs", "fuse2fs", "fuse2fs"},
		{"fio", "fio", "fio"},
		{"coreutils (cp, cat, dd)", "coreutils", "dd"},
		{"util-linux (mount, losetup)", "mount", "mount"},
		{"libfuse2 (fuse2fs's FUSE library)", "libfuse2", ""},
	}
	for _, p := range pkgs {
		if p.tool != "" && oracle.LookTool(p.tool) == "" {
			s.versions[p.pkg] = "not installed"
			continue
		}
		v := dpkgVersion(p.pkg)
		if v == "" && p.pkg == "libfuse2" {
			v = dpkgVersion("libfuse2t64")
		}
		if v == "" && p.tool != "" {
			v = toolVersion(p.tool)
		}
		if v == "" {
			v = "unknown"
		}
		s.versions[p.pkg] = v
		s.versions["label:"+p.pkg] = p.name
	}
	if out, err := exec.Command(tool("fio"), "--version").Output(); err == nil {
		s.versions["fio"] = strings.TrimSpace(string(out))
	}
	return s
}

// peerPackages is the order the report lists versions in.
var peerPackages = []string{"e2fsprogs", "e2tools", "genext2fs", "fuse2fs", "fio", "coreutils", "mount", "libfuse2"}

func utsString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// firstField returns the value of the first "key : value" line of a
// /proc file.
func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func dpkgVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func toolVersion(name string) string {
	for _, flag := range []string{"-V", "--version"} {
		out, _ := exec.Command(tool(name), flag).CombinedOutput()
		if line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); line != "" && !strings.Contains(line, "invalid") {
			return line
		}
	}
	return ""
}

func gitCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " (the working tree had uncommitted changes of other work)"
	}
	return c
}

// diskOf describes the file system and device holding dir.
func diskOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "unknown"
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	var best, src, fstype string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 2 {
			continue
		}
		mp := mountinfo.Unescape(a[4])
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, src, fstype = mp, mountinfo.Unescape(b[1]), b[0]
		}
	}
	desc := fmt.Sprintf("%s on %s (mounted at %s)", fstype, src, best)
	if strings.HasPrefix(src, "/dev/") {
		dev := filepath.Base(src)
		sys := filepath.Join("/sys/class/block", dev)
		if r, err := os.ReadFile(filepath.Join(sys, "queue", "rotational")); err == nil {
			kind := "non-rotational"
			if strings.TrimSpace(string(r)) == "1" {
				kind = "rotational"
			}
			if strings.HasPrefix(dev, "vd") {
				kind += " virtio disk"
			}
			desc += ", " + kind
		}
		if sz, err := os.ReadFile(filepath.Join(sys, "size")); err == nil {
			var sectors int64
			fmt.Sscanf(string(sz), "%d", &sectors)
			desc += fmt.Sprintf(", %.0f GB", float64(sectors)*512/1e9)
		}
		if sched, err := os.ReadFile(filepath.Join(sys, "queue", "scheduler")); err == nil {
			desc += ", I/O scheduler " + strings.TrimSpace(string(sched))
		}
	}
	return desc
}

// loadAverage is the 1, 5 and 15 minute load average, or "unknown".
func loadAverage() string {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			return strings.Join(f[:3], " ")
		}
	}
	return "unknown"
}
