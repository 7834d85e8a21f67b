package oracle

import (
	"testing"
)

// FsckResult is the outcome of one e2fsck -fn run.
type FsckResult struct {
	// Code is e2fsck's exit code: 0 clean, 4 errors left uncorrected
	// (always, when -n finds any), 8 operational error; -1 on timeout.
	Code int
	// TimedOut is set when e2fsck ran longer than Timeout and was killed.
	TimedOut bool
	// Output is e2fsck's standard output followed by its standard error.
	Output string
}

// FsckRun runs "e2fsck -fn image" under Timeout. e2fsck never modifies
// the image with -n.
func FsckRun(t testing.TB, image string) FsckResult {
	t.Helper()
	prog := Tool(t, "e2fsck")
	args := []string{"-fn", image}
	r := run(t, prog, args...)
	return FsckResult{Code: r.code, TimedOut: r.timedOut, Output: r.describe(prog, args)}
}

// Fsck runs "e2fsck -fn image" and reports whether it found the
// filesystem clean (exit 0), with e2fsck's output.
func Fsck(t testing.TB, image string) (ok bool, output string) {
	t.Helper()
	r := FsckRun(t, image)
	return r.Code == 0, r.Output
}

// RequireClean fails the test, with e2fsck's output, unless e2fsck -fn
// finds image clean.
func RequireClean(t testing.TB, image string) {
	t.Helper()
	if ok, out := Fsck(t, image); !ok {
		t.Fatalf("oracle: e2fsck does not find %s clean:\n%s", image, out)
	}
}
