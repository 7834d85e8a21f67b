package ext2

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// debugfsWrite runs debugfs -w with the given requests, one a line, and
// fails the test on a request debugfs refuses.
func debugfsWrite(t *testing.T, image string, requests ...string) {
	t.Helper()
	cmds := filepath.Join(t.TempDir(), "cmds")
	if err := os.WriteFile(cmds, []byte(strings.Join(requests, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(oracle.Tool(t, "debugfs"), "-w", "-f", cmds, image).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs -w: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs") && !strings.HasPrefix(line, "Allocated inode") {
			t.Fatalf("debugfs -w: %s\n%s", line, out)
		}
	}
}

// xattrImage makes an image of inode size isz holding /f (and /g), and
// sets the attributes named by attrs on /f with debugfs ea_set (a value
// is written from a file, so any bytes go).
func xattrImage(t *testing.T, isz int, attrs map[string][]byte) string {
	t.Helper()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), pattern(1, 5000))
	writeFile(t, filepath.Join(src, "g"), []byte("g"))
	image := makeImage(t, 1024, isz, 8<<20, src)
	var reqs []string
	dir := t.TempDir()
	for i, name := range xattrKeys(attrs) {
		vf := filepath.Join(dir, "v"+string(rune('a'+i)))
		if err := os.WriteFile(vf, attrs[name], 0o644); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, "ea_set -f "+vf+" /f "+name)
	}
	debugfsWrite(t, image, reqs...)
	return image
}

func xattrKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkXattrs checks ListXattr and GetXattr of ino against want.
func checkXattrs(t *testing.T, fs *FS, ino *Inode, want map[string][]byte) {
	t.Helper()
	names, err := fs.ListXattr(ino)
	if err != nil {
		t.Fatalf("ListXattr: %v", err)
	}
	slices.Sort(names)
	if wantNames := xattrKeys(want); !slices.Equal(names, wantNames) {
		t.Errorf("ListXattr: got %q, want %q", names, wantNames)
	}
	for _, name := range xattrKeys(want) {
		got, err := fs.GetXattr(ino, name)
		if err != nil {
			t.Errorf("GetXattr(%s): %v", name, err)
			continue
		}
		if !bytes.Equal(got, want[name]) {
			t.Errorf("GetXattr(%s): got %x, want %x", name, got, want[name])
		}
	}
}

func TestXattrDebugfs(t *testing.T) {
	small := map[string][]byte{
		"user.a":           []byte("hello"),
		"trusted.t":        {0, 0xff, 1},
		"security.selinux": []byte("s0\x00"),
	}
	mixed := map[string][]byte{
		"user.small": []byte("hi"),
		"user.big":   pattern(7, 300), // does not fit in the inode
		"user.empty": {},
	}
	tests := []struct {
		name      string
		isz       int
		attrs     map[string][]byte
		wantBlock bool // some attribute lives in an xattr block
	}{
		{"in-inode/256", 256, small, false},
		{"block/128", 128, small, true},
		{"inode+block/256", 256, mixed, true},
		{"block/128-mixed", 128, mixed, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			image := xattrImage(t, tc.isz, tc.attrs)
			fs := mountImage(t, image, Options{ReadOnly: true})
			ino := lookupT(t, fs, "/f")
			if got := ino.Stat().FileACL != 0; got != tc.wantBlock {
				t.Errorf("i_file_acl set: got %v, want %v", got, tc.wantBlock)
			}
			checkXattrs(t, fs, ino, tc.attrs)

			// debugfs ea_list names the same attributes.
			out := oracle.Debugfs(t, image, "ea_list /f")
			for name := range tc.attrs {
				if !strings.Contains(out, "  "+name+" (") {
					t.Errorf("debugfs ea_list does not show %s:\n%s", name, out)
				}
			}

			g := lookupT(t, fs, "/g")
			if names, err := fs.ListXattr(g); err != nil || len(names) != 0 {
				t.Errorf("ListXattr(/g): got %q, %v, want none", names, err)
			}
			errCases := []struct {
				name string
				ino  *Inode
				want error
			}{
				{"user.missing", ino, syscall.ENODATA},
				{"user.a", g, syscall.ENODATA},
				{"system.posix_acl_access", ino, syscall.ENODATA},
				{"bogus.x", ino, syscall.EOPNOTSUPP},
				{"user.", ino, syscall.EINVAL},
				{"user." + strings.Repeat("n", 256), ino, syscall.ERANGE},
			}
			for _, ec := range errCases {
				if _, err := fs.GetXattr(ec.ino, ec.name); !errors.Is(err, ec.want) {
					t.Errorf("GetXattr(inode %d, %.20s): got %v, want %v", ec.ino.Ino(), ec.name, err, ec.want)
				}
			}
			if fs.HasErrors() {
				t.Errorf("HasErrors after reading good attributes")
			}
		})
	}
}

// parseGetfattr parses "getfattr -d -m - -e hex" output for one file.
func parseGetfattr(t *testing.T, out string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, val, _ := strings.Cut(line, "=")
		v, err := hex.DecodeString(strings.TrimPrefix(val, "0x"))
		if err != nil {
			t.Fatalf("getfattr value %q: %v", line, err)
		}
		m[name] = v
	}
	return m
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(oracle.Tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestXattrKernel sets attributes and POSIX ACLs through the kernel's ext2
// driver (setfattr, setfacl on a loop mount), reads them back there with
// getfattr, and compares what ListXattr and GetXattr say.
func TestXattrKernel(t *testing.T) {
	for _, isz := range []int{128, 256} {
		t.Run(map[int]string{128: "inode128", 256: "inode256"}[isz], func(t *testing.T) {
			oracle.Tool(t, "setfattr")
			oracle.Tool(t, "setfacl")
			oracle.Tool(t, "getfattr")
			image := makeImage(t, 1024, isz, 8<<20, "")
			mnt := oracle.LoopMount(t, image, false)
			files := []string{"f", "acl", "d", "plain", "shared1", "shared2"}
			for _, f := range files {
				p := filepath.Join(mnt, f)
				var err error
				if f == "d" {
					err = os.Mkdir(p, 0o755)
				} else {
					err = os.WriteFile(p, []byte(f), 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			runTool(t, "setfattr", "-n", "user.a", "-v", "hello", filepath.Join(mnt, "f"))
			runTool(t, "setfattr", "-n", "trusted.t", "-v", "0x00ff01", filepath.Join(mnt, "f"))
			runTool(t, "setfattr", "-n", "security.label", "-v", "lbl", filepath.Join(mnt, "f"))
			runTool(t, "setfacl", "-m", "u:1000:rw,g:50:r,u:7:x", filepath.Join(mnt, "acl"))
			runTool(t, "setfattr", "-n", "user.also", "-v", "x", filepath.Join(mnt, "acl"))
			runTool(t, "setfacl", "-m", "u:1000:rwx", "-d", "-m", "g:60:rx", filepath.Join(mnt, "d"))
			for _, f := range []string{"shared1", "shared2"} {
				runTool(t, "setfattr", "-n", "user.same", "-v", "value", filepath.Join(mnt, f))
			}
			want := map[string]map[string][]byte{}
			var aclValue []byte
			for _, f := range files {
				want[f] = parseGetfattr(t, runTool(t, "getfattr", "--absolute-names", "-d", "-m", "-", "-e", "hex", filepath.Join(mnt, f)))
			}
			aclValue = []byte(runTool(t, "getfattr", "--absolute-names", "-n", "system.posix_acl_access", "--only-values", filepath.Join(mnt, "acl")))
			oracle.Umount(t, mnt)
			if len(want["acl"]) != 2 || len(want["d"]) != 2 {
				t.Fatalf("getfattr on the kernel mount: acl %q, d %q; want an ACL and one more attribute each", want["acl"], want["d"])
			}

			fs := mountImage(t, image, Options{ReadOnly: true})
			for _, f := range files {
				t.Run(f, func(t *testing.T) {
					checkXattrs(t, fs, lookupT(t, fs, "/"+f), want[f])
				})
			}
			got, err := fs.GetXattr(lookupT(t, fs, "/acl"), "system.posix_acl_access")
			if err != nil || !bytes.Equal(got, aclValue) {
				t.Errorf("GetXattr(system.posix_acl_access): got %x, %v, want %x as getfattr --only-values", got, err, aclValue)
			}
		})
	}
}

// corruptAt overwrites the image at byte offset off.
func corruptAt(t *testing.T, image string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// xattrBlockOf returns i_file_acl of path, read with a mount of its own.
func xattrBlockOf(t *testing.T, image, path string) int64 {
	t.Helper()
	dev := openDev(t, image, true)
	fs, err := Mount(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ino, err := fs.Lookup(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(ino)
	return int64(ino.Stat().FileACL)
}

func TestXattrCorrupt(t *testing.T) {
	tests := []struct {
		name string
		isz  int
		// damage returns the byte offset to overwrite and the bytes,
		// given the xattr block and the inode's byte offset.
		damage     func(blk, inodeOff int64) (int64, []byte)
		wantBlock  bool   // the error names the xattr block
		wantReason string // in the message
	}{
		{"bad magic", 128, func(blk, _ int64) (int64, []byte) { return blk * 1024, []byte{0xde, 0xad, 0xbe, 0xef} }, true, "h_magic"},
		{"two blocks", 128, func(blk, _ int64) (int64, []byte) { return blk*1024 + 8, []byte{2, 0, 0, 0} }, true, "h_blocks"},
		{"value past block", 128, func(blk, _ int64) (int64, []byte) {
			// e_value_size of the first entry.
			return blk*1024 + layout.XattrHeaderSize + 8, []byte{0, 0, 1, 0}
		}, true, "e_value_size"},
		{"in-inode value past area", 256, func(_, inodeOff int64) (int64, []byte) {
			// magic at 128+32, first entry at +4, its e_value_size at +8.
			return inodeOff + 128 + 32 + 4 + 8, []byte{0, 1, 0, 0}
		}, false, "e_value_size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			image := xattrImage(t, tc.isz, map[string][]byte{"user.a": []byte("hello")})
			blk := xattrBlockOf(t, image, "/f")
			if (blk != 0) != tc.wantBlock {
				t.Fatalf("i_file_acl %d, want a block: %v", blk, tc.wantBlock)
			}
			fs0 := mountImage(t, image, Options{ReadOnly: true})
			f0, err := fs0.Lookup("/f")
			if err != nil {
				t.Fatal(err)
			}
			n := f0.Ino()
			loc := fs0.inodeLoc(n)
			inodeOff := loc.block*int64(fs0.blockSize) + int64(loc.offset)
			fs0.Iput(f0)
			fs0.Close()

			off, b := tc.damage(blk, inodeOff)
			corruptAt(t, image, off, b)
			fs := mountImage(t, image, Options{ReadOnly: true})
			ino := lookupT(t, fs, "/f")
			_, lerr := fs.ListXattr(ino)
			_, gerr := fs.GetXattr(ino, "user.a")
			for _, err := range []error{lerr, gerr} {
				var ce *CorruptError
				if !errors.As(err, &ce) {
					t.Fatalf("got %v, want a *CorruptError", err)
				}
				if ce.Inode != n {
					t.Errorf("CorruptError.Inode: got %d, want %d", ce.Inode, n)
				}
				if tc.wantBlock && ce.Block != blk {
					t.Errorf("CorruptError.Block: got %d, want %d", ce.Block, blk)
				}
				if ce.Offset < 0 {
					t.Errorf("CorruptError.Offset: got %d, want the byte offset", ce.Offset)
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.wantReason) {
					t.Errorf("error %q: want ErrCorrupt mentioning %s", err, tc.wantReason)
				}
			}
			if !fs.HasErrors() {
				t.Errorf("HasErrors: got false after a corrupt attribute block")
			}
		})
	}
}

func TestACLToXattr(t *testing.T) {
	le := func(vs ...any) []byte {
		var b []byte
		for _, v := range vs {
			switch v := v.(type) {
			case uint16:
				b = binary.LittleEndian.AppendUint16(b, v)
			case uint32:
				b = binary.LittleEndian.AppendUint32(b, v)
			}
		}
		return b
	}
	u := uint32(aclUndefinedID)
	tests := []struct {
		name    string
		disk    []byte
		want    []byte
		wantErr bool
	}{
		{"empty ACL", le(uint32(1)), nil, false},
		{"three short", le(uint32(1), uint16(aclUserObj), uint16(6), uint16(aclGroupObj), uint16(4), uint16(aclOther), uint16(4)),
			le(uint32(2), uint16(aclUserObj), uint16(6), u, uint16(aclGroupObj), uint16(4), u, uint16(aclOther), uint16(4), u), false},
		{"user and group", le(uint32(1), uint16(aclUserObj), uint16(6), uint16(aclUser), uint16(7), uint32(1000),
			uint16(aclGroupObj), uint16(4), uint16(aclGroup), uint16(5), uint32(50), uint16(aclMask), uint16(7), uint16(aclOther), uint16(0)),
			le(uint32(2), uint16(aclUserObj), uint16(6), u, uint16(aclUser), uint16(7), uint32(1000),
				uint16(aclGroupObj), uint16(4), u, uint16(aclGroup), uint16(5), uint32(50), uint16(aclMask), uint16(7), u,
				uint16(aclOther), uint16(0), u), false},
		{"short", []byte{1, 0}, nil, true},
		{"version 2", le(uint32(2), uint16(aclUserObj), uint16(6)), nil, true},
		{"odd size", append(le(uint32(1), uint16(aclUserObj), uint16(6)), 0), nil, true},
		{"unknown tag", le(uint32(1), uint16(0x40), uint16(6)), nil, true},
		{"user entry cut", le(uint32(1), uint16(aclUser), uint16(6)), nil, true},
		{"short entries where long expected", le(uint32(1), uint16(aclUserObj), uint16(6), uint16(aclGroupObj), uint16(6),
			uint16(aclMask), uint16(6), uint16(aclOther), uint16(6), uint16(aclOther), uint16(6)), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := aclToXattr(tc.disk)
			if (err != nil) != tc.wantErr {
				t.Fatalf("aclToXattr: got error %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, syscall.EINVAL) {
				t.Errorf("error %v does not wrap EINVAL", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("aclToXattr: got %x, want %x", got, tc.want)
			}
		})
	}
}

// xattrRefcount reads h_refcount of block blk straight from the image.
func xattrRefcount(t *testing.T, image string, blk int64) uint32 {
	t.Helper()
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, layout.XattrHeaderSize)
	if _, err := f.ReadAt(b, blk*1024); err != nil {
		t.Fatal(err)
	}
	h, err := layout.DecodeXattrHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Magic != layout.XattrMagic {
		t.Fatalf("block %d: magic %#x, not an xattr block", blk, h.Magic)
	}
	return h.Refcount
}

// blockInUse asks debugfs whether blk is marked in use.
func blockInUse(t *testing.T, image string, blk int64) bool {
	t.Helper()
	out, errOut := oracle.DebugfsOutput(t, image, "testb "+strconv.FormatInt(blk, 10))
	out += errOut
	switch {
	case strings.Contains(out, "not in use"):
		return false
	case strings.Contains(out, "marked in use"):
		return true
	}
	t.Fatalf("debugfs testb %d: %s", blk, out)
	return false
}

// changeImage mounts image read-write, runs fn and unmounts.
func changeImage(t *testing.T, image string, fn func(fs *FS, root *Inode)) {
	t.Helper()
	dev := openDev(t, image, false)
	fs, err := Mount(dev, Options{Name: image, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	fn(fs, root)
	fs.Iput(root)
	if err := fs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestXattrBlockRelease checks that truncating and unlinking files never
// damage an extended attribute block: truncate keeps it, unlink lowers
// h_refcount and frees the block only at zero, and e2fsck agrees at every
// step (it checks the refcount against the inodes that name the block, and
// i_blocks, which counts the block).
func TestXattrBlockRelease(t *testing.T) {
	t.Run("own block", func(t *testing.T) {
		image := xattrImage(t, 128, map[string][]byte{"user.a": []byte("hello")})
		blk := xattrBlockOf(t, image, "/f")
		if blk == 0 {
			t.Fatal("debugfs ea_set made no xattr block")
		}
		changeImage(t, image, func(fs *FS, root *Inode) {
			f, err := fs.Lookup("/f")
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Iput(f)
			if err := fs.Truncate(f, 100); err != nil {
				t.Fatalf("Truncate: %v", err)
			}
			if err := fs.Truncate(f, 0); err != nil {
				t.Fatalf("Truncate: %v", err)
			}
			checkXattrs(t, fs, f, map[string][]byte{"user.a": []byte("hello")})
		})
		oracle.RequireClean(t, image)
		if !blockInUse(t, image, blk) || xattrRefcount(t, image, blk) != 1 {
			t.Fatalf("after truncate: xattr block %d freed or its refcount changed", blk)
		}
		changeImage(t, image, func(fs *FS, root *Inode) {
			if err := fs.Unlink(root, "f"); err != nil {
				t.Fatalf("Unlink: %v", err)
			}
		})
		oracle.RequireClean(t, image)
		if blockInUse(t, image, blk) {
			t.Errorf("after unlink: xattr block %d still in use", blk)
		}
	})
	t.Run("shared block", func(t *testing.T) {
		oracle.Tool(t, "setfattr")
		image := makeImage(t, 1024, 128, 8<<20, "")
		mnt := oracle.LoopMount(t, image, false)
		for _, f := range []string{"s1", "s2", "s3"} {
			p := filepath.Join(mnt, f)
			if err := os.WriteFile(p, pattern(3, 3000), 0o644); err != nil {
				t.Fatal(err)
			}
			runTool(t, "setfattr", "-n", "user.same", "-v", "value", p)
		}
		oracle.Umount(t, mnt)
		blk := xattrBlockOf(t, image, "/s1")
		for _, f := range []string{"/s2", "/s3"} {
			if b := xattrBlockOf(t, image, f); b != blk {
				t.Skipf("the kernel did not share the xattr block (%s: %d, /s1: %d)", f, b, blk)
			}
		}
		if got := xattrRefcount(t, image, blk); got != 3 {
			t.Fatalf("h_refcount: got %d, want 3", got)
		}
		for i, name := range []string{"s1", "s2", "s3"} {
			changeImage(t, image, func(fs *FS, root *Inode) {
				if name == "s2" {
					// Truncating a sharer leaves the block alone.
					s2, err := fs.Lookup("/s2")
					if err != nil {
						t.Fatal(err)
					}
					if err := fs.Truncate(s2, 0); err != nil {
						t.Fatalf("Truncate: %v", err)
					}
					fs.Iput(s2)
				}
				if err := fs.Unlink(root, name); err != nil {
					t.Fatalf("Unlink(%s): %v", name, err)
				}
				for _, left := range []string{"s1", "s2", "s3"}[i+1:] {
					ino, err := fs.Lookup("/" + left)
					if err != nil {
						t.Fatal(err)
					}
					checkXattrs(t, fs, ino, map[string][]byte{"user.same": []byte("value")})
					fs.Iput(ino)
				}
			})
			oracle.RequireClean(t, image)
			if left := 2 - i; left > 0 {
				if got := xattrRefcount(t, image, blk); got != uint32(left) {
					t.Errorf("after unlinking %s: h_refcount got %d, want %d", name, got, left)
				}
			} else if blockInUse(t, image, blk) {
				t.Errorf("after unlinking the last sharer: block %d still in use", blk)
			}
		}
	})
}

// TestXattrOnFastSymlink reads the attribute block of a fast symlink
// (made by debugfs), whose i_blocks counts only that block: the target
// must still come from i_block.
func TestXattrOnFastSymlink(t *testing.T) {
	image := makeImage(t, 1024, 128, 8<<20, "")
	debugfsWrite(t, image, "write /dev/null f", "symlink l /f", "ea_set l user.onlink L")
	fs := mountImage(t, image, Options{ReadOnly: true})
	l := lookupT(t, fs, "/l")
	if l.Stat().FileACL == 0 {
		t.Fatal("debugfs ea_set gave the symlink no xattr block")
	}
	if target, err := fs.ReadLink(l); err != nil || target != "/f" {
		t.Errorf("ReadLink: got %q, %v, want /f", target, err)
	}
	checkXattrs(t, fs, l, map[string][]byte{"user.onlink": []byte("L")})
}

func FuzzACLToXattr(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 1, 0, 6, 0, 2, 0, 6, 0, 0xe8, 3, 0, 0, 4, 0, 4, 0, 0x10, 0, 6, 0, 0x20, 0, 4, 0})
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, disk []byte) {
		out, err := aclToXattr(disk)
		if err != nil {
			if out != nil || !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("got %x, %v: want nil and an EINVAL error", out, err)
			}
			return
		}
		if out == nil {
			if ext2ACLCount(len(disk)) != 0 {
				t.Fatalf("no ACL from %d bytes holding %d entries", len(disk), ext2ACLCount(len(disk)))
			}
			return
		}
		if want := 4 + 8*ext2ACLCount(len(disk)); len(out) != want || binary.LittleEndian.Uint32(out) != posixACLXattrVer {
			t.Fatalf("got %d bytes, version %d; want %d bytes, version 2", len(out), binary.LittleEndian.Uint32(out), want)
		}
	})
}
