package ext2fs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// debugfsValue reads attribute attr of path with debugfs ea_get.
func debugfsValue(t *testing.T, image, path, attr string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "v")
	msg := oracle.Debugfs(t, image, fmt.Sprintf("ea_get -f %s %s %s", out, path, attr))
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("debugfs ea_get %s %s: %v (%s)", path, attr, err, msg)
	}
	return b
}

// createFile makes an empty regular file.
func createFile(t *testing.T, fsys *FS, name string) {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSetxattr sets, replaces and removes attributes through the path
// API, on files, a directory and a symbolic link itself; reads them back
// with Getxattr and, after Close, with debugfs; e2fsck -fn is clean.
func TestSetxattr(t *testing.T) {
	image := emptyImage(t, 8<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	for i := range 20 {
		createFile(t, fsys, fmt.Sprintf("f%d", i))
	}
	if err := fsys.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Symlink("f0", "l"); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string][]byte{}
	for i := range 20 {
		name := fmt.Sprintf("f%d", i)
		want[name] = map[string][]byte{}
		for j := range i % 5 {
			attr := fmt.Sprintf("user.a%d", j)
			v := bytes.Repeat([]byte{byte('a' + j)}, 10*i+j)
			if err := fsys.Setxattr(name, attr, v, 0); err != nil {
				t.Fatalf("Setxattr(%s, %s): %v", name, attr, err)
			}
			want[name][attr] = v
		}
		if i%5 > 1 {
			if err := fsys.Removexattr(name, "user.a0"); err != nil {
				t.Fatalf("Removexattr(%s, user.a0): %v", name, err)
			}
			delete(want[name], "user.a0")
			if err := fsys.Setxattr(name, "user.a1", []byte("replaced"), XattrReplace); err != nil {
				t.Fatalf("Setxattr(%s, user.a1, XattrReplace): %v", name, err)
			}
			want[name]["user.a1"] = []byte("replaced")
		}
	}
	// Through the symlink: the attribute lands on f0.
	if err := fsys.Setxattr("l", "user.via", []byte("link"), XattrCreate); err != nil {
		t.Fatalf("Setxattr through the link: %v", err)
	}
	want["f0"]["user.via"] = []byte("link")
	if err := fsys.Lsetxattr("l", "trusted.on", []byte("link itself"), 0); err != nil {
		t.Fatalf("Lsetxattr: %v", err)
	}
	want["l"] = map[string][]byte{"trusted.on": []byte("link itself")}
	if err := fsys.Setxattr("d", "security.x", []byte("dir"), 0); err != nil {
		t.Fatal(err)
	}
	want["d"] = map[string][]byte{"security.x": []byte("dir")}
	if err := fsys.Lremovexattr("l", "user.via"); !errors.Is(err, syscall.EPERM) {
		t.Errorf("Lremovexattr of user.* on a link: got %v, want EPERM (as Linux's xattr_permission)", err)
	}
	if err := fsys.Lremovexattr("l", "trusted.none"); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("Lremovexattr of a missing attribute of the link: got %v, want ENODATA", err)
	}

	for name, attrs := range want {
		got, err := fsys.Llistxattr(name)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		var wantNames []string
		for a := range attrs {
			wantNames = append(wantNames, a)
		}
		slices.Sort(wantNames)
		if !slices.Equal(got, wantNames) {
			t.Errorf("Llistxattr(%s): got %q, want %q", name, got, wantNames)
		}
		for a, v := range attrs {
			if gv, err := fsys.Lgetxattr(name, a); err != nil || !bytes.Equal(gv, v) {
				t.Errorf("Lgetxattr(%s, %s): got %q, %v, want %q", name, a, gv, err, v)
			}
		}
	}
	closeAndCheck(t, fsys, image)
	for name, attrs := range want {
		for a, v := range attrs {
			if got := debugfsValue(t, image, "/"+name, a); !bytes.Equal(got, v) {
				t.Errorf("debugfs ea_get /%s %s: got %q, want %q", name, a, got, v)
			}
		}
	}
}

// TestSetxattrErrors checks the *fs.PathError of each refused call: its
// Op and Path, and the errno (and io/fs sentinel) it wraps.
func TestSetxattrErrors(t *testing.T) {
	image := emptyImage(t, 8<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	createFile(t, fsys, "f")
	if err := fsys.Symlink("f", "l"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Setxattr("f", "user.there", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		op   string
		path string
		want []error
	}{
		{"create existing", func() error { return fsys.Setxattr("f", "user.there", []byte("2"), XattrCreate) }, "setxattr", "f", []error{syscall.EEXIST, fs.ErrExist}},
		{"replace missing", func() error { return fsys.Setxattr("f", "user.none", []byte("2"), XattrReplace) }, "setxattr", "f", []error{syscall.ENODATA}},
		{"remove missing", func() error { return fsys.Removexattr("f", "user.none") }, "removexattr", "f", []error{syscall.ENODATA}},
		{"missing file", func() error { return fsys.Setxattr("nope", "user.x", []byte("2"), 0) }, "setxattr", "nope", []error{fs.ErrNotExist}},
		{"bad namespace", func() error { return fsys.Setxattr("f", "bogus.x", []byte("2"), 0) }, "setxattr", "f", []error{syscall.EOPNOTSUPP, errors.ErrUnsupported}},
		{"empty suffix", func() error { return fsys.Setxattr("f", "user.", []byte("2"), 0) }, "setxattr", "f", []error{syscall.EINVAL, fs.ErrInvalid}},
		{"bad flags", func() error { return fsys.Setxattr("f", "user.x", []byte("2"), 8) }, "setxattr", "f", []error{syscall.EINVAL, fs.ErrInvalid}},
		{"long name", func() error { return fsys.Setxattr("f", "user."+strings.Repeat("x", 251), nil, 0) }, "setxattr", "f", []error{syscall.ERANGE}},
		{"malformed ACL", func() error { return fsys.Setxattr("f", "system.posix_acl_access", []byte{2, 0, 0, 0, 1}, 0) }, "setxattr", "f", []error{syscall.EINVAL}},
		{"user.* on a link", func() error { return fsys.Lsetxattr("l", "user.x", []byte("2"), 0) }, "lsetxattr", "l", []error{syscall.EPERM, fs.ErrPermission}},
		{"no room", func() error { return fsys.Setxattr("f", "user.big", make([]byte, 1000), 0) }, "setxattr", "f", []error{syscall.ENOSPC}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Op != tc.op || pe.Path != tc.path {
				t.Fatalf("got %#v, want an *fs.PathError of %s %q", err, tc.op, tc.path)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("got %v, want it to wrap %v", err, w)
				}
			}
		})
	}
	if v, err := fsys.Getxattr("f", "user.there"); err != nil || string(v) != "1" {
		t.Errorf("after the refused calls: user.there is %q, %v, want \"1\"", v, err)
	}
	closeAndCheck(t, fsys, image)

	ro := mustOpen(t, image, Options{ReadOnly: true})
	for _, err := range []error{ro.Setxattr("f", "user.x", []byte("1"), 0), ro.Removexattr("f", "user.there")} {
		var pe *fs.PathError
		if !errors.As(err, &pe) || !errors.Is(err, syscall.EROFS) {
			t.Errorf("on a read-only FS: got %v, want an *fs.PathError wrapping EROFS", err)
		}
	}
	ro.Close()
	if err := ro.Setxattr("f", "user.x", []byte("1"), 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Setxattr after Close: got %v, want fs.ErrClosed", err)
	}
}
