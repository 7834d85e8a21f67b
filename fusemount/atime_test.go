package fusemount

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2fs"
	"github.com/mpagefs/mpage/internal/oracle"
)

// statAtime is the atime stat(2) (lstat for a link) shows at path.
func statAtime(t *testing.T, path string) time.Time {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return time.Unix(st.Atim.Unix())
}

// TestAtimeThroughMount reads a file, lists a directory and reads a
// link through the mount under each atime mode, and checks what stat
// shows afterwards (the kernel keeps no atime of its own for FUSE files:
// it asks us again after each read), what the image holds after unmount,
// and that e2fsck finds it clean.
func TestAtimeThroughMount(t *testing.T) {
	requireFuse(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte(strings.Repeat("data", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(src, "l")); err != nil {
		t.Fatal(err)
	}
	tmpl := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, InodeSize: 256, FromDir: src})
	tmplBytes, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}

	type step struct {
		name string
		path string
		do   func(p string) error
	}
	read := func(p string) error { _, err := os.ReadFile(p); return err }
	steps := []step{
		{"read", "f", read},
		{"read again", "f", read},
		{"list", "d", func(p string) error { _, err := os.ReadDir(p); return err }},
		{"readlink", "l", func(p string) error { _, err := os.Readlink(p); return err }},
	}
	cases := []struct {
		name      string
		open      ext2fs.Options // how the image is opened
		opts      Options        // how it is mounted
		want      []int          // atime changed, per step: 1 yes, 0 no, -1 either
		mountOpt  string         // in /proc/mounts, if not ""
		unchanged bool           // the image stays byte for byte as it was
	}{
		{"relatime by default", ext2fs.Options{}, Options{}, []int{1, 0, 1, 1}, "relatime", false},
		{"noatime opened", ext2fs.Options{Atime: ext2.Noatime}, Options{}, []int{0, 0, 0, 0}, "noatime", false},
		{"noatime mounted", ext2fs.Options{}, Options{Atime: ext2.Noatime}, []int{0, 0, 0, 0}, "noatime", false},
		// A read again is served from the kernel's page cache
		// (FOPEN_KEEP_CACHE) unless the kernel dropped the pages: only
		// a READ that reaches us updates atime.
		{"strictatime mounted", ext2fs.Options{}, Options{Atime: ext2.Strictatime}, []int{1, -1, 1, 1}, "", false},
		{"read-only", ext2fs.Options{ReadOnly: true}, Options{ReadOnly: true}, []int{0, 0, 0, 0}, "ro", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			image := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(image, tmplBytes, 0o644); err != nil {
				t.Fatal(err)
			}
			// mke2fs -d copied the source's times (atime after
			// mtime and ctime, maybe): set atime and mtime a week
			// back (ctime becomes now), where every mode but noatime
			// updates at the first read.
			if !tc.open.ReadOnly {
				fsys, err := ext2fs.Open(image, ext2fs.Options{Atime: ext2.Noatime})
				if err != nil {
					t.Fatal(err)
				}
				week := time.Now().Add(-7 * 24 * time.Hour)
				for _, p := range []string{"f", "d"} {
					if err := fsys.Chtimes(p, week, week); err != nil {
						t.Fatal(err)
					}
				}
				if err := fsys.Close(); err != nil {
					t.Fatal(err)
				}
			}
			before, err := os.ReadFile(image)
			if err != nil {
				t.Fatal(err)
			}
			tc.open.CacheLimit = 16 << 20
			fsys, err := ext2fs.Open(image, tc.open)
			if err != nil {
				t.Fatal(err)
			}
			m := mountFS(t, image, fsys, tc.opts)
			if tc.mountOpt != "" {
				if opts := procMountOpts(t, m.dir); !strings.Contains(","+opts+",", ","+tc.mountOpt+",") {
					t.Errorf("mount options %q, want %s among them", opts, tc.mountOpt)
				}
			}
			last := map[string]time.Time{}
			for i, s := range steps {
				p := m.path(s.path)
				b := statAtime(t, p)
				time.Sleep(10 * time.Millisecond)
				if err := s.do(p); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				a := statAtime(t, p)
				if got := !a.Equal(b); tc.want[i] >= 0 && got != (tc.want[i] == 1) {
					t.Errorf("%s %s: stat's atime %v -> %v: changed %v, want %v", s.name, s.path, b, a, got, tc.want[i])
				}
				last[s.path] = a
			}
			m.unmount(t)
			if tc.unchanged {
				after, err := os.ReadFile(image)
				if err != nil {
					t.Fatal(err)
				}
				if string(after) != string(before) {
					t.Error("the image changed")
				}
				return
			}
			oracle.RequireClean(t, image)
			ro, err := ext2fs.Open(image, ext2fs.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			for p, want := range last {
				ino, err := ro.Ext2().Lookup(p)
				if err != nil {
					t.Fatal(err)
				}
				if got := ino.Stat().Atime; !got.Equal(want) {
					t.Errorf("%s: atime in the image %v, want %v as stat showed", p, got, want)
				}
				ro.Ext2().Iput(ino)
			}
		})
	}
}

// procMountOpts returns the options /proc/mounts shows for dir.
func procMountOpts(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == dir {
			return f[3]
		}
	}
	t.Fatalf("%s not in /proc/mounts", dir)
	return ""
}
