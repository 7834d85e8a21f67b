// Package oracle lets tests talk to the tools that judge our work without
// being written by us: e2fsprogs (mke2fs, e2fsck, debugfs, dumpe2fs), the
// Linux kernel's ext2 driver through loop mounts, and the corpus of images
// from e2fsprogs' own test suite (see ../shared/docs/ORACLES.md).
//
// Every helper takes a testing.TB, calls t.Helper(), and skips the test
// with a message naming what is missing (a tool, root, a loop device, the
// corpus) so that the rest of a test suite still runs on a laptop. Every
// external command runs under a timeout: e2fsck and debugfs can loop
// forever on some corrupt images.
package oracle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Timeout bounds every external command the package runs.
const Timeout = 60 * time.Second

// toolDirs are searched after $PATH: e2fsprogs lives in /sbin and /usr/sbin,
// which an unprivileged user's PATH often lacks.
var toolDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

// LookTool returns the path of the named program, or "" if it is not
// installed.
func LookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range toolDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Tool returns the path of the named program and skips the test if it is
// not installed.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p := LookTool(name)
	if p == "" {
		t.Skipf("oracle: %s is not installed (Debian: apt-get install %s)", name, debianPackage(name))
	}
	return p
}

// debianPackage names the Debian package that provides a tool the tests
// use (scripts/check installs them when run as root).
func debianPackage(tool string) string {
	switch tool {
	case "fuse2fs":
		return "fuse2fs"
	case "fusermount3":
		return "fuse3"
	case "fio":
		return "fio"
	case "e2cp":
		return "e2tools"
	case "genext2fs":
		return "genext2fs"
	case "setfattr", "getfattr":
		return "attr"
	case "setfacl", "getfacl":
		return "acl"
	}
	return "e2fsprogs"
}

// result is the outcome of one external command.
type result struct {
	stdout, stderr string
	code           int  // exit code; -1 if it did not exit normally
	timedOut       bool // killed by Timeout
}

// run runs the program with args under Timeout. It fails the test only if
// the program could not be started at all.
func run(t testing.TB, prog string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.timedOut, r.code = true, -1
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("oracle: cannot run %s: %v", prog, err)
	}
	return r
}

// describe formats a command and its result for failure messages.
func (r result) describe(prog string, args []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", filepath.Base(prog), strings.Join(args, " "))
	if r.timedOut {
		fmt.Fprintf(&b, ": timed out after %v", Timeout)
	} else {
		fmt.Fprintf(&b, ": exit %d", r.code)
	}
	if s := strings.TrimSpace(r.stdout); s != "" {
		fmt.Fprintf(&b, "\nstdout:\n%s", s)
	}
	if s := strings.TrimSpace(r.stderr); s != "" {
		fmt.Fprintf(&b, "\nstderr:\n%s", s)
	}
	return b.String()
}

func errorf(format string, args ...any) error { return fmt.Errorf("oracle: "+format, args...) }
