package fusemount

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// TestSetattrOfUnlinkedOpenFile changes the mode, owner, times and size
// of a file through a descriptor after its last name is gone (fchmod,
// fchown, futimens, ftruncate): the requests name the inode, which has
// no path any more.
func TestSetattrOfUnlinkedOpenFile(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, InodeSize: 256})
	m := mountImage(t, image, Options{})
	if err := os.WriteFile(m.path("f"), bytes.Repeat([]byte{'x'}, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.path("f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(m.path("f")); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	at := unix.NsecToTimespec(time.Date(2001, 2, 3, 4, 5, 6, 700, time.UTC).UnixNano())
	mt := unix.NsecToTimespec(time.Date(2002, 3, 4, 5, 6, 7, 800, time.UTC).UnixNano())
	steps := []struct {
		name string
		do   func() error
	}{
		{"fchown", func() error { return unix.Fchown(fd, 1234, 5678) }},
		{"fchmod", func() error { return unix.Fchmod(fd, 0o4710) }}, // after fchown, which clears set-user-ID
		{"futimens", func() error { return unix.UtimesNanoAt(fd, "", []unix.Timespec{at, mt}, unix.AT_EMPTY_PATH) }},
		{"ftruncate", func() error { return unix.Ftruncate(fd, 3000) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Errorf("%s of an unlinked open file: %v", s.name, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	// ftruncate came last and set mtime to now.
	if st.Mode != syscall.S_IFREG|0o4710 || st.Uid != 1234 || st.Gid != 5678 || st.Size != 3000 || st.Nlink != 0 {
		t.Errorf("fstat: mode %#o owner %d:%d size %d nlink %d, want %#o 1234:5678 3000 0",
			st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, syscall.S_IFREG|0o4710)
	}
	if st.Atim != at {
		t.Errorf("atime %v, want %v", st.Atim, at)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	m.unmount(t)
	oracle.RequireClean(t, image) // the inode was deleted at the last close
}

// TestOpenAfterNameReplaced opens a file by an O_PATH descriptor (a
// lookup, no open) after another file was renamed over its name: the
// open names the old inode, which must open and read as it was, as on a
// local filesystem.
func TestOpenAfterNameReplaced(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{})
	if err := os.WriteFile(m.path("f"), []byte("old contents\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.path("g"), []byte("new contents\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(m.path("f"), unix.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	run(t, "mv", m.path("g"), m.path("f")) // another process
	got, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatalf("open of the replaced inode: %v", err)
	}
	if string(got) != "old contents\n" {
		t.Errorf("replaced inode reads %q, want %q", got, "old contents\n")
	}
	if got, err := os.ReadFile(m.path("f")); err != nil || string(got) != "new contents\n" {
		t.Errorf("the name reads %q, %v; want %q", got, err, "new contents\n")
	}
	unix.Close(fd)
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// TestOpenWhileRenamedOver reads a name from one goroutine while another
// keeps renaming new versions of the file over it: the name always
// exists, so every open must succeed (whichever inode it finds) and read
// one whole version.
func TestOpenWhileRenamedOver(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20})
	m := mountImage(t, image, Options{})
	version := func(i int) []byte { return []byte(fmt.Sprintf("version %06d\n", i)) }
	if err := os.WriteFile(m.path("f"), version(0), 0o644); err != nil {
		t.Fatal(err)
	}
	const rounds = 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 1)
	wg.Go(func() {
		defer close(stop)
		for i := 1; i <= rounds; i++ {
			tmp := m.path(fmt.Sprintf("tmp%d", i%4))
			if err := os.WriteFile(tmp, version(i), 0o644); err != nil {
				errs <- err
				return
			}
			if err := os.Rename(tmp, m.path("f")); err != nil {
				errs <- err
				return
			}
		}
	})
	reads, failed := 0, 0
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		got, err := os.ReadFile(m.path("f"))
		reads++
		if err != nil {
			if failed++; failed <= 3 {
				t.Errorf("read %d of a name always there: %v", reads, err)
			}
			continue
		}
		if len(got) != len(version(0)) || !strings.HasPrefix(string(got), "version ") {
			t.Errorf("read %d: %q, not one whole version", reads, got)
		}
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("renaming: %v", err)
	default:
	}
	if failed > 0 {
		t.Errorf("%d of %d reads failed", failed, reads)
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// TestCreatedByAnotherUser creates files of every kind as another user
// (let in with AllowOther): each is that user's from the start. A chown
// after the creation would change the inode again, after its directory
// got the entry, so the new inode's ctime must not be after its
// directory's mtime (nanosecond times of 256-byte inodes).
func TestCreatedByAnotherUser(t *testing.T) {
	requireFuse(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv to run commands as another user")
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, InodeSize: 256})
	m := mountImage(t, image, Options{AllowOther: true})
	for _, p := range []string{m.dir, filepath.Dir(m.dir)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(m.path("target"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(m.path("target"), 65534, 65534); err != nil { // a link needs an owned target (protected_hardlinks)
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cmd  string // run as 65534 in a new 0777 directory "d", making "d/new"
	}{
		{"file", ": > d/new"}, // created, not written (a write changes ctime)
		{"directory", "mkdir d/new"},
		{"symlink", "ln -s target d/new"},
		{"fifo", "mkfifo d/new"},
		{"hard link", "ln target d/new"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := fmt.Sprintf("d%d", i)
			if err := os.Mkdir(m.path(d), 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(m.path(d), 0o777); err != nil {
				t.Fatal(err)
			}
			script := "cd " + m.dir + " && umask 022 && " + strings.ReplaceAll(tt.cmd, "d/", d+"/")
			cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s as 65534: %v\n%s", script, err, out)
			}
			var st, dst unix.Stat_t
			if err := unix.Lstat(m.path(d+"/new"), &st); err != nil {
				t.Fatal(err)
			}
			if err := unix.Lstat(m.path(d), &dst); err != nil {
				t.Fatal(err)
			}
			if st.Uid != 65534 || st.Gid != 65534 {
				t.Errorf("owner %d:%d, want 65534:65534", st.Uid, st.Gid)
			}
			if tt.name == "hard link" {
				return // the inode's ctime is the link's, after the entry
			}
			ctime := time.Unix(st.Ctim.Unix())
			dirMtime := time.Unix(dst.Mtim.Unix())
			if ctime.After(dirMtime) {
				t.Errorf("ctime %v after the directory's mtime %v: the inode changed after it was linked in", ctime, dirMtime)
			}
		})
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}
