package flat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// Results of MPAGE_BENCH_SIZE=1G go test -run XXX -bench Sequential
// -benchtime=1x ./internal/flat (256 MiB cache), 2026-11-25, 2-vCPU AMD
// EPYC VM (Firecracker, Linux 6.18), shared with other jobs: load 7-10,
// CPU pressure "some" 85-93%; a lone spinning thread got 45-53% of a
// core. Raw itself varied 1.0-4.0 GB/s (write) and 0.5-1.6 GB/s (read)
// between runs, so single runs mean little; medians of 5 runs (read
// after: of 9, counting 4 runs with MPAGE_BENCH_RA=1024 on the same
// binary):
//
//	                 before (0fb8ca4)           after (90af441)
//	write MB/s       774 (535-987)              795 (617-1178)
//	write flat/raw   0.29 (0.16-0.52)           0.29 (0.15-0.44)
//	write calls/MiB  0.25                       0.25
//	read MB/s        856 (444-1325)             750 (348-1509)
//	read flat/raw    1.40 (0.88-2.07)           0.82 (0.38-2.13)
//	read calls/MiB   2.00 (128-page window)     0.25 (1024-page window)
//	peak RSS MiB     300-308 write, 293-295 read: within limit + 64
//
// Read with MPAGE_BENCH_RA=128 vs 1024 on the after binary, 4 pairs run
// alternately: 474/387/712/751 vs 743/1226/1200/1142 MB/s. Over all runs
// (128 pages: the 5 before + those 4; 1024 pages: the 9 after) the
// medians were 751 and 750 MB/s: within this noise the large window
// costs no throughput, and it cuts device calls eightfold.
//
// Pipelined readahead (pagecache ondemandLocked: two windows requested
// beyond the reader's, windows aligned to 1024-page file offsets), 5 pairs
// run alternately, 2026-11-26, load 4-5: read 1117 MB/s (661-1429) before
// (582a99d) vs 1338 MB/s (798-1449) after, 0.25 calls/MiB both, peak RSS
// 293-294 MiB. ext2, 256 MiB file, mpage cat after drop_caches, medians of
// three rounds of 5-7 alternated runs: 775/624/794 MB/s before vs
// 928/645/814 after; dd in the same rounds 1397/1263/1770 MB/s; 0.54
// device calls per MiB both (one indirect block per 4 MiB is its own call
// or ends one). A trace of the cold ext2 read showed the reader blocked
// about a third of the time in the synchronous indirect-block read inside
// a window's get_block (its bio merged into the window's first 2 MiB
// request before the alignment, into a 48 KiB one after) and the rest of
// the time CPU-bound with the device workers: each preadv into fresh cache
// memory costs the kernel page faults (0.25-0.29 s system time per 256
// MiB, against dd's 0.02 s), so on two shared cores the device calls, not
// the reader, set the pace.
//
// Why write stays far below raw here: the writer is CPU-bound and gets
// about half a core. Raw copies each byte once (pwrite into the host's
// page cache, then fdatasync). We copy twice: into a cache page (warm:
// about 6 GB/s, 0.18 s/GiB; but the first 256 MiB touch fresh arena
// memory, and a first touch costs 6-8 µs per page in this VM, 0.37-0.57 s
// for 65536 pages) and then pwritev (the same kernel copy raw makes, on an
// I/O worker), plus about 0.2 s/GiB of page bookkeeping (allocation,
// eviction, buffer heads, tags, locks). The writer's critical path, about
// 0.75-0.95 s of CPU per GiB against raw's 0.3-0.4 s, bounds flat/raw to
// about 0.4-0.5 even if pwritev overlaps perfectly on the second core,
// and to about 0.8-1.0 with warm cache memory. A probe of the write (device
// calls timed, cache state sampled every 200 µs) found the device idle
// 90-95% of the time and the writer over the dirty threshold 1-4% of it:
// not a hand-off problem. On a device slower than the writer (a memory
// device paced at 100 MB/s per call), waking a throttled writer once at a
// resume point instead of on every page event (pagecache.BalanceDirty)
// made a 512 MiB write 15-25% faster and cut its throttling rounds 3-4x.
// MADV_HUGEPAGE on the arena (2x faster first touch in isolation) and
// populating the arena from another goroutine gave no clear gain in the
// benchmark and were left out.

// 2026-11-26, idle machine (no other work running), after large aligned
// writes went through O_DIRECT (block.File) and the arena faulted frames
// in ahead of allocation: alternated pairs, direct vs buffered writes on
// the same binary, 1 GiB: 1.87-1.96 GB/s (0.75-0.77x raw buffered
// pwrite) vs 1.35-1.38 GB/s (0.53-0.55x). fio measured the disk's O_DIRECT
// writes at 2.0-2.2 GB/s at any queue depth that hour, so the write was
// within 10% of what the disk takes without the kernel's copy. Later the
// same day the disk ran faster (rawdirect 2.1-3.4 GB/s, raw buffered
// 1.0-3.3 GB/s between runs) and the write stayed at 1.7-1.9 GB/s: the
// writer is CPU-bound again (about 0.36 s of CPU per GiB on its
// goroutine: the copy 0.12, page allocation, charge and eviction 0.12,
// buffer heads and dirty marking 0.08), with flusher, completions, GC and
// prefaulting sharing the second core. Reads stayed buffered: O_DIRECT
// reads of 4 MiB requests were slower than the kernel's readahead here
// (1.26-1.42 vs 1.52-1.59 GB/s in alternated runs; page-cache frames are
// scattered 4 KiB pages, so one 4 MiB direct request is split by the
// disk's 254-segment limit). Medians of three runs at the end of that
// day: write 1.72 GB/s, 0.76x raw; read 1.54 GB/s, 1.09x raw; 0.25 calls
// per MiB; peak RSS 303 MiB (write) and 294 MiB (read), limit 256 MiB.

// 2026-11-26, later, another helper's fio and fuse2fs on the machine
// (load 3.5-5): whole-page writes in batches of 32 pages (one round of
// each lock per batch for allocation, index, LRU and dirty tagging;
// BalanceDirty once per batch), no buffer heads for whole-page writes
// (buffer.NobhWriteBegin), page waits on a hashed table of wait queues
// (Page 176 -> 112 bytes). Five alternated pairs, base (939c9c0) vs
// after (e912432): writer CPU (writerCPU-s/GiB, the writer thread's
// CLOCK_THREAD_CPUTIME_ID) 0.319 -> 0.284 s/GiB (medians; ranges
// 0.312-0.326 and 0.270-0.296); write 1819 -> 1902 MB/s (1744-1875 and
// 1680-1999), with raw buffered 2521-3184 and 994-2839 MB/s in the same
// runs (flat/raw medians 0.67 -> 0.72); 0.25 calls/MiB both; peak RSS
// 304-306 -> 283-285 MiB. A CPU profile of three 1 GiB passes after:
// the writer 0.27 s/GiB, of which the copy into pages 0.14-0.2 (memmove;
// the first pass over fresh arena memory pays page faults there), page
// allocation, charge and eviction 0.08, get_block and the rest 0.03; on
// the other goroutines the device worker's O_DIRECT pwritev 0.15, the
// flusher 0.08, arena prefaulting 0.05 (the first 256 MiB of each mount),
// GC 0.03 (was 0.08: no buffer head, smaller pages). About 0.57 s of CPU
// per GiB on two cores shared with other work: the two cores, not the
// writer alone, set the pace. Tried and dropped, no gain in alternated
// runs: eviction in batches (one mapping-lock and one Cache.mu round per
// batch), ending writeback of a bio's pages in one mapping-lock round,
// MADV_HUGEPAGE on the arena with prefaulting (one run's writer took 0.60
// s/GiB: compaction stalls on first touch). Since 83db59f the arena hands
// out freed frames first freed, first used, so each 4 MiB request's
// pages lie in adjacent frames; merging adjacent iovecs before pwritev
// (tried in block/file.go, not committed: not ours) cut the device
// worker's CPU from 0.147 to 0.09 s/GiB, 4 alternated runs 1717 -> 1874
// MB/s (medians).

// 2026-11-26 (session 5): heapB/MiB, the Go heap bytes the page-cache
// path allocates per MiB moved, 256 MiB file, before (db2ca2b) and after
// bios, their vectors and the queue's requests went back to free lists
// (bio_put), device-call scratch lists were pooled, readahead's page lists
// and do_mpage_readpage's buffer head stopped being allocated per window
// and per page: write 71.7 -> 39.7 KB/MiB, read 95.2 -> 35.3 KB/MiB. Of
// what is left, 28.7 KB/MiB are the Page structs themselves (112 bytes per
// 4 KiB). Readahead frames also stopped being zeroed (about 4% of the read
// path's CPU). Throughput on the noisy disk of that day could not tell
// the builds apart; the FUSE mount's cold sequential read, 3 alternated
// rounds: 774-785 -> 870-1029 MB/s, daemon CPU 1.44-1.47 -> 1.01-1.29 s.

// 2026-11-26 (session 6): huge pages and a warm cache. The page cache's
// arena can sit on transparent huge pages (MPAGE_BENCH_HUGE, Config.HugePages),
// and the write can be timed over a cache whose memory was faulted in by
// an untimed pass (MPAGE_BENCH_WARM), as in a long-lived process. Four
// alternated rounds of the four combinations, 1 GiB, raw buffered
// 2.2-3.2 GB/s in the same runs (flat/raw median):
//
//	                 4 KiB pages              huge pages
//	cold cache       1663-2237 MB/s (0.67)    1004-1888 MB/s (0.57)
//	warm cache       2007-2333 MB/s (0.76)    2354-2673 MB/s (1.02)
//
// With huge pages each 4 MiB request is a few physically contiguous
// segments, so the disk takes it in one piece (its limit is 254 segments)
// and the device workers' time per GiB fell from 1.34 to 0.75 s. Cold,
// the first touch of each huge page costs about 2.7 ms here, because
// this VM's balloon hands free 2 MiB blocks back to the host
// (VIRTIO_BALLOON_F_REPORTING) and every fresh huge page is 512 host
// faults; the writer then waits on them (writerCPU 0.34-0.79 s/GiB
// against 0.24-0.35). Reads, three alternated rounds (read direct:
// MPAGE_BENCH_DIRECTREAD, block.FileOptions.DirectReads): 4 KiB pages
// buffered 870-894 MB/s cold, 892-1385 warm; huge pages buffered (warm)
// 1553-1766, huge pages direct 1699-1801 warm and 1455-1689 cold; raw
// 627-1966 MB/s in the same runs. Both stay off by default: direct reads
// leave the data out of the kernel's cache, and through the FUSE mount
// 4 KiB random reads after a sequential read fell from 17.6-20k to 8k
// IOPS (see cmd/mpage's --huge-pages).

// Benchmark knobs, from the environment:
//
//	MPAGE_BENCH_SIZE  file size, bytes with an optional K, M or G suffix
//	                  (default 1G)
//	MPAGE_BENCH_CACHE page cache limit (default 256M)
//	MPAGE_BENCH_RA    largest readahead window in pages (default: the
//	                  cache's default)
//	MPAGE_BENCH_HUGE  if set, the cache's memory is on transparent huge
//	                  pages (pagecache.Config.HugePages)
//	MPAGE_BENCH_WARM  if set, each benchmark first writes or reads as
//	                  much as the cache holds, untimed, so that the timed
//	                  pass finds the cache's memory faulted in, as in a
//	                  long-lived process (the read then drops the pages
//	                  it cached and the kernel's cache of the image)
//	MPAGE_BENCH_DIRECTREAD if set, large aligned reads of the image go
//	                  through O_DIRECT (block.FileOptions.DirectReads)
const benchChunk = 1 << 20

func benchSize(b *testing.B, env string, def int64) int64 {
	s := os.Getenv(env)
	if s == "" {
		return def
	}
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: not a size", env, os.Getenv(env))
	}
	return n * mult
}

// benchEnv is the image file and the configuration of one benchmark run.
type benchEnv struct {
	path     string
	size     int64
	cacheCfg pagecache.Config
	buf      []byte
	// MPAGE_BENCH_WARM: the timed pass finds the cache's memory faulted in
	warm bool
	// MPAGE_BENCH_DIRECTREAD: large reads of the image use O_DIRECT
	directReads bool
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	size := benchSize(b, "MPAGE_BENCH_SIZE", 1<<30) / benchChunk * benchChunk
	if size == 0 {
		b.Fatalf("MPAGE_BENCH_SIZE below %d", benchChunk)
	}
	ra := 0
	if s := os.Getenv("MPAGE_BENCH_RA"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("MPAGE_BENCH_RA=%q: %v", s, err)
		}
		ra = n
	}
	e := &benchEnv{
		path:        filepath.Join(b.TempDir(), "image"),
		size:        size,
		cacheCfg:    pagecache.Config{Limit: benchSize(b, "MPAGE_BENCH_CACHE", 256<<20), MaxReadahead: ra, HugePages: os.Getenv("MPAGE_BENCH_HUGE") != ""},
		buf:         bytes.Repeat([]byte("mpage benchmark "), benchChunk/16),
		warm:        os.Getenv("MPAGE_BENCH_WARM") != "",
		directReads: os.Getenv("MPAGE_BENCH_DIRECTREAD") != "",
	}
	// Write the whole image once, so that every timed pass overwrites
	// allocated blocks of the host filesystem.
	f, err := os.Create(e.path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	e.rawWrite(b, f)
	return e
}

// rawWrite writes the image in 1 MiB pwrites and fdatasyncs it.
func (e *benchEnv) rawWrite(b *testing.B, f *os.File) {
	b.Helper()
	for off := int64(0); off < e.size; off += benchChunk {
		if _, err := f.WriteAt(e.buf, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
}

// rawDirectWrite writes the image in 4 MiB pwrites through an O_DIRECT
// descriptor from one page-aligned buffer and fdatasyncs it: what the
// disk takes when nothing is copied into the kernel's page cache, the
// path our large writes take (block.File). It returns false where the
// filesystem refuses O_DIRECT.
func (e *benchEnv) rawDirectWrite(b *testing.B) bool {
	b.Helper()
	fd, err := unix.Open(e.path, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	const chunk = 4 << 20
	buf, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(buf)
	for i := 0; i < chunk; i += len(e.buf) {
		copy(buf[i:], e.buf)
	}
	for off := int64(0); off < e.size; off += chunk {
		n := min(chunk, e.size-off)
		if _, err := unix.Pwrite(fd, buf[:n], off); err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Fdatasync(fd); err != nil {
		b.Fatal(err)
	}
	return true
}

// rawRead drops the kernel's cache of the image and reads it in 1 MiB
// preads.
func (e *benchEnv) rawRead(b *testing.B, f *os.File) {
	b.Helper()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchChunk)
	for off := int64(0); off < e.size; off += benchChunk {
		if _, err := f.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
}

// mount opens the image as a block.File and mounts one file covering it
// with a fresh page cache; size is the file's initial size.
func (e *benchEnv) mount(b *testing.B, size int64) (*FS, *block.File, *block.Queue) {
	b.Helper()
	dev, err := block.OpenFileOptions(e.path, block.FileOptions{DirectReads: e.directReads})
	if err != nil {
		b.Fatal(err)
	}
	q := block.NewQueue(dev, block.Config{})
	fsys, err := New(q, Config{
		BlockSize:   4096,
		Files:       []FileSpec{{Name: "f", Extents: Linear(0, e.size/4096), Size: size}},
		CacheConfig: e.cacheCfg,
	})
	if err != nil {
		q.Close()
		b.Fatal(err)
	}
	return fsys, dev, q
}

func unmount(b *testing.B, fsys *FS, q *block.Queue) {
	b.Helper()
	if err := fsys.Close(); err != nil {
		b.Fatal(err)
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
}

// memPhase returns memory to the OS and resets the peak resident size
// (VmHWM) so that the next phase's peak can be read with peakRSS.
func memPhase() {
	runtime.GC()
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // best effort
}

// peakRSS returns VmHWM and VmRSS of this process in bytes.
func peakRSS() (hwm, rss int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var n int64
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmHWM:"):
			fmt.Sscanf(strings.TrimPrefix(line, "VmHWM:"), "%d", &n)
			hwm = n << 10
		case strings.HasPrefix(line, "VmRSS:"):
			fmt.Sscanf(strings.TrimPrefix(line, "VmRSS:"), "%d", &n)
			rss = n << 10
		}
	}
	return hwm, rss
}

// threadCPU is the CPU time of the calling thread
// (CLOCK_THREAD_CPUTIME_ID), zero where it cannot be read.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// totalAlloc is the bytes this process has allocated on the Go heap so
// far (the heapB/MiB metric: what the page-cache path allocates per MiB
// moved, a figure that does not depend on the disk's mood).
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

// BenchmarkSequentialWrite writes the image in 1 MiB writes through the
// page cache and syncs it, and in the same iteration writes it with raw
// 1 MiB pwrites and fdatasync, reporting both throughputs, their ratio,
// the raw throughput of 4 MiB O_DIRECT pwrites (rawdirect-MB/s),
// the device calls per MiB and bytes per call of the page-cache path, and
// its peak resident memory against the cache limit.
func BenchmarkSequentialWrite(b *testing.B) {
	e := newBenchEnv(b)
	raw, err := os.OpenFile(e.path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	var rawDur, directDur, flatDur, writeDur, writeCPU time.Duration
	var calls, bytesW, peak, base, throttled, allocWaits int64
	var allocated uint64
	direct := true
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if direct = direct && e.rawDirectWrite(b); direct {
			directDur += time.Since(start)
		}
		start = time.Now()
		e.rawWrite(b, raw)
		rawDur += time.Since(start)

		memPhase()
		_, base = peakRSS()
		fsys, _, q := e.mount(b, 0)
		f, err := fsys.Open("f")
		if err != nil {
			b.Fatal(err)
		}
		if e.warm {
			// Fault in the cache's memory first, as a long-lived user's
			// cache already is: write as many bytes as the cache holds
			// and sync them, untimed.
			for off := int64(0); off < min(e.size, e.cacheCfg.Limit); off += benchChunk {
				if _, err := f.WriteAt(e.buf, off); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		st0, cs0 := q.Stats(), fsys.Cache().Stats()
		// The writer runs on one locked thread, so that thread's CPU
		// time is the writer's.
		runtime.LockOSThread()
		cpu0 := threadCPU()
		alloc0 := totalAlloc()
		start = time.Now()
		for off := int64(0); off < e.size; off += benchChunk {
			if _, err := f.WriteAt(e.buf, off); err != nil {
				b.Fatal(err)
			}
		}
		writeDur += time.Since(start)
		writeCPU += threadCPU() - cpu0
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		flatDur += time.Since(start)
		allocated += totalAlloc() - alloc0
		runtime.UnlockOSThread()
		cs := fsys.Cache().Stats()
		throttled += cs.Throttled - cs0.Throttled
		allocWaits += cs.AllocWaits - cs0.AllocWaits
		hwm, _ := peakRSS()
		peak = max(peak, hwm)
		st := q.Stats()
		calls += st.WriteCalls - st0.WriteCalls
		bytesW += st.BytesWritten - st0.BytesWritten
		f.Close()
		unmount(b, fsys, q)
	}
	b.StopTimer()
	if direct {
		b.ReportMetric(mbps(e.size*int64(b.N), directDur), "rawdirect-MB/s")
	}
	gib := float64(e.size*int64(b.N)) / (1 << 30)
	b.ReportMetric(writeCPU.Seconds()/gib, "writerCPU-s/GiB")
	b.ReportMetric(writeDur.Seconds()/gib, "writes-s/GiB")
	b.ReportMetric((flatDur-writeDur).Seconds()/gib, "sync-s/GiB")
	b.ReportMetric(float64(throttled)/float64(b.N), "throttled/op")
	b.ReportMetric(float64(allocWaits)/float64(b.N), "allocwaits/op")
	b.ReportMetric(float64(allocated)/float64(e.size*int64(b.N)>>20), "heapB/MiB")
	report(b, e, rawDur, flatDur, calls, bytesW, peak, base, "write")
}

// BenchmarkSequentialRead reads the image cold in 1 MiB reads through a
// fresh page cache, after dropping the kernel's cache of the image, and in
// the same iteration reads it cold with raw 1 MiB preads; it reports as
// BenchmarkSequentialWrite does.
func BenchmarkSequentialRead(b *testing.B) {
	e := newBenchEnv(b)
	raw, err := os.Open(e.path)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	var rawDur, flatDur time.Duration
	var calls, bytesR, peak, base int64
	var allocated uint64
	buf := make([]byte, benchChunk)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		e.rawRead(b, raw)
		rawDur += time.Since(start)

		memPhase()
		_, base = peakRSS()
		fsys, dev, q := e.mount(b, e.size)
		f, err := fsys.Open("f")
		if err != nil {
			b.Fatal(err)
		}
		if e.warm {
			for off := int64(0); off < min(e.size, e.cacheCfg.Limit); off += benchChunk {
				if _, err := f.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
			f.ino.m.InvalidateClean()
		}
		st0 := q.Stats()
		if err := dev.DropCache(); err != nil {
			b.Fatal(err)
		}
		alloc0 := totalAlloc()
		start = time.Now()
		for off := int64(0); off < e.size; off += benchChunk {
			if n, err := f.ReadAt(buf, off); n != benchChunk {
				b.Fatalf("ReadAt(%d): %d, %v", off, n, err)
			}
		}
		flatDur += time.Since(start)
		allocated += totalAlloc() - alloc0
		hwm, _ := peakRSS()
		peak = max(peak, hwm)
		st := q.Stats()
		calls += st.ReadCalls - st0.ReadCalls
		bytesR += st.BytesRead - st0.BytesRead
		f.Close()
		unmount(b, fsys, q)
	}
	b.StopTimer()
	if !bytes.Equal(buf, e.buf) {
		b.Fatalf("the last chunk read back differs from what was written")
	}
	b.ReportMetric(float64(allocated)/float64(e.size*int64(b.N)>>20), "heapB/MiB")
	report(b, e, rawDur, flatDur, calls, bytesR, peak, base, "read")
}

func report(b *testing.B, e *benchEnv, rawDur, flatDur time.Duration, calls, nbytes, peak, base int64, op string) {
	total := e.size * int64(b.N)
	b.ReportMetric(mbps(total, flatDur), "flat-MB/s")
	b.ReportMetric(mbps(total, rawDur), "raw-MB/s")
	b.ReportMetric(rawDur.Seconds()/flatDur.Seconds(), "flat/raw")
	b.ReportMetric(float64(calls)/float64(total>>20), "calls/MiB")
	b.ReportMetric(float64(nbytes)/float64(max(calls, 1)), "B/call")
	b.ReportMetric(float64(peak)/(1<<20), "peakRSS-MiB")
	b.ReportMetric(float64(peak-e.cacheCfg.Limit)/(1<<20), "peakRSS-over-limit-MiB")
	b.Logf("%s %d MiB x%d: flat %.0f MB/s, raw %.0f MB/s; %d device calls; peak RSS %d MiB (before: %d MiB), cache limit %d MiB",
		op, e.size>>20, b.N, mbps(total, flatDur), mbps(total, rawDur), calls, peak>>20, base>>20, e.cacheCfg.Limit>>20)
}
