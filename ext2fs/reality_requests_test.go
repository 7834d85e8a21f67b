package ext2fs_test

// Device requests against the kernel's: the number of calls our stack
// makes to the device for a sequential copy in and a cold sequential
// read, beside the requests the kernel's driver sends to a loop device
// for the same work (/sys/block/loopN/stat), and the shape of our
// request stream.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/ext2fs"
	"github.com/mpagefs/mpage/internal/oracle"
)

// chunkData returns the i'th MiB of the big file of the request tests.
func chunkData(i int) []byte { return pseudoRandom(0xb16f11e^uint64(i)<<20, 1<<20) }

// attachLoop attaches image to a free loop device (losetup, without
// autoclear, so that its counters can be read after an unmount) and
// detaches it at cleanup.
func attachLoop(t *testing.T, image string) string {
	t.Helper()
	dev := strings.TrimSpace(realityRun(t, "losetup", "--find", "--show", image))
	if !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("losetup printed %q, want a loop device", dev)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

// mountLoop mounts the loop device dev with the kernel's ext2 driver and
// returns the mount point and a function that unmounts it (also called
// at cleanup if the test did not).
func mountLoop(t *testing.T, dev, opts string) (dir string, umount func()) {
	t.Helper()
	dir = t.TempDir()
	realityRun(t, "mount", "-t", "ext2", "-o", opts, dev, dir)
	var once sync.Once
	umount = func() {
		once.Do(func() {
			var out []byte
			var err error
			for range 50 { // "target is busy" while a file is still open
				if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		})
	}
	t.Cleanup(umount)
	return dir, umount
}

// loopStat reads /sys/block/loopN/stat of the loop device dev.
func loopStat(t *testing.T, dev string) oracle.BlockStat {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "stat"))
	if err != nil {
		t.Skipf("cannot read the loop device's counters: %v", err)
	}
	s, err := oracle.ParseBlockStat(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sysfsValue reads a queue attribute of the loop device dev, for the log.
func sysfsValue(dev, attr string) string {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "queue", attr))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// perMiB is n per MiB of size bytes.
func perMiB(n int64, size int64) float64 { return float64(n) / float64(size>>20) }

// TestRealityRequestsVsKernel is the headline comparison: a file of
// pseudo-random content (256 MiB; 64 MiB with -short or -race) is copied
// into a fresh image of 4 KiB blocks through our API in 1 MiB writes,
// then read back cold, counting our device calls; the kernel's ext2
// driver does the same on an identical image through a loop device (cp
// in across mount and umount, cat out after dropping caches), counted by
// the loop device. Ours must take no more requests than the kernel's,
// both ways; the content read back must be what was written, and e2fsck
// must find the image clean.
func TestRealityRequestsVsKernel(t *testing.T) {
	requireRoot(t)
	size := int64(256 << 20)
	if testing.Short() || realityRace {
		size = 64 << 20
		t.Logf("copying %d MiB (256 MiB runs without -short and -race)", size>>20)
	}
	chunks := int(size >> 20)
	tmp := t.TempDir()
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: size + size/4 + 32<<20, BlockSize: 4096})
	kimage := filepath.Join(tmp, "kernel.img")
	realityRun(t, "cp", "--sparse=always", image, kimage)

	// Ours, writing: mount, 1 MiB writes, close (unmount).
	fsys, err := ext2fs.Open(image, ext2fs.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { fsys.Close() })
	f, err := fsys.OpenFile("big", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	start := time.Now()
	for i := range chunks {
		if _, err := f.Write(chunkData(i)); err != nil {
			t.Fatalf("Write of MiB %d: %v", i, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close of the file: %v", err)
	}
	if err := fsys.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ourWriteTime := time.Since(start)
	ow := fsys.Stats().Queue
	oracle.RequireClean(t, image)

	// Ours, reading cold: a fresh FS on a device whose host page cache
	// was dropped.
	dev, err := block.OpenFile(image, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.DropCache(); err != nil {
		t.Logf("DropCache: %v (the read is not cold for the host; counts are unaffected)", err)
	}
	rfs, err := ext2fs.OpenDevice(dev, ext2fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("OpenDevice: %v", err)
	}
	t.Cleanup(func() { rfs.Close() })
	before := rfs.Stats().Queue
	start = time.Now()
	rf, err := rfs.OpenFile("big", os.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	buf := make([]byte, 1<<20)
	for i := range chunks {
		if _, err := io.ReadFull(rf, buf); err != nil {
			t.Fatalf("Read of MiB %d: %v", i, err)
		}
		if !bytes.Equal(buf, chunkData(i)) {
			t.Fatalf("MiB %d read back differs from what was written", i)
		}
	}
	if n, err := rf.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read at end of file = %d, %v; want 0, EOF", n, err)
	}
	rf.Close()
	ourReadTime := time.Since(start)
	or := rfs.Stats().Queue
	or.ReadCalls -= before.ReadCalls
	or.BytesRead -= before.BytesRead
	or.ReadBios -= before.ReadBios
	or.Merges -= before.Merges
	if err := rfs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// The kernel: the same file from the host, cp in, umount; then cat
	// out cold.
	host := filepath.Join(tmp, "big")
	hf, err := os.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	for i := range chunks {
		if _, err := hf.Write(chunkData(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := hf.Close(); err != nil {
		t.Fatal(err)
	}
	loop := attachLoop(t, kimage)
	k0 := loopStat(t, loop)
	start = time.Now()
	mnt, umount := mountLoop(t, loop, "rw")
	realityRun(t, "cp", host, filepath.Join(mnt, "big"))
	umount()
	kernelWriteTime := time.Since(start)
	kw := loopStat(t, loop).Sub(k0)

	mnt, umount = mountLoop(t, loop, "ro")
	oracle.DropCaches(t)
	k1 := loopStat(t, loop)
	start = time.Now()
	realityRun(t, "sh", "-c", "cat "+strconv.Quote(filepath.Join(mnt, "big"))+" > /dev/null")
	kernelReadTime := time.Since(start)
	kr := loopStat(t, loop).Sub(k1)
	umount()

	t.Logf("%d MiB file, 4 KiB blocks; the kernel's driver here: %s; loop device max_sectors_kb %s, read_ahead_kb %s",
		size>>20, kernelDriver(), sysfsValue(loop, "max_sectors_kb"), sysfsValue(loop, "read_ahead_kb"))
	t.Logf("%-8s %-6s %9s %10s %12s %12s %9s", "who", "op", "requests", "per MiB", "KiB/request", "largest KiB", "time")
	t.Logf("%-8s %-6s %9d %10.2f %12.0f %12d %9v", "ours", "write", ow.WriteCalls, perMiB(ow.WriteCalls, size),
		float64(ow.BytesWritten)/1024/float64(max(ow.WriteCalls, 1)), ow.LargestRequest>>10, ourWriteTime.Round(time.Millisecond))
	t.Logf("%-8s %-6s %9d %10.2f %12.0f %12s %9v", "kernel", "write", kw.WriteIOs, perMiB(int64(kw.WriteIOs), size),
		float64(kw.WriteSectors)/2/float64(max(kw.WriteIOs, 1)), "-", kernelWriteTime.Round(time.Millisecond))
	t.Logf("%-8s %-6s %9d %10.2f %12.0f %12d %9v", "ours", "read", or.ReadCalls, perMiB(or.ReadCalls, size),
		float64(or.BytesRead)/1024/float64(max(or.ReadCalls, 1)), or.LargestRequest>>10, ourReadTime.Round(time.Millisecond))
	t.Logf("%-8s %-6s %9d %10.2f %12.0f %12s %9v", "kernel", "read", kr.ReadIOs, perMiB(int64(kr.ReadIOs), size),
		float64(kr.ReadSectors)/2/float64(max(kr.ReadIOs, 1)), "-", kernelReadTime.Round(time.Millisecond))
	t.Logf("ours: write bios %d, merges %d, flushes %d; read bios %d, merges %d", ow.WriteBios, ow.Merges, ow.Flushes, or.ReadBios, or.Merges)

	if kw.WriteIOs == 0 || kr.ReadIOs == 0 {
		t.Fatalf("the loop device counted %d writes and %d reads: the kernel's work did not reach it", kw.WriteIOs, kr.ReadIOs)
	}
	if ow.WriteCalls > int64(kw.WriteIOs) {
		t.Errorf("writing: %d device calls (%.2f per MiB), want at most the kernel's %d (%.2f per MiB)",
			ow.WriteCalls, perMiB(ow.WriteCalls, size), kw.WriteIOs, perMiB(int64(kw.WriteIOs), size))
	}
	if or.ReadCalls > int64(kr.ReadIOs) {
		t.Errorf("reading cold: %d device calls (%.2f per MiB), want at most the kernel's %d (%.2f per MiB)",
			or.ReadCalls, perMiB(or.ReadCalls, size), kr.ReadIOs, perMiB(int64(kr.ReadIOs), size))
	}
	if got, want := ow.BytesWritten, size; got < want {
		t.Errorf("wrote %d bytes to the device, want at least the file's %d", got, want)
	}
}

// kernelDriver says which kernel driver mounts ext2 here: "ext2", or
// "ext4 (CONFIG_EXT4_USE_FOR_EXT2)" when the ext4 driver serves ext2.
func kernelDriver() string {
	if _, err := os.Stat("/sys/module/ext2"); err == nil {
		return "ext2"
	}
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && strings.Contains(string(b), "ext4") {
		return "ext4 (CONFIG_EXT4_USE_FOR_EXT2: the ext4 driver serves ext2)"
	}
	return "ext2"
}

// debugfsExtent is one range of a debugfs "BLOCKS:" list: data blocks
// of the file or one of its indirect blocks.
type debugfsExtent struct {
	label       string // "0-11", "IND", "DIND", "TIND"
	first, last int64  // physical blocks
}

// parseDebugfsBlocks parses debugfs's BLOCKS list, e.g.
// "(0-11):1234-1245, (IND):1246, (12-1035):1247-2270".
func parseDebugfsBlocks(s string) ([]debugfsExtent, error) {
	var out []debugfsExtent
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" || strings.HasPrefix(part, "(TOTAL)") {
			continue
		}
		label, phys, ok := strings.Cut(part, "):")
		if !ok || !strings.HasPrefix(label, "(") {
			return nil, fmt.Errorf("cannot parse %q", part)
		}
		a, b, found := strings.Cut(phys, "-")
		first, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cannot parse %q: %v", part, err)
		}
		last := first
		if found {
			if last, err = strconv.ParseInt(b, 10, 64); err != nil {
				return nil, fmt.Errorf("cannot parse %q: %v", part, err)
			}
		}
		out = append(out, debugfsExtent{label[1:], first, last})
	}
	return out, nil
}

// TestRealityColdReadRequestStream reads a contiguous file of 32 MiB
// (16 MiB under -race) with 4 KiB blocks, laid out by mke2fs -d (data,
// then each indirect block just before the data it maps), cold through
// our API and checks the device
// request stream: large requests, every block of the file read exactly
// once, and the reads in on-disk order, so each indirect block is read
// between the data before it and the data it maps, with no seek back.
func TestRealityColdReadRequestStream(t *testing.T) {
	const bs = 4096
	size := 32 << 20
	if realityRace {
		size = 16 << 20 // still five indirect blocks
	}
	src := t.TempDir()
	var want []byte
	for i := range size >> 20 {
		want = append(want, chunkData(i)...)
	}
	if err := os.WriteFile(filepath.Join(src, "contig"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 64 << 20, BlockSize: bs, FromDir: src})
	st := oracle.DebugfsStat(t, image, "/contig")
	extents, err := parseDebugfsBlocks(st.Blocks)
	if err != nil {
		t.Fatalf("debugfs BLOCKS %q: %v", st.Blocks, err)
	}
	var indirect int
	for i, e := range extents {
		if i > 0 && e.first != extents[i-1].last+1 {
			t.Fatalf("mke2fs did not lay the file out contiguously: %s", st.Blocks)
		}
		if strings.HasSuffix(e.label, "IND") {
			indirect++
		}
	}
	if indirect < 2 {
		t.Fatalf("the file has %d indirect blocks, want a double-indirect range: %s", indirect, st.Blocks)
	}
	lo, hi := extents[0].first*bs, (extents[len(extents)-1].last+1)*bs // the file's bytes on disk

	dev, err := block.OpenFile(image, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.DropCache(); err != nil {
		t.Logf("DropCache: %v", err)
	}
	fsys, err := ext2fs.OpenDevice(dev, ext2fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("OpenDevice: %v", err)
	}
	defer fsys.Close()
	var (
		mu    sync.Mutex
		trace []block.Request
	)
	// No I/O is in flight on a read-only mount once it returns; the
	// trace sees every request of the read.
	fsys.Ext2().Queue().SetTrace(func(r block.Request) {
		mu.Lock()
		trace = append(trace, r)
		mu.Unlock()
	})
	got, err := fsys.ReadFile("contig")
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("contents read back differ from the file given to mke2fs")
	}
	mu.Lock()
	reqs := trace
	mu.Unlock()

	var (
		inFile       []block.Request
		bytesRead    int64
		largest      int
		large        int // requests of 1 MiB or more
		shape        []string
		outside, wrt int
	)
	for _, r := range reqs {
		off := r.Sector * 512
		switch {
		case r.Op != block.Read:
			wrt++
		case off >= lo && off+int64(r.Bytes) <= hi:
			inFile = append(inFile, r)
			bytesRead += int64(r.Bytes)
			largest = max(largest, r.Bytes)
			if r.Bytes >= 1<<20 {
				large++
			}
			shape = append(shape, fmt.Sprintf("%d+%dK", (off-lo)/bs, r.Bytes>>10))
		case off < hi && off+int64(r.Bytes) > lo:
			t.Errorf("a read of %d bytes at block %d straddles the file's edge (blocks %d-%d)", r.Bytes, off/bs, lo/bs, hi/bs-1)
		default:
			outside++ // the inode table
		}
	}
	t.Logf("%d requests in the file's %d blocks (%d indirect), %d outside it; largest %d KiB, %d of 1 MiB or more; stream (block offset in the file's area + size): %s",
		len(inFile), (hi-lo)/bs, indirect, outside, largest>>10, large, strings.Join(shape, " "))
	if wrt != 0 {
		t.Errorf("%d writes during a read-only read", wrt)
	}
	for i := 1; i < len(inFile); i++ {
		prevEnd := inFile[i-1].Sector*512 + int64(inFile[i-1].Bytes)
		if off := inFile[i].Sector * 512; off < prevEnd {
			t.Errorf("request %d reads block %d after request %d ended at block %d: not in on-disk order", i, off/bs, i-1, prevEnd/bs)
		}
	}
	if bytesRead != hi-lo {
		t.Errorf("read %d bytes of the file's blocks, want each of its %d bytes exactly once", bytesRead, hi-lo)
	}
	for _, e := range extents {
		if !strings.HasSuffix(e.label, "IND") {
			continue
		}
		found := false
		for _, r := range inFile {
			if r.Sector*512 <= e.first*bs && e.first*bs < r.Sector*512+int64(r.Bytes) {
				found = true
			}
		}
		if !found {
			t.Errorf("the %s block %d was not read by a device request", e.label, e.first)
		}
	}
	// A 4 KiB indirect block maps 4 MiB: between two of them the data
	// can move in requests of a megabyte and more.
	if largest < 1<<20 || large < (size>>20)/4/2 {
		t.Errorf("largest request %d KiB, %d requests of 1 MiB or more; want requests of at least 1 MiB for at least half of the 4 MiB runs (%d)",
			largest>>10, large, (size>>20)/4/2)
	}
}
