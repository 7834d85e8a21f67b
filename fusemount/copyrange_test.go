package fusemount

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// copyRequests is how many COPY_FILE_RANGE requests the mount served.
func (m *mounted) copyRequests() int64 { return m.srv.m.copyCounters().requests.Load() }

// cfr calls copy_file_range(2) with explicit offsets.
func crCopy(src *os.File, offIn int64, dst *os.File, offOut int64, n int) (int, error) {
	return unix.CopyFileRange(int(src.Fd()), &offIn, int(dst.Fd()), &offOut, n, 0)
}

func crRand(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// crModel is what copy_file_range leaves in dst and returns, as
// Linux defines it: the source range cut at its end of file, the
// destination extended (with zeroes in any gap) when the copy goes past
// its end.
func crModel(src []byte, offIn int64, dst []byte, offOut int64, n int) ([]byte, int) {
	if offIn >= int64(len(src)) {
		return dst, 0
	}
	n = min(n, len(src)-int(offIn))
	out := append([]byte(nil), dst...)
	if end := int(offOut) + n; end > len(out) {
		out = append(out, make([]byte, end-len(out))...)
	}
	copy(out[offOut:], src[offIn:int(offIn)+n])
	return out, n
}

// crFiles are descriptors a test opened, closed before it unmounts.
type crFiles []*os.File

func (fs *crFiles) close() {
	for _, f := range *fs {
		f.Close()
	}
}

// crOpen opens path for reading and writing, created with content
// first when content is not nil; fs collects the descriptor.
func crOpen(t *testing.T, fs *crFiles, path string, content []byte) *os.File {
	t.Helper()
	if content != nil {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	*fs = append(*fs, f)
	t.Cleanup(func() { f.Close() })
	return f
}

// crCheck wants path to hold want, read through f (a descriptor
// open since before the copy) and through a fresh open.
func crCheck(t *testing.T, f *os.File, path string, want []byte) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(want)) {
		t.Errorf("%s: size through the open descriptor: got %d, want %d", path, st.Size, len(want))
	}
	got := make([]byte, len(want)+10)
	n, err := f.ReadAt(got, 0)
	if err != nil && n != len(want) {
		t.Fatalf("%s: pread: %d bytes, %v", path, n, err)
	}
	if !bytes.Equal(got[:n], want) {
		t.Errorf("%s: content through the open descriptor differs (%d bytes read, want %d; first difference at %d)", path, n, len(want), crFirstDiff(got[:n], want))
	}
	fresh, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, want) {
		t.Errorf("%s: content after a fresh open differs (%d bytes, want %d; first difference at %d)", path, len(fresh), len(want), crFirstDiff(fresh, want))
	}
}

func crFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestCopyFileRange copies ranges between files of the mount with
// copy_file_range(2) and checks the count and both files, byte for
// byte, through the descriptors used and after a fresh open; the
// requests must reach our handler (not be split by the kernel into
// READs and WRITEs). The image is clean after unmount.
func TestCopyFileRange(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 64 << 20})
	m := mountImage(t, image, Options{})
	cases := []struct {
		name           string
		src, dst       []byte // dst nil: a new, empty file
		offIn, offOut  int64
		n              int
		sameFile       bool
		wantErr        syscall.Errno
		wantNoRequests bool // the kernel answers without asking us
	}{
		{name: "whole-file-into-new", src: crRand(1, 3<<20+17), n: 3<<20 + 17},
		{name: "middle-into-existing", src: crRand(2, 1<<20+123), dst: crRand(3, 2<<20), offIn: 4097, offOut: 100000, n: 700001},
		{name: "unaligned-crossing-chunks", src: crRand(4, 5<<20), dst: crRand(5, 100), offIn: 1, offOut: 3, n: 4<<20 + 5},
		{name: "at-source-eof", src: crRand(6, 5000), dst: crRand(7, 10), offIn: 5000, n: 100, wantNoRequests: true},
		{name: "past-source-eof", src: crRand(8, 5000), dst: crRand(9, 10), offIn: 9000, n: 100, wantNoRequests: true},
		{name: "short-source", src: crRand(10, 5000), dst: crRand(11, 10), offIn: 4000, n: 10000},
		{name: "extending-past-a-gap", src: crRand(12, 2<<20+5), dst: crRand(13, 3000), offOut: 10000, n: 2<<20 + 5},
		{name: "same-file-non-overlapping", src: crRand(14, 1<<20), sameFile: true, offIn: 0, offOut: 500000, n: 100000},
		{name: "same-file-appending-itself", src: crRand(15, 300000), sameFile: true, offIn: 0, offOut: 300000, n: 300000},
		{name: "same-file-overlapping", src: crRand(16, 1<<20), sameFile: true, offIn: 0, offOut: 50000, n: 100000, wantErr: syscall.EINVAL, wantNoRequests: true},
		{name: "same-file-overlapping-backwards", src: crRand(17, 1<<20), sameFile: true, offIn: 50000, offOut: 0, n: 100000, wantErr: syscall.EINVAL, wantNoRequests: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var open crFiles
			defer open.close()
			srcPath := m.path(tc.name + ".src")
			src := crOpen(t, &open, srcPath, tc.src)
			dst, dstPath, dstBefore := src, srcPath, tc.src
			if !tc.sameFile {
				dstPath = m.path(tc.name + ".dst")
				if tc.dst != nil {
					dst = crOpen(t, &open, dstPath, tc.dst)
				} else {
					dst = crOpen(t, &open, dstPath, nil)
				}
				dstBefore = tc.dst
			}
			old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := os.Chtimes(dstPath, old, old); err != nil {
				t.Fatal(err)
			}
			before := m.copyRequests()
			n, err := crCopy(src, tc.offIn, dst, tc.offOut, tc.n)
			requests := m.copyRequests() - before
			if tc.wantErr != 0 {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("copy_file_range: got %d, %v; want %v", n, err, tc.wantErr)
				}
				crCheck(t, dst, dstPath, dstBefore)
				return
			}
			if err != nil {
				t.Fatalf("copy_file_range: %v", err)
			}
			want, wantN := crModel(tc.src, tc.offIn, dstBefore, tc.offOut, tc.n)
			if n != wantN {
				t.Errorf("copy_file_range returned %d, want %d", n, wantN)
			}
			crCheck(t, dst, dstPath, want)
			if !tc.sameFile {
				crCheck(t, src, srcPath, tc.src)
			}
			if tc.wantNoRequests {
				if requests != 0 {
					t.Errorf("COPY_FILE_RANGE requests: got %d, want 0 (the kernel answers itself)", requests)
				}
			} else if requests == 0 {
				t.Errorf("no COPY_FILE_RANGE request reached the mount: the kernel copied through READ and WRITE")
			}
			var st syscall.Stat_t
			if err := syscall.Stat(dstPath, &st); err != nil {
				t.Fatal(err)
			}
			changed := wantN > 0
			if gotChanged := st.Mtim.Sec != old.Unix(); gotChanged != changed {
				t.Errorf("destination mtime %v after copying %d bytes; want changed from %v: %v", time.Unix(st.Mtim.Unix()), wantN, old, changed)
			}
		})
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// TestCopyFileRangeCp copies a multi-MiB file of random bytes inside the
// mount with cp, which uses copy_file_range, and a sparse file (a hole
// in the middle and at the end), whose holes cp finds with SEEK_DATA and
// SEEK_HOLE and our copy keeps; the copies hash the same after unmount
// and a fresh mount, and e2fsck finds the image clean.
func TestCopyFileRangeCp(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 64 << 20})
	m := mountImage(t, image, Options{})
	var open crFiles
	data := crRand(20, 9<<20+4321)
	if err := os.WriteFile(m.path("big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// A sparse file: 1 MiB, a 6 MiB hole, 1 MiB + 5, and a 3 MiB hole
	// at the end.
	sparse := make([]byte, 11<<20+5)
	copy(sparse, crRand(21, 1<<20))
	copy(sparse[7<<20:], crRand(22, 1<<20+5))
	f := crOpen(t, &open, m.path("sparse"), nil)
	if _, err := f.WriteAt(sparse[:1<<20], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(sparse[7<<20:8<<20+5], 7<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(sparse))); err != nil {
		t.Fatal(err)
	}
	f.Close()

	before := m.copyRequests()
	run(t, "cp", m.path("big"), m.path("big.copy"))
	run(t, "cp", m.path("sparse"), m.path("sparse.copy"))
	if m.copyRequests() == before {
		t.Errorf("cp sent no COPY_FILE_RANGE request to the mount")
	}
	// Copy the sparse file whole with one copy_file_range too (cp
	// copies only its data runs and truncates): the holes in the source
	// must stay holes in the new file, also the one at its end.
	src := crOpen(t, &open, m.path("sparse"), nil)
	dst := crOpen(t, &open, m.path("sparse.cfr"), []byte{})
	if n, err := crCopy(src, 0, dst, 0, len(sparse)); err != nil || n != len(sparse) {
		t.Fatalf("copy_file_range of the sparse file: %d, %v; want %d", n, err, len(sparse))
	}
	crCheck(t, dst, m.path("sparse.cfr"), sparse)
	for _, name := range []string{"sparse.copy", "sparse.cfr"} {
		var st syscall.Stat_t
		if err := syscall.Stat(m.path(name), &st); err != nil {
			t.Fatal(err)
		}
		// 2 MiB + 5 of data and a block map; not the 11 MiB of the size.
		if used := st.Blocks * 512; used > 3<<20 {
			t.Errorf("%s: %d bytes allocated for %d bytes of data in %d: the holes were filled", name, used, 2<<20+5, len(sparse))
		}
		g, err := os.Open(m.path(name))
		if err != nil {
			t.Fatal(err)
		}
		hole, err := g.Seek(0, unix.SEEK_HOLE)
		g.Close()
		if err != nil || hole != 1<<20 {
			t.Errorf("%s: SEEK_HOLE from 0: got %d, %v; want %d", name, hole, err, 1<<20)
		}
	}
	open.close()
	m.unmount(t)
	oracle.RequireClean(t, image)

	m = mountImage(t, image, Options{ReadOnly: true})
	for name, want := range map[string][]byte{"big.copy": data, "sparse.copy": sparse, "sparse.cfr": sparse} {
		got, err := os.ReadFile(m.path(name))
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("%s: SHA-256 after remount differs from the source's (%d bytes, want %d)", name, len(got), len(want))
		}
	}
}

// TestCopyFileRangeNoSpace copies into a filesystem until it is full:
// the copy that meets the end returns the bytes it copied, the next one
// ENOSPC, and what was copied is intact.
func TestCopyFileRangeNoSpace(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{})
	var open crFiles
	data := crRand(30, 1000003)
	src := crOpen(t, &open, m.path("src"), data)
	dst := crOpen(t, &open, m.path("dst"), nil)
	var total int64
	short := false
	var err error
	for i := 0; i < 100; i++ {
		var n int
		n, err = crCopy(src, 0, dst, total, len(data))
		if err != nil {
			break
		}
		if n == 0 {
			t.Fatalf("copy_file_range at %d returned 0 without an error", total)
		}
		if n < len(data) {
			short = true
		}
		total += int64(n)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("copying until the filesystem is full: got %v after %d bytes, want ENOSPC", err, total)
	}
	if !short {
		t.Errorf("no copy returned a short count before ENOSPC (copied %d bytes in copies of %d)", total, len(data))
	}
	want := make([]byte, total)
	for off := int64(0); off < total; off += int64(len(data)) {
		copy(want[off:], data)
	}
	crCheck(t, dst, m.path("dst"), want)
	open.close()
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// TestCopyFileRangeReadOnly: on a read-only mount no file opens for
// writing (EROFS, from the kernel), so no copy can target it; our
// handler answers EROFS as well should a request come.
func TestCopyFileRangeReadOnly(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{})
	data := crRand(40, 100000)
	if err := os.WriteFile(m.path("f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	m.unmount(t)
	m = mountImage(t, image, Options{ReadOnly: true})
	if _, err := os.OpenFile(m.path("f"), os.O_RDWR, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("opening a file for writing on a read-only mount: got %v, want EROFS", err)
	}
	f, err := m.fsys.Ext2().OpenInode(crInode(t, m.path("f")), false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := &handle{m: m.srv.m, f: f}
	n := &node{m: m.srv.m}
	if got, e := n.CopyFileRange(t.Context(), h, 0, nil, h, 50000, 1000, 0); e != syscall.EROFS {
		t.Errorf("CopyFileRange on a read-only mount: got %d, %v; want EROFS", got, e)
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}

func crInode(t *testing.T, path string) uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// crCopyNoFsetid runs copy_file_range on a thread of its own whose
// effective capabilities lack CAP_FSETID (capabilities are per thread),
// as an unprivileged writer's would; the thread is discarded after.
func crCopyNoFsetid(src *os.File, offIn int64, dst *os.File, offOut int64, n int) (int, error) {
	type result struct {
		n   int
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- result{0, err}
			return
		}
		data[0].Effective &^= 1 << unix.CAP_FSETID
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- result{0, err}
			return
		}
		c, err := crCopy(src, offIn, dst, offOut, n)
		done <- result{c, err}
	}()
	r := <-done
	return r.n, r.err
}

// TestCopyFileRangeKillsSetID copies into set-user-ID and set-group-ID
// files, by a caller with CAP_FSETID and by one without, on the mount
// and on the kernel's ext2 (a loop mount), and wants the same modes
// left, also the mode the kernel caches.
func TestCopyFileRangeKillsSetID(t *testing.T) {
	requireFuse(t)
	type kcase struct {
		name     string
		mode     os.FileMode
		noFsetid bool
	}
	cases := []kcase{
		{"both-by-privileged", 0o777 | os.ModeSetuid | os.ModeSetgid, false},
		{"both-by-unprivileged", 0o777 | os.ModeSetuid | os.ModeSetgid, true},
		{"sgid-no-gx-by-unprivileged", 0o767 | os.ModeSetgid, true},
	}
	modes := func(t *testing.T, dir string) map[string]string {
		var open crFiles
		defer open.close()
		got := map[string]string{}
		data := crRand(50, 70000)
		src := crOpen(t, &open, filepath.Join(dir, "src"), data)
		for _, c := range cases {
			p := filepath.Join(dir, c.name)
			dst := crOpen(t, &open, p, []byte("content\n"))
			if err := os.Chmod(p, c.mode); err != nil {
				t.Fatal(err)
			}
			var n int
			var err error
			if c.noFsetid {
				n, err = crCopyNoFsetid(src, 0, dst, 4, len(data))
			} else {
				n, err = crCopy(src, 0, dst, 4, len(data))
			}
			if err != nil || n != len(data) {
				t.Fatalf("%s: copy_file_range: %d, %v; want %d", c.name, n, err, len(data))
			}
			if err := unix.Access(p, unix.R_OK); err != nil {
				t.Fatal(err)
			}
			var stx unix.Statx_t
			if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_STATX_DONT_SYNC, unix.STATX_MODE, &stx); err != nil {
				t.Fatal(err)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			got[c.name] = fmt.Sprintf("mode %04o (cached %04o)", st.Mode&0o7777, stx.Mode&0o7777)
		}
		return got
	}
	want := modes(t, oracle.LoopMount(t, oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20}), false))
	if w := want["both-by-unprivileged"]; w != "mode 0777 (cached 0777)" {
		t.Fatalf("kernel ext2: copy into a set-ID file without CAP_FSETID left %s; want mode 0777: the test cannot drop the capability", w)
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{})
	before := m.copyRequests()
	got := modes(t, m.dir)
	if m.copyRequests()-before < int64(len(cases)) {
		t.Errorf("COPY_FILE_RANGE requests: got %d, want %d", m.copyRequests()-before, len(cases))
	}
	for _, c := range cases {
		if got[c.name] != want[c.name] {
			t.Errorf("%s: got %s, want %s (kernel ext2)", c.name, got[c.name], want[c.name])
		}
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}
