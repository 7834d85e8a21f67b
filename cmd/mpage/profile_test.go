package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The hidden --cpuprofile and --trace flags leave a gzip'd pprof profile
// and a Go execution trace behind, and the command still does its work;
// a file that cannot be created is a clear error before any work.
func TestProfileFlags(t *testing.T) {
	img := emptyImage(t, 8<<20)
	dir := t.TempDir()
	cpu, tr := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "run.trace")
	out := mustRun(t, "ls", "--cpuprofile", cpu, "--trace", tr, img+":/")
	if out != "lost+found\n" {
		t.Errorf("ls output with profiling: got %q, want %q", out, "lost+found\n")
	}
	for _, c := range []struct {
		path  string
		magic []byte
	}{{cpu, []byte{0x1f, 0x8b}}, {tr, []byte("go 1.")}} {
		b, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, c.magic) {
			t.Errorf("%s starts %q, want %q", filepath.Base(c.path), b[:min(len(b), 8)], c.magic)
		}
	}
	r := mpage(t, "ls", "--cpuprofile", filepath.Join(dir, "no", "such", "dir", "p"), img+":/")
	if r.code != 1 || !bytes.Contains([]byte(r.stderr), []byte("--cpuprofile")) || r.stdout != "" {
		t.Errorf("unwritable --cpuprofile: exit %d, stdout %q, stderr %q; want exit 1 naming --cpuprofile and no output", r.code, r.stdout, r.stderr)
	}
}
