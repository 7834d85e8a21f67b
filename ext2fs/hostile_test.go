package ext2fs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// patchName replaces the only occurrence of name in image by repl (same
// length): a directory entry renamed behind the filesystem's back.
func patchName(t *testing.T, image, name, repl string) {
	t.Helper()
	data, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte(name)); n != 1 {
		t.Fatalf("%q occurs %d times in the image, want 1", name, n)
	}
	i := bytes.Index(data, []byte(name))
	copy(data[i:], repl)
	if err := os.WriteFile(image, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// listTree returns every path under dir, relative, in walk order.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCopyOutHostileImage(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	image := emptyImage(t, 4<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Links that lead out of any destination, in order before the
	// entries that would write through them.
	must(fsys.Symlink("../outside", "escapelinkA"))
	must(fsys.Symlink(outside, "escapelinkC"))
	must(fsys.Symlink(filepath.Join(outside, "victim"), "victimlinkA"))
	must(fsys.Symlink("../../../../../../../../../..", "rootlink"))
	for _, d := range []string{"escapelinkB", "escapelinkD"} {
		must(fsys.Mkdir(d, 0o755))
		f, err := fsys.Create(d + "/pwned")
		must(err)
		_, err = f.WriteString("pwned")
		must(err)
		must(f.Close())
	}
	f, err := fsys.Create("victimlinkB")
	must(err)
	_, err = f.WriteString("overwritten")
	must(err)
	must(f.Close())
	must(fsys.Mkdir("loopdir", 0o755))
	f, err = fsys.Create("AAAAAAAAAAAA")
	must(err)
	must(f.Close())
	must(fsys.Close())
	// Make the directories and the file carry the links' names, and a
	// name with slashes.
	patchName(t, image, "escapelinkB", "escapelinkA")
	patchName(t, image, "escapelinkD", "escapelinkC")
	patchName(t, image, "victimlinkB", "victimlinkA")
	patchName(t, image, "AAAAAAAAAAAA", "../../escape")
	// A directory loop: loopdir/loop is the root again.
	debugfs := oracle.Tool(t, "debugfs")
	if out, err := exec.Command(debugfs, "-w", "-R", "ln / /loopdir/loop", image).CombinedOutput(); err != nil {
		t.Fatalf("debugfs ln: %v\n%s", err, out)
	}

	fsys = mustOpen(t, image, Options{ReadOnly: true})
	t.Run("without Warn", func(t *testing.T) {
		err := CopyOut(fsys, "/", filepath.Join(base, "dst1"), CopyOptions{})
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("CopyOut = %v, want an error wrapping fs.ErrExist", err)
		}
	})
	t.Run("with Warn", func(t *testing.T) {
		dst := filepath.Join(base, "dst2")
		var warned []string
		err := CopyOut(fsys, "/", dst, CopyOptions{Warn: func(name string, err error) { warned = append(warned, name) }})
		if err != nil {
			t.Fatalf("CopyOut = %v, want success with warnings", err)
		}
		slices.Sort(warned)
		want := []string{"../../escape", "escapelinkA", "escapelinkC", "loopdir/loop", "victimlinkA"}
		if !slices.Equal(warned, want) {
			t.Errorf("warned about %q, want %q", warned, want)
		}
		// The links were made as they are.
		if got, err := os.Readlink(filepath.Join(dst, "escapelinkA")); err != nil || got != "../outside" {
			t.Errorf("dst/escapelinkA -> %q, %v; want the symlink ../outside", got, err)
		}
	})
	if got := listTree(t, outside); strings.Join(got, ",") != ".,victim" {
		t.Errorf("outside holds %v, want only victim", got)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "keep" {
		t.Errorf("outside/victim = %q, want %q", b, "keep")
	}
	for _, p := range []string{filepath.Join(base, "escape"), "/escape", filepath.Join(filepath.Dir(base), "escape")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists", p)
		}
	}
}
