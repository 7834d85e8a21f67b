package ext2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// vfsACL builds an ACL value in the VFS xattr format from (tag, perm, id)
// triples; id -1 is ACL_UNDEFINED_ID.
func vfsACL(entries ...int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, posixACLXattrVer)
	for i := 0; i+2 < len(entries); i += 3 {
		b = binary.LittleEndian.AppendUint16(b, uint16(entries[i]))
		b = binary.LittleEndian.AppendUint16(b, uint16(entries[i+1]))
		b = binary.LittleEndian.AppendUint32(b, uint32(int32(entries[i+2])))
	}
	return b
}

// debugfsEAList returns the attribute names debugfs ea_list shows for path.
func debugfsEAList(t *testing.T, image, path string) []string {
	t.Helper()
	out := oracle.Debugfs(t, image, "ea_list "+path)
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  (\S+) \(\d+\)`).FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	return names
}

// debugfsEAGet returns the value debugfs ea_get reads for path's attribute
// name (ACLs converted to the VFS format, as debugfs does).
func debugfsEAGet(t *testing.T, image, path, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "value")
	res := oracle.Debugfs(t, image, fmt.Sprintf("ea_get -f %s %s %s", out, path, name))
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("debugfs ea_get %s %s: %v (%s)", path, name, err, res)
	}
	return b
}

// checkDebugfsXattrs compares debugfs's view of each file's attributes
// with want.
func checkDebugfsXattrs(t *testing.T, image string, want map[string]map[string][]byte) {
	t.Helper()
	for _, f := range xattrKeys(want) {
		names := debugfsEAList(t, image, "/"+f)
		if w := xattrKeys(want[f]); !slices.Equal(names, w) {
			t.Errorf("debugfs ea_list /%s: got %q, want %q", f, names, w)
			continue
		}
		for _, name := range names {
			got := debugfsEAGet(t, image, "/"+f, name)
			if strings.HasPrefix(name, "system.posix_acl_") {
				// debugfs gives entries without an id the id 0 where
				// the kernel says ACL_UNDEFINED_ID.
				got = bytes.Clone(got)
				for i := 4; i+8 <= len(got); i += 8 {
					if tag := binary.LittleEndian.Uint16(got[i:]); tag != aclUser && tag != aclGroup {
						binary.LittleEndian.PutUint32(got[i+4:], aclUndefinedID)
					}
				}
			}
			if !bytes.Equal(got, want[f][name]) {
				t.Errorf("debugfs ea_get /%s %s: got %x, want %x", f, name, got, want[f][name])
			}
		}
	}
}

// checkKernelXattrs loop-mounts image read-only and compares what
// getfattr reads of each file with want (skipping when not root).
func checkKernelXattrs(t *testing.T, image string, want map[string]map[string][]byte) {
	t.Helper()
	oracle.Tool(t, "getfattr")
	mnt := oracle.LoopMount(t, image, true)
	for _, f := range xattrKeys(want) {
		out, _ := exec.Command(oracle.Tool(t, "getfattr"), "--absolute-names", "-h", "-d", "-m", "-", "-e", "hex", filepath.Join(mnt, f)).CombinedOutput()
		got := parseGetfattr(t, string(out))
		if gk, wk := xattrKeys(got), xattrKeys(want[f]); !slices.Equal(gk, wk) {
			t.Errorf("kernel getfattr /%s: got names %q, want %q", f, gk, wk)
			continue
		}
		for name, v := range want[f] {
			if !bytes.Equal(got[name], v) {
				t.Errorf("kernel getfattr /%s %s: got %x, want %x", f, name, got[name], v)
			}
		}
	}
	oracle.Umount(t, mnt)
}

// xattrTestTree makes the source tree of the write tests: n regular
// files f0..f(n-1), a directory d and a symlink l.
func xattrTestTree(t *testing.T, n int) string {
	t.Helper()
	src := t.TempDir()
	for i := range n {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%d", i)), pattern(uint64(i), 100*i))
	}
	if err := os.Mkdir(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f0", filepath.Join(src, "l")); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestSetXattrOracles sets, replaces and removes attributes of every
// namespace and POSIX ACLs on many files, then asks e2fsck, debugfs and
// the kernel: e2fsck -fn finds nothing wrong (entry hashes, refcounts,
// i_blocks, bitmaps), debugfs and getfattr on a kernel mount read the
// values we wrote, and files whose attributes were all removed have no
// attribute block left.
func TestSetXattrOracles(t *testing.T) {
	for _, isz := range []int{128, 256} {
		t.Run(fmt.Sprintf("inode%d", isz), func(t *testing.T) {
			const n = 12
			image := makeImage(t, 1024, isz, 8<<20, xattrTestTree(t, n))
			want := map[string]map[string][]byte{}
			access := vfsACL(aclUserObj, 6, -1, aclUser, 5, 1000, aclGroupObj, 4, -1, aclGroup, 7, 50, aclMask, 7, -1, aclOther, 0, -1)
			deflt := vfsACL(aclUserObj, 7, -1, aclGroupObj, 5, -1, aclGroup, 5, 60, aclMask, 5, -1, aclOther, 1, -1)
			changeImage(t, image, func(fs *FS, root *Inode) {
				set := func(f string, ino *Inode, name string, v []byte) {
					t.Helper()
					if err := fs.SetXattr(ino, name, v, 0); err != nil {
						t.Fatalf("SetXattr(%s, %s): %v", f, name, err)
					}
					if want[f] == nil {
						want[f] = map[string][]byte{}
					}
					want[f][name] = v
				}
				remove := func(f string, ino *Inode, name string) {
					t.Helper()
					if err := fs.RemoveXattr(ino, name); err != nil {
						t.Fatalf("RemoveXattr(%s, %s): %v", f, name, err)
					}
					delete(want[f], name)
				}
				for i := range n {
					f := fmt.Sprintf("f%d", i)
					ino := lookupT(t, fs, "/"+f)
					want[f] = map[string][]byte{}
					set(f, ino, "user.comment", []byte(fmt.Sprintf("file %d", i)))
					set(f, ino, "user.bin", pattern(uint64(i), i*7))
					set(f, ino, "trusted.t", []byte{0, 0xff, byte(i)})
					set(f, ino, "security.label", []byte("lbl\x00"))
					set(f, ino, "user.empty", []byte{})
					set(f, ino, "user."+strings.Repeat("n", 200+i), []byte("long name"))
					switch i % 4 {
					case 0: // replace with other sizes, same size
						set(f, ino, "user.comment", pattern(99, 150))
						set(f, ino, "user.bin", bytes.Repeat([]byte{byte(i)}, i*7))
						set(f, ino, "user.comment", []byte("x"))
					case 1: // remove some
						remove(f, ino, "user.bin")
						remove(f, ino, "trusted.t")
						remove(f, ino, "user.empty")
					case 2: // remove all: the block goes
						for _, name := range xattrKeys(want[f]) {
							remove(f, ino, name)
						}
						if st := ino.Stat(); st.FileACL != 0 {
							t.Errorf("%s: i_file_acl %d after removing every attribute, want 0", f, st.FileACL)
						}
					case 3: // the access ACL
						set(f, ino, "system.posix_acl_access", access)
					}
					fs.Iput(ino)
				}
				d := lookupT(t, fs, "/d")
				set("d", d, "system.posix_acl_default", deflt)
				set("d", d, "user.dir", []byte("on a directory"))
				fs.Iput(d)
				l := lookupT(t, fs, "/l")
				set("l", l, "trusted.onlink", []byte("L"))
				fs.Iput(l)
			})
			// e2fsck's pass 5 would see a freed block still marked in
			// use, or one in use that no inode names.
			oracle.RequireClean(t, image)
			// The access ACL set the group bits from its mask.
			if st := oracle.DebugfsStat(t, image, "/f3"); st.Mode&0o777 != 0o670 {
				t.Errorf("mode of /f3 after the access ACL: got %#o, want 0670 (user rw, mask rwx, other none)", st.Mode&0o777)
			}
			if sb := oracle.DumpSuper(t, image); !strings.Contains(sb["Filesystem features"], "ext_attr") {
				t.Errorf("features %q lack ext_attr", sb["Filesystem features"])
			}
			checkDebugfsXattrs(t, image, want)

			fs := mountImage(t, image, Options{ReadOnly: true})
			for _, f := range xattrKeys(want) {
				checkXattrs(t, fs, lookupT(t, fs, "/"+f), want[f])
			}
			fs.Close()
			checkKernelXattrs(t, image, want)
		})
	}
}

// TestSetXattrKernelInterop has the kernel write attributes (its ext2
// shares identical attribute blocks between inodes), changes them with
// SetXattr and RemoveXattr, and has the kernel read the result: the
// shared block is copied on write, its refcount lowered, and freed when
// its last user lets go; e2fsck is clean at every step.
func TestSetXattrKernelInterop(t *testing.T) {
	oracle.Tool(t, "setfattr")
	oracle.Tool(t, "setfacl")
	image := makeImage(t, 1024, 128, 8<<20, "")
	mnt := oracle.LoopMount(t, image, false)
	files := []string{"s1", "s2", "s3", "acl"}
	for _, f := range files {
		p := filepath.Join(mnt, f)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
		if f == "acl" {
			runTool(t, "setfacl", "-m", "u:1000:rw,g:50:r", p)
		} else {
			runTool(t, "setfattr", "-n", "user.same", "-v", "value", p)
			runTool(t, "setfattr", "-n", "user.also", "-v", "shared", p)
		}
	}
	oracle.Umount(t, mnt)
	shared := xattrBlockOf(t, image, "/s1")
	for _, f := range []string{"/s2", "/s3"} {
		if b := xattrBlockOf(t, image, f); b != shared {
			t.Skipf("the kernel did not share the attribute block (%s: %d, /s1: %d)", f, b, shared)
		}
	}
	if got := xattrRefcount(t, image, shared); got != 3 {
		t.Fatalf("h_refcount of the shared block: got %d, want 3", got)
	}
	base := map[string][]byte{"user.same": []byte("value"), "user.also": []byte("shared")}
	want := map[string]map[string][]byte{"s1": base, "s3": base}

	// Changing s2 copies the block: s2 gets its own, the shared one
	// drops to 2 users.
	changeImage(t, image, func(fs *FS, root *Inode) {
		s2 := lookupT(t, fs, "/s2")
		defer fs.Iput(s2)
		if err := fs.SetXattr(s2, "user.same", []byte("changed"), XattrReplace); err != nil {
			t.Fatalf("SetXattr: %v", err)
		}
		if err := fs.SetXattr(s2, "user.new", []byte("n"), XattrCreate); err != nil {
			t.Fatalf("SetXattr: %v", err)
		}
		acl := lookupT(t, fs, "/acl")
		defer fs.Iput(acl)
		v, err := fs.GetXattr(acl, "system.posix_acl_access")
		if err != nil {
			t.Fatalf("GetXattr of the kernel's ACL: %v", err)
		}
		// Drop the named group: tag 8 entry of 8 bytes.
		var kept []byte
		kept = append(kept, v[:4]...)
		for i := 4; i+8 <= len(v); i += 8 {
			if binary.LittleEndian.Uint16(v[i:]) != aclGroup {
				kept = append(kept, v[i:i+8]...)
			}
		}
		if err := fs.SetXattr(acl, "system.posix_acl_access", kept, 0); err != nil {
			t.Fatalf("SetXattr(ACL): %v", err)
		}
		want["acl"] = map[string][]byte{"system.posix_acl_access": kept}
	})
	want["s2"] = map[string][]byte{"user.same": []byte("changed"), "user.also": []byte("shared"), "user.new": []byte("n")}
	oracle.RequireClean(t, image)
	if b := xattrBlockOf(t, image, "/s2"); b == shared || b == 0 {
		t.Errorf("s2's attribute block after the change: got %d, want a new one (shared is %d)", b, shared)
	}
	if got := xattrRefcount(t, image, shared); got != 2 {
		t.Errorf("h_refcount of the shared block after copy on write: got %d, want 2", got)
	}
	checkDebugfsXattrs(t, image, want)
	checkKernelXattrs(t, image, want)

	// Removing from s1 copies again (refcount 2 -> 1); then emptying
	// s3, the block's last user, frees it.
	changeImage(t, image, func(fs *FS, root *Inode) {
		s1 := lookupT(t, fs, "/s1")
		defer fs.Iput(s1)
		if err := fs.RemoveXattr(s1, "user.also"); err != nil {
			t.Fatalf("RemoveXattr: %v", err)
		}
		s3 := lookupT(t, fs, "/s3")
		defer fs.Iput(s3)
		for _, name := range []string{"user.same", "user.also"} {
			if err := fs.RemoveXattr(s3, name); err != nil {
				t.Fatalf("RemoveXattr(s3, %s): %v", name, err)
			}
		}
	})
	want["s1"] = map[string][]byte{"user.same": []byte("value")}
	want["s3"] = map[string][]byte{}
	oracle.RequireClean(t, image)
	if blockInUse(t, image, shared) {
		t.Errorf("the formerly shared block %d is still in use after its last user emptied it", shared)
	}
	checkDebugfsXattrs(t, image, want)
	checkKernelXattrs(t, image, want)
}

// TestSetXattrInInode changes attributes that mke2fs -d / debugfs stored
// in the body of 256-byte inodes: a small replacement stays there, a big
// one moves to the block (and is no longer in the inode), a removal
// removes it there; no name is ever listed twice.
func TestSetXattrInInode(t *testing.T) {
	image := xattrImage(t, 256, map[string][]byte{"user.a": []byte("aa"), "user.b": []byte("bbbb"), "user.c": []byte("c")})
	if blk := xattrBlockOf(t, image, "/f"); blk != 0 {
		t.Fatalf("debugfs made attribute block %d; want the attributes in the inode", blk)
	}
	want := map[string][]byte{"user.a": []byte("AAA"), "user.b": pattern(5, 200), "user.d": []byte("new")}
	changeImage(t, image, func(fs *FS, root *Inode) {
		f := lookupT(t, fs, "/f")
		defer fs.Iput(f)
		steps := []struct {
			name  string
			value []byte // nil: remove
		}{
			{"user.a", []byte("AAA")},
			{"user.c", nil},
			{"user.b", pattern(5, 200)},
			{"user.d", []byte("new")},
		}
		for _, s := range steps {
			var err error
			if s.value == nil {
				err = fs.RemoveXattr(f, s.name)
			} else {
				err = fs.SetXattr(f, s.name, s.value, 0)
			}
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		if err := fs.SetXattr(f, "user.a", []byte("x"), XattrCreate); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("SetXattr(XattrCreate) of an in-inode attribute: got %v, want EEXIST", err)
		}
		disk := f.Disk()
		area, err := layout.ParseInodeXattrs(disk.XattrArea())
		if err != nil {
			t.Fatal(err)
		}
		var inInode []string
		for _, x := range area {
			inInode = append(inInode, x.FullName())
		}
		if !slices.Equal(inInode, []string{"user.a"}) {
			t.Errorf("attributes in the inode body: got %q, want [user.a]", inInode)
		}
		names, _ := fs.ListXattr(f)
		if len(names) != len(want) {
			t.Errorf("ListXattr: got %q, want each of %q once", names, xattrKeys(want))
		}
	})
	oracle.RequireClean(t, image)
	checkDebugfsXattrs(t, image, map[string]map[string][]byte{"f": want})
	checkKernelXattrs(t, image, map[string]map[string][]byte{"f": want})
	changeImage(t, image, func(fs *FS, root *Inode) {
		f := lookupT(t, fs, "/f")
		defer fs.Iput(f)
		for _, name := range xattrKeys(want) {
			if err := fs.RemoveXattr(f, name); err != nil {
				t.Fatalf("RemoveXattr(%s): %v", name, err)
			}
		}
		disk := f.Disk()
		if area := disk.XattrArea(); binary.LittleEndian.Uint32(area) != 0 {
			t.Errorf("in-inode h_magic after removing everything: got %#x, want 0", binary.LittleEndian.Uint32(area))
		}
	})
	oracle.RequireClean(t, image)
	checkDebugfsXattrs(t, image, map[string]map[string][]byte{"f": {}})
}

// TestSetXattrNoSpace fills an attribute block until ENOSPC: the failed
// call changes nothing, and a smaller value still fits.
func TestSetXattrNoSpace(t *testing.T) {
	image := makeImage(t, 1024, 128, 8<<20, xattrTestTree(t, 1))
	want := map[string][]byte{}
	changeImage(t, image, func(fs *FS, root *Inode) {
		f := lookupT(t, fs, "/f0")
		defer fs.Iput(f)
		var err error
		for i := 0; ; i++ {
			name := fmt.Sprintf("user.k%02d", i)
			v := pattern(uint64(i), 100)
			if err = fs.SetXattr(f, name, v, 0); err != nil {
				break
			}
			want[name] = v
		}
		if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrNoSpace) {
			t.Fatalf("SetXattr into a full block: got %v, want ErrNoSpace (ENOSPC)", err)
		}
		// 1024 - 32 header - 4 end = 988; each attribute takes 20 + 100.
		if len(want) != 988/120 {
			t.Errorf("attributes that fit: got %d, want %d", len(want), 988/120)
		}
		if err := fs.SetXattr(f, "user.k00", pattern(1, 400), 0); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("growing a value past the block: got %v, want ENOSPC", err)
		}
		checkXattrs(t, fs, f, want)
		if err := fs.SetXattr(f, "user.s", []byte("small"), 0); err != nil {
			t.Errorf("a small attribute in the room left: %v", err)
		}
		want["user.s"] = []byte("small")
		if err := fs.SetXattr(f, "user.big", make([]byte, 1025), 0); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("a value larger than a block: got %v, want ENOSPC (as the kernel's ext4 driver)", err)
		}
	})
	oracle.RequireClean(t, image)
	checkDebugfsXattrs(t, image, map[string]map[string][]byte{"f0": want})
}

// TestSetXattrErrors is the table of refused calls: names, flags,
// ACLs, inode types, and the read-only filesystem.
func TestSetXattrErrors(t *testing.T) {
	image := makeImage(t, 1024, 128, 8<<20, xattrTestTree(t, 2))
	goodACL := vfsACL(aclUserObj, 6, -1, aclGroupObj, 4, -1, aclOther, 4, -1)
	changeImage(t, image, func(fs *FS, root *Inode) {
		f := lookupT(t, fs, "/f0")
		defer fs.Iput(f)
		if err := fs.SetXattr(f, "user.there", []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
		d := lookupT(t, fs, "/d")
		defer fs.Iput(d)
		l := lookupT(t, fs, "/l")
		defer fs.Iput(l)
		fifo, err := fs.Mknod(root, "fifo", layout.ModeFifo|0o644, 0, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fs.Iput(fifo)
		imm := lookupT(t, fs, "/f1")
		defer fs.Iput(imm)
		imm.Lock()
		imm.UpdateLocked(func(d *layout.Inode) { d.Flags |= layout.FlImmutable })
		imm.Unlock()
		defer func() {
			imm.Lock()
			imm.UpdateLocked(func(d *layout.Inode) { d.Flags &^= layout.FlImmutable })
			imm.Unlock()
		}()

		tests := []struct {
			name   string
			ino    *Inode
			attr   string
			value  []byte // nil: RemoveXattr
			flags  int
			want   error
			wantOK bool
		}{
			{"create existing", f, "user.there", []byte("2"), XattrCreate, syscall.EEXIST, false},
			{"replace missing", f, "user.missing", []byte("2"), XattrReplace, syscall.ENODATA, false},
			{"remove missing", f, "user.missing", nil, 0, syscall.ENODATA, false},
			{"unknown flags", f, "user.x", []byte("2"), 4, syscall.EINVAL, false},
			{"no prefix", f, "comment", []byte("2"), 0, syscall.EOPNOTSUPP, false},
			{"unknown prefix", f, "bogus.x", []byte("2"), 0, syscall.EOPNOTSUPP, false},
			{"other system name", f, "system.foo", []byte("2"), 0, syscall.EOPNOTSUPP, false},
			{"acl name with suffix", f, "system.posix_acl_accessX", goodACL, 0, syscall.EOPNOTSUPP, false},
			{"empty suffix", f, "user.", []byte("2"), 0, syscall.EINVAL, false},
			{"empty name", f, "", []byte("2"), 0, syscall.ERANGE, false},
			{"name of 256 bytes", f, "user." + strings.Repeat("n", 251), []byte("2"), 0, syscall.ERANGE, false},
			{"name of 255 bytes", f, "user." + strings.Repeat("n", 250), []byte("2"), 0, nil, true},
			{"NUL in name", f, "user.a\x00b", []byte("2"), 0, syscall.EINVAL, false},
			{"value over 64 KiB", f, "user.huge", make([]byte, 65537), 0, syscall.E2BIG, false},
			{"value over a block", f, "user.big", make([]byte, 1025), 0, syscall.ENOSPC, false},
			{"user.* on a symlink", l, "user.x", []byte("2"), 0, syscall.EPERM, false},
			{"user.* on a fifo", fifo, "user.x", []byte("2"), 0, syscall.EPERM, false},
			{"trusted.* on a fifo", fifo, "trusted.x", []byte("2"), 0, nil, true},
			{"immutable", imm, "user.x", []byte("2"), 0, syscall.EPERM, false},
			{"ACL on a symlink", l, "system.posix_acl_access", goodACL, 0, syscall.EOPNOTSUPP, false},
			{"default ACL on a file", f, "system.posix_acl_default", goodACL, 0, syscall.EACCES, false},
			{"remove default ACL of a file", f, "system.posix_acl_default", nil, 0, nil, true},
			{"remove missing access ACL", f, "system.posix_acl_access", nil, 0, nil, true},
			{"ACL version 1", f, "system.posix_acl_access", append([]byte{1}, goodACL[1:]...), 0, syscall.EOPNOTSUPP, false},
			{"ACL cut entry", f, "system.posix_acl_access", goodACL[:len(goodACL)-2], 0, syscall.EINVAL, false},
			{"ACL short header", f, "system.posix_acl_access", []byte{2, 0}, 0, syscall.EINVAL, false},
			{"ACL out of order", f, "system.posix_acl_access", vfsACL(aclGroupObj, 4, -1, aclUserObj, 6, -1, aclOther, 4, -1), 0, syscall.EINVAL, false},
			{"ACL without other", f, "system.posix_acl_access", vfsACL(aclUserObj, 6, -1, aclGroupObj, 4, -1), 0, syscall.EINVAL, false},
			{"ACL named user without mask", f, "system.posix_acl_access", vfsACL(aclUserObj, 6, -1, aclUser, 4, 5, aclGroupObj, 4, -1, aclOther, 4, -1), 0, syscall.EINVAL, false},
			{"ACL bad permission", f, "system.posix_acl_access", vfsACL(aclUserObj, 8, -1, aclGroupObj, 4, -1, aclOther, 4, -1), 0, syscall.EINVAL, false},
			{"ACL unknown tag", f, "system.posix_acl_access", vfsACL(aclUserObj, 6, -1, 0x40, 4, -1, aclOther, 4, -1), 0, syscall.EINVAL, false},
			{"ACL user without id", f, "system.posix_acl_access", vfsACL(aclUserObj, 6, -1, aclUser, 4, -1, aclGroupObj, 4, -1, aclMask, 4, -1, aclOther, 4, -1), 0, syscall.EINVAL, false},
			{"ACL ignores XattrReplace", d, "system.posix_acl_default", goodACL, XattrReplace, nil, true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var err error
				if tc.value == nil {
					err = fs.RemoveXattr(tc.ino, tc.attr)
				} else {
					err = fs.SetXattr(tc.ino, tc.attr, tc.value, tc.flags)
				}
				if tc.wantOK {
					if err != nil {
						t.Errorf("got %v, want success", err)
					}
					return
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("got %v, want %v", err, tc.want)
				}
			})
		}
		checkXattrs(t, fs, f, map[string][]byte{"user.there": []byte("1"), "user." + strings.Repeat("n", 250): []byte("2")})
		if names, err := fs.ListXattr(imm); err != nil || len(names) != 0 {
			t.Errorf("ListXattr of the immutable file: got %q, %v, want none", names, err)
		}
	})
	oracle.RequireClean(t, image)

	ro := mountImage(t, image, Options{ReadOnly: true})
	f := lookupT(t, ro, "/f0")
	if err := ro.SetXattr(f, "user.x", []byte("1"), 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("SetXattr on a read-only mount: got %v, want EROFS", err)
	}
	if err := ro.RemoveXattr(f, "user.there"); !errors.Is(err, syscall.EROFS) {
		t.Errorf("RemoveXattr on a read-only mount: got %v, want EROFS", err)
	}
}

// TestSetXattrACLMode checks what ext2_set_acl does to the mode: an ACL
// with a mask sets the group bits from the mask and is stored; an ACL of
// the three base entries only sets the mode bits and stores nothing.
func TestSetXattrACLMode(t *testing.T) {
	image := makeImage(t, 1024, 128, 8<<20, xattrTestTree(t, 1))
	changeImage(t, image, func(fs *FS, root *Inode) {
		f := lookupT(t, fs, "/f0")
		defer fs.Iput(f)
		masked := vfsACL(aclUserObj, 7, -1, aclUser, 6, 1000, aclGroupObj, 4, -1, aclMask, 2, -1, aclOther, 1, -1)
		if err := fs.SetXattr(f, "system.posix_acl_access", masked, 0); err != nil {
			t.Fatal(err)
		}
		if m := f.Mode() & 0o7777; m != 0o721 {
			t.Errorf("mode after an ACL with mask -w-: got %#o, want 0721", m)
		}
		checkXattrs(t, fs, f, map[string][]byte{"system.posix_acl_access": masked})
		plain := vfsACL(aclUserObj, 6, -1, aclGroupObj, 4, -1, aclOther, 0, -1)
		if err := fs.SetXattr(f, "system.posix_acl_access", plain, 0); err != nil {
			t.Fatal(err)
		}
		if m := f.Mode() & 0o7777; m != 0o640 {
			t.Errorf("mode after a base-entries ACL: got %#o, want 0640", m)
		}
		checkXattrs(t, fs, f, map[string][]byte{})
		if st := f.Stat(); st.FileACL != 0 || st.Blocks != 0 {
			t.Errorf("after the ACL went: i_file_acl %d, i_blocks %d, want 0 and 0 (a 0-byte file)", st.FileACL, st.Blocks)
		}
	})
	oracle.RequireClean(t, image)
}

// TestSetXattrUnlinkAndSync: attributes written by SetXattr reach the
// disk with Sync and with SyncInode (no unmount), and unlinking the file
// frees its block.
func TestSetXattrUnlinkAndSync(t *testing.T) {
	image := makeImage(t, 1024, 128, 8<<20, xattrTestTree(t, 2))
	dev := openDev(t, image, false)
	fs, err := Mount(dev, Options{Name: image, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	f0 := lookupT(t, fs, "/f0")
	f1 := lookupT(t, fs, "/f1")
	if err := fs.SetXattr(f0, "user.synced", []byte("by Sync"), 0); err != nil {
		t.Fatal(err)
	}
	if err := fs.SetXattr(f1, "user.synced", []byte("by SyncInode"), 0); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncInode(f1); err != nil {
		t.Fatal(err)
	}
	if got := debugfsEAGet(t, image, "/f1", "user.synced"); string(got) != "by SyncInode" {
		t.Errorf("after SyncInode, debugfs reads %q", got)
	}
	if err := fs.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := debugfsEAGet(t, image, "/f0", "user.synced"); string(got) != "by Sync" {
		t.Errorf("after Sync, debugfs reads %q", got)
	}
	blk := int64(f0.Stat().FileACL)
	fs.Iput(f0)
	fs.Iput(f1)
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Unlink(root, "f0"); err != nil {
		t.Fatal(err)
	}
	fs.Iput(root)
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, image)
	if blockInUse(t, image, blk) {
		t.Errorf("attribute block %d of the unlinked file still in use", blk)
	}
}

// TestXattrHashMatchesKernel compares the entry and block hashes we
// compute with those the kernel wrote for the same attributes.
func TestXattrHashMatchesKernel(t *testing.T) {
	oracle.Tool(t, "setfattr")
	image := makeImage(t, 1024, 128, 8<<20, "")
	mnt := oracle.LoopMount(t, image, false)
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, "setfattr", "-n", "user.abc", "-v", "0x00ff7f80", p)
	runTool(t, "setfattr", "-n", "user.\xe9t\xe9", "-v", "high bytes in the name", p)
	runTool(t, "setfattr", "-n", "trusted.z", "-v", "0x01", p)
	oracle.Umount(t, mnt)
	blk := xattrBlockOf(t, image, "/f")
	kernel := make([]byte, 1024)
	fh, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.ReadAt(kernel, blk*1024); err != nil {
		t.Fatal(err)
	}
	xs, err := layout.ParseXattrBlock(kernel)
	if err != nil {
		t.Fatal(err)
	}
	// Rebuild the block with our code, in the kernel's order of calls.
	a := &xattrArea{b: make([]byte, 1024), first: layout.XattrHeaderSize, sorted: true}
	(&layout.XattrHeader{Magic: layout.XattrMagic, Refcount: 1, Blocks: 1}).Encode(a.b)
	for _, name := range []string{"user.abc", "user.\xe9t\xe9", "trusted.z"} {
		idx, suffix, _ := layout.SplitXattrName(name)
		for _, x := range xs {
			if x.Index == idx && x.Name == suffix {
				if err := a.set(idx, suffix, x.Value, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if !bytes.Equal(a.b, kernel) {
		t.Errorf("our block differs from the kernel's:\nours   %x\nkernel %x", a.b[:160], kernel[:160])
	}
}

// FuzzXattrAreaSet applies a sequence of sets and removes to an attribute
// block and checks it against a map: the block parses, holds exactly the
// map's attributes, entries stay sorted, and every entry hash is right.
func FuzzXattrAreaSet(f *testing.F) {
	f.Add([]byte{0, 1, 5, 3, 1, 2, 0, 0, 1, 1, 9, 200, 0, 1, 3, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		a := &xattrArea{b: make([]byte, 1024), first: layout.XattrHeaderSize, sorted: true}
		(&layout.XattrHeader{Magic: layout.XattrMagic, Refcount: 1, Blocks: 1}).Encode(a.b)
		model := map[string][]byte{}
		for i := 0; i+3 < len(ops); i += 4 {
			index := []uint8{layout.XattrIndexUser, layout.XattrIndexTrusted, layout.XattrIndexSecurity}[ops[i]%3]
			name := strings.Repeat(string(rune('a'+ops[i+1]%4)), 1+int(ops[i+1]/4)%9)
			key := layout.XattrPrefix(index) + name
			var value []byte
			if ops[i+2]%5 != 0 {
				value = pattern(uint64(ops[i+3]), int(ops[i+2]))
			}
			before := bytes.Clone(a.b)
			err := a.set(index, name, value, 0)
			switch {
			case errors.Is(err, errXattrNoRoom), errors.Is(err, errXattrUnchanged):
				if !bytes.Equal(before, a.b) {
					t.Fatalf("op %d: failed set changed the block", i/4)
				}
			case err != nil:
				t.Fatalf("op %d: %v", i/4, err)
			case value == nil:
				delete(model, key)
			default:
				model[key] = value
			}
		}
		xs, err := layout.ParseXattrBlock(a.b)
		if err != nil {
			t.Fatalf("block does not parse: %v", err)
		}
		if len(xs) != len(model) {
			t.Fatalf("got %d attributes, want %d", len(xs), len(model))
		}
		for i, x := range xs {
			if v, ok := model[x.FullName()]; !ok || !bytes.Equal(v, x.Value) {
				t.Fatalf("%s: got %x, want %x (present %v)", x.FullName(), x.Value, v, ok)
			}
			if want := xattrHashEntry([]byte(x.Name), padded(x.Value)); x.Hash != want {
				t.Fatalf("%s: e_hash %#x, want %#x", x.FullName(), x.Hash, want)
			}
			if i > 0 {
				p := xs[i-1]
				if p.Index > x.Index || p.Index == x.Index && (len(p.Name) > len(x.Name) || len(p.Name) == len(x.Name) && p.Name >= x.Name) {
					t.Fatalf("entries out of order: %s before %s", p.FullName(), x.FullName())
				}
			}
		}
	})
}

func padded(v []byte) []byte {
	return append(bytes.Clone(v), make([]byte, xattrSize(len(v))-len(v))...)
}

// FuzzACLFromXattr: an ACL that aclFromXattr accepts survives the round
// trip through ext2's disk format unchanged; one it refuses is EINVAL or
// EOPNOTSUPP.
func FuzzACLFromXattr(f *testing.F) {
	f.Add(vfsACL(aclUserObj, 6, -1, aclUser, 5, 1000, aclGroupObj, 4, -1, aclMask, 7, -1, aclOther, 0, -1))
	f.Add([]byte{2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		acl, err := aclFromXattr(v)
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.EOPNOTSUPP) {
				t.Fatalf("error %v is neither EINVAL nor EOPNOTSUPP", err)
			}
			return
		}
		if acl == nil {
			return
		}
		back, err := aclToXattr(aclToDisk(acl))
		if err != nil {
			t.Fatalf("our disk format does not decode: %v", err)
		}
		// Only the ids of named entries survive; others read back as -1.
		want := bytes.Clone(v)
		for i := 4; i+8 <= len(want); i += 8 {
			if tag := binary.LittleEndian.Uint16(want[i:]); tag != aclUser && tag != aclGroup {
				binary.LittleEndian.PutUint32(want[i+4:], aclUndefinedID)
			}
		}
		if !bytes.Equal(back, want) {
			t.Fatalf("round trip: got %x, want %x", back, want)
		}
	})
}

// TestSetXattrSharedConcurrent has eight inodes that share one attribute
// block (the kernel's doing) change their attributes at the same time:
// each copy on write lowers the shared refcount under the buffer lock,
// the last one left modifies the block in place, and e2fsck, which counts
// the inodes naming each block against h_refcount, is clean after.
func TestSetXattrSharedConcurrent(t *testing.T) {
	oracle.Tool(t, "setfattr")
	image := makeImage(t, 1024, 128, 8<<20, "")
	mnt := oracle.LoopMount(t, image, false)
	const n = 8
	for i := range n {
		p := filepath.Join(mnt, fmt.Sprintf("s%d", i))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, "setfattr", "-n", "user.same", "-v", "value", p)
	}
	oracle.Umount(t, mnt)
	shared := xattrBlockOf(t, image, "/s0")
	if got := xattrRefcount(t, image, shared); got != n {
		t.Skipf("the kernel shared the block among %d inodes, not %d", got, n)
	}
	want := map[string]map[string][]byte{}
	changeImage(t, image, func(fs *FS, root *Inode) {
		inos := make([]*Inode, n)
		for i := range n {
			inos[i] = lookupT(t, fs, fmt.Sprintf("/s%d", i))
		}
		errs := make(chan error, n)
		for i, ino := range inos {
			go func() {
				var err error
				for round := range 5 {
					if err = fs.SetXattr(ino, "user.same", []byte(fmt.Sprintf("inode %d round %d", i, round)), XattrReplace); err != nil {
						break
					}
				}
				if err == nil && i%2 == 0 {
					err = fs.RemoveXattr(ino, "user.same")
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("concurrent change: %v", err)
			}
		}
		for i, ino := range inos {
			f := fmt.Sprintf("s%d", i)
			want[f] = map[string][]byte{}
			if i%2 == 1 {
				want[f]["user.same"] = []byte(fmt.Sprintf("inode %d round 4", i))
			}
			checkXattrs(t, fs, ino, want[f])
		}
	})
	oracle.RequireClean(t, image)
	checkDebugfsXattrs(t, image, want)
}

// TestWriteXattrInPlaceStaleRefcount: the copy of a block that SetXattr
// edits may have been taken while another inode still shared the block;
// when that inode has let go by the time of the write (h_refcount 1),
// the block is written in place with h_refcount 1, not the stale count.
func TestWriteXattrInPlaceStaleRefcount(t *testing.T) {
	image := makeImage(t, 1024, 128, 8<<20, xattrTestTree(t, 1))
	fs := mountImage(t, image, Options{})
	f := lookupT(t, fs, "/f0")
	if err := fs.SetXattr(f, "user.a", []byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	blk := int64(f.Stat().FileACL)
	bh, err := fs.bc.Bread(blk)
	if err != nil {
		t.Fatal(err)
	}
	stale := bytes.Clone(bh.Data)
	fs.bc.Release(bh)
	binary.LittleEndian.PutUint32(stale[4:], 2)
	if !fs.writeXattrInPlace(blk, stale) {
		t.Fatal("writeXattrInPlace refused a block of h_refcount 1")
	}
	bh, err = fs.bc.Bread(blk)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.bc.Release(bh)
	if got := binary.LittleEndian.Uint32(bh.Data[4:]); got != 1 {
		t.Errorf("h_refcount after writing a copy taken when it was 2: got %d, want 1", got)
	}
}
