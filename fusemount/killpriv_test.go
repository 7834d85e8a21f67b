package fusemount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// capNetRaw is a security.capability value (struct vfs_cap_data,
// revision 2): cap_net_raw permitted and effective.
func capNetRaw() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1) // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	binary.LittleEndian.PutUint32(b[4:], 1<<13)        // CAP_NET_RAW permitted
	return b
}

// privCase is a file whose set-ID bits or capability a change may
// clear: made by root with mode and owner gid, then changed by change.
type privCase struct {
	name   string
	mode   os.FileMode // permission bits with os.ModeSetuid/ModeSetgid
	gid    int
	cap    bool   // with a security.capability attribute
	asUser string // shell command run as uid 65534 (gid 65534), with $f the file
	asRoot string // shell command run as root, with $f the file
}

var privCases = []privCase{
	{name: "suid-written-by-user", mode: 0o777 | os.ModeSetuid, asUser: `echo x >> "$f"`},
	{name: "sgid-gx-written-by-user", mode: 0o777 | os.ModeSetgid, asUser: `echo x >> "$f"`},
	{name: "both-written-by-user", mode: 0o777 | os.ModeSetuid | os.ModeSetgid, asUser: `echo x >> "$f"`},
	{name: "both-pwrite-by-user", mode: 0o777 | os.ModeSetuid | os.ModeSetgid, asUser: `printf y | dd of="$f" bs=1 seek=1 conv=notrunc status=none`},
	// Without group execute the set-group-ID bit is not a privilege;
	// the writer is in the file's group.
	{name: "sgid-no-gx-written-by-member", mode: 0o666 | os.ModeSetgid, gid: 65534, asUser: `echo x >> "$f"`},
	{name: "both-written-by-root", mode: 0o777 | os.ModeSetuid | os.ModeSetgid, asRoot: `echo x >> "$f"`},
	{name: "both-truncated-by-user", mode: 0o777 | os.ModeSetuid | os.ModeSetgid, asUser: `truncate -s 1 "$f"`},
	{name: "both-opened-with-O_TRUNC-by-user", mode: 0o777 | os.ModeSetuid | os.ModeSetgid, asUser: `: > "$f"`},
	{name: "both-chowned-by-root", mode: 0o755 | os.ModeSetuid | os.ModeSetgid, asRoot: `chown 65534:65534 "$f"`},
	{name: "both-chmodded-by-root", mode: 0o755 | os.ModeSetuid | os.ModeSetgid, asRoot: `chmod g-w "$f"`},
	{name: "cap-written-by-root", mode: 0o755, cap: true, asRoot: `echo x >> "$f"`},
	{name: "cap-written-by-user", mode: 0o777, cap: true, asUser: `echo x >> "$f"`},
	{name: "suid-written-twice-by-user", mode: 0o777 | os.ModeSetuid, asUser: `echo x >> "$f"; echo y >> "$f"`},
}

// runPrivCases makes the files of privCases in dir, changes them, and
// returns each one's mode, owner and capability afterwards, and the
// mode the kernel caches for exec(2) and permission checks.
func runPrivCases(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, c := range privCases {
		f := filepath.Join(dir, c.name)
		if err := os.WriteFile(f, []byte("content\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f, 0, c.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, c.mode); err != nil {
			t.Fatal(err)
		}
		if c.cap {
			if err := unix.Setxattr(f, "security.capability", capNetRaw(), 0); err != nil {
				t.Fatalf("setting security.capability on %s: %v", f, err)
			}
		}
		var cmd *exec.Cmd
		if c.asUser != "" {
			cmd = exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", c.asUser)
		} else {
			cmd = exec.Command("sh", "-c", c.asRoot)
		}
		cmd.Env = append(os.Environ(), "f="+f)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, out)
		}
		// The mode the kernel believes at exec: a permission check
		// (access(2) here, as execve's) asks us again only for
		// attributes the kernel marked stale, and statx with
		// AT_STATX_DONT_SYNC then answers from the FUSE inode as
		// it is, without asking.
		if err := unix.Access(f, unix.R_OK); err != nil {
			t.Fatalf("access %s: %v", f, err)
		}
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, f, unix.AT_STATX_DONT_SYNC, unix.STATX_MODE, &stx); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(f, &st); err != nil {
			t.Fatal(err)
		}
		hasCap := "no capability"
		if _, err := unix.Getxattr(f, "security.capability", nil); err == nil {
			hasCap = "capability"
		} else if !errors.Is(err, unix.ENODATA) {
			t.Fatalf("getxattr security.capability of %s: %v", f, err)
		}
		got[c.name] = fmt.Sprintf("mode %04o (cached %04o) owner %d:%d %s", st.Mode&0o7777, stx.Mode&0o7777, st.Uid, st.Gid, hasCap)
	}
	return got
}

// TestKillPrivLikeKernel changes set-user-ID, set-group-ID and
// capability files through the mount and through the kernel's ext2
// driver on a loop mount of the same kind of image, by root and by
// another user, and wants the same modes and attributes left: the
// mount clears the bits itself (HANDLE_KILLPRIV_V2) and the kernel
// removes the capability.
func TestKillPrivLikeKernel(t *testing.T) {
	requireFuse(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv to run commands as another user")
	}
	want := runPrivCases(t, privDir(t, oracle.LoopMount(t, oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20}), false)))
	// The loop mount must show the clearing at all, or this compares
	// nothing.
	if w := want["both-written-by-user"]; !strings.HasPrefix(w, "mode 0777 (cached 0777)") {
		t.Fatalf("kernel ext2: a set-ID file written by another user: %s; want mode 0777", w)
	}
	if w := want["cap-written-by-root"]; !strings.Contains(w, "no capability") {
		t.Fatalf("kernel ext2: a file with a capability written by root: %s; want no capability", w)
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{AllowOther: true})
	got := runPrivCases(t, privDir(t, m.dir))
	names := make([]string, 0, len(got))
	for name := range got {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if got[name] != want[name] {
			t.Errorf("%s: got %s, want %s (kernel ext2)", name, got[name], want[name])
		}
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// privDir makes a directory under mnt that uid 65534 can reach.
func privDir(t *testing.T, mnt string) string {
	t.Helper()
	for _, d := range []string{filepath.Dir(mnt), mnt} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(mnt, "priv")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
