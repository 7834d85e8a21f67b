package fusemount

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/mpagefs/mpage/ext2fs"
	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// randomBytes returns n bytes from a generator seeded with seed.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// TestReopenedFileReadFromKernelCache reads a file, closes it and reads
// it again through a new descriptor: the second read is served from the
// kernel's cache of the file (FOPEN_KEEP_CACHE), with no READ reaching
// us, and returns the same bytes.
func TestReopenedFileReadFromKernelCache(t *testing.T) {
	requireFuse(t)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 64 << 20})
	m := mountImage(t, image, Options{})
	data := randomBytes(8<<20, 1)
	if err := os.WriteFile(m.path("f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	reads := func() int64 { return m.srv.m.reads.Load() }
	for i, want := range []string{"first", "second"} {
		before := reads()
		got, err := os.ReadFile(m.path("f"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s read: the bytes differ from those written", want)
		}
		n := reads() - before
		t.Logf("%s read: %d READ requests", want, n)
		if i == 1 && n != 0 {
			t.Errorf("reading the file again after closing it: %d READ requests reached the server, want 0 (the kernel keeps its cache)", n)
		}
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// TestKeptCacheSeesEveryChange caches a file in the kernel (it is read
// in full), changes it through the mount in each way a program can, and
// reads it through a new descriptor: the bytes must be the new ones,
// which also the image holds once unmounted. The kernel keeps a file's
// cached pages across opens only because every change to the image comes
// through its own requests; each case here is one such request.
func TestKeptCacheSeesEveryChange(t *testing.T) {
	requireFuse(t)
	const size = 1 << 20
	orig := randomBytes(size, 2)
	patch := patchBytes()
	type change struct {
		name   string
		closed bool                                        // the reader's descriptor is closed before the change
		do     func(t *testing.T, m *mounted, path string) // changes path
		want   func() []byte                               // the file's bytes afterwards
	}
	overwritten := func(off int) []byte {
		b := bytes.Clone(orig)
		copy(b[off:], patch)
		return b
	}
	cases := []change{
		{"pwrite through another descriptor", false, func(t *testing.T, m *mounted, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(patch, 123457); err != nil {
				t.Fatal(err)
			}
		}, func() []byte { return overwritten(123457) }},
		{"write by another process", false, func(t *testing.T, m *mounted, path string) {
			p := filepath.Join(t.TempDir(), "patch")
			if err := os.WriteFile(p, patch, 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "dd", "if="+p, "of="+path, "bs=1", "seek=4095", "conv=notrunc", "status=none")
		}, func() []byte { return overwritten(4095) }},
		{"truncate shorter then extend", false, func(t *testing.T, m *mounted, path string) {
			if err := os.Truncate(path, 5000); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, size); err != nil {
				t.Fatal(err)
			}
		}, func() []byte {
			b := make([]byte, size)
			copy(b, orig[:5000])
			return b
		}},
		{"open with O_TRUNC and write", false, func(t *testing.T, m *mounted, path string) {
			if err := os.WriteFile(path, patch, 0o644); err != nil {
				t.Fatal(err)
			}
		}, func() []byte { return patch }},
		{"rename another file over it", false, func(t *testing.T, m *mounted, path string) {
			other := path + ".new"
			if err := os.WriteFile(other, patch, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}, func() []byte { return patch }},
		{"unlink and create the name again", false, func(t *testing.T, m *mounted, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, patch, 0o644); err != nil {
				t.Fatal(err)
			}
		}, func() []byte { return patch }},
		{"unlink and create the name again, nothing open", true, func(t *testing.T, m *mounted, path string) {
			// The inode number is free for the new file to reuse.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, patch, 0o644); err != nil {
				t.Fatal(err)
			}
		}, func() []byte { return patch }},
		{"write through a hard link", false, func(t *testing.T, m *mounted, path string) {
			link := path + ".link"
			if err := os.Link(path, link); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(link, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(patch, 700000); err != nil {
				t.Fatal(err)
			}
		}, func() []byte { return overwritten(700000) }},
		{"store through a shared mapping", false, func(t *testing.T, m *mounted, path string) {
			// In another process: a page fault on a file this
			// process serves would block a thread the Go runtime
			// cannot stop, and a garbage collection would wait
			// for it forever.
			cmd := exec.Command(os.Args[0], "-test.run=^TestMmapStoreHelper$")
			cmd.Env = append(os.Environ(), "MPAGE_MMAP_STORE="+path)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("storing through a mapping in another process: %v\n%s", err, out)
			}
		}, func() []byte { return overwritten(mmapStoreOff) }},
		{"O_DIRECT write", false, func(t *testing.T, m *mounted, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			buf := alignedBlock(16384)
			copy(buf, patch)
			if _, err := f.WriteAt(buf, 65536); err != nil {
				t.Fatal(err)
			}
		}, func() []byte {
			b := bytes.Clone(orig)
			copy(b[65536:65536+16384], patch)
			clear(b[65536+len(patch) : 65536+16384])
			return b
		}},
	}

	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 64 << 20})
	m := mountImage(t, image, Options{})
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = "f" + string(rune('a'+i))
		path := m.path(names[i])
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			// Cache it: read it in full and keep a descriptor open
			// across the change, as a reader would.
			keep, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer keep.Close()
			if got, err := io.ReadAll(keep); err != nil || !bytes.Equal(got, orig) {
				t.Fatalf("reading the file before the change: %v (or wrong bytes)", err)
			}
			if c.closed {
				keep.Close()
			}
			c.do(t, m, path)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.want(); !bytes.Equal(got, want) {
				t.Errorf("after the change a new descriptor reads %d bytes, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
			}
		})
	}
	m.unmount(t)
	oracle.RequireClean(t, image)

	fsys, err := ext2fs.Open(image, ext2fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	for i, c := range cases {
		got, err := fsys.ReadFile(names[i])
		if err != nil {
			t.Fatalf("%s: reading %s from the image: %v", c.name, names[i], err)
		}
		if want := c.want(); !bytes.Equal(got, want) {
			t.Errorf("%s: the image holds %d bytes, want %d; first difference at %d", c.name, len(got), len(want), firstDiff(got, want))
		}
	}
}

// mmapStoreOff is where TestMmapStoreHelper stores patchBytes.
const mmapStoreOff = 8192 + 17

// TestMmapStoreHelper is not a test: run with MPAGE_MMAP_STORE set to a
// file of at least mmapStoreOff+len(patch) bytes, it stores the patch at
// mmapStoreOff through a shared mapping of the file and msyncs it.
func TestMmapStoreHelper(t *testing.T) {
	path := os.Getenv("MPAGE_MMAP_STORE")
	if path == "" {
		t.Skip("runs only as the helper process of TestKeptCacheSeesEveryChange")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	copy(mem[mmapStoreOff:], patchBytes())
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	if err := unix.Munmap(mem); err != nil {
		t.Fatal(err)
	}
}

// patchBytes is what the changes of TestKeptCacheSeesEveryChange write.
func patchBytes() []byte { return randomBytes(10000, 3) }

// firstDiff returns the first offset at which a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// alignedBlock returns n zero bytes aligned for O_DIRECT.
func alignedBlock(n int) []byte {
	raw := make([]byte, n+4096)
	off := 0
	for uintptr(unsafe.Pointer(&raw[off]))%4096 != 0 {
		off++
	}
	return raw[off : off+n]
}
