//go:build !race

package pagecache

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// thpMode is the kernel's transparent huge page mode ("always",
// "madvise" or "never"), or "" when the kernel has none.
func thpMode() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return ""
	}
	s := string(b)
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

// anonHugeKB is the AnonHugePages of the mapping of this process that
// contains addr, from /proc/self/smaps.
func anonHugeKB(t *testing.T, addr uintptr) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "AnonHugePages:") {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			return kb
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("smaps: no mapping holds %#x", addr)
	return 0
}

// A cache with HugePages hands out frames from memory aligned to 2 MiB,
// and where the kernel has transparent huge pages, frames in use sit in
// huge pages: a run of frames taken in order is one physically contiguous
// stretch of memory for the disk.
func TestHugePagesArena(t *testing.T) {
	const n = 4 * hugePageSize / PageSize
	a := newArena(n, true)
	defer a.close()
	if a.region == nil {
		t.Skip("no mmap arena")
	}
	base := uintptr(unsafe.Pointer(&a.region.mem[0]))
	if base%hugePageSize != 0 {
		t.Fatalf("arena at %#x: not on a 2 MiB boundary", base)
	}
	if len(a.region.mem) != n*PageSize {
		t.Fatalf("arena of %d bytes, want %d", len(a.region.mem), n*PageSize)
	}
	// Take and fill two huge pages' worth of frames, as a writer would.
	for i := 0; i < 2*hugePageSize/PageSize; i++ {
		frame, data, zero, ok := a.alloc()
		if !ok || int(frame) != i || !zero {
			t.Fatalf("alloc %d: frame %d zero %v ok %v", i, frame, zero, ok)
		}
		if uintptr(unsafe.Pointer(&data[0])) != base+uintptr(i)*PageSize {
			t.Fatalf("frame %d not at its place in the arena", frame)
		}
		for j := range data {
			if data[j] != 0 {
				t.Fatalf("fresh frame %d: byte %d is %#x", frame, j, data[j])
			}
		}
		data[0], data[PageSize-1] = byte(i), byte(i>>8)
	}
	a.waitPrefault(t)
	switch mode := thpMode(); mode {
	case "always", "madvise":
		if kb := anonHugeKB(t, base); kb < hugePageSize>>10 {
			t.Errorf("THP %q: the arena holds %d KiB of huge pages after 4 MiB of frames were filled; want at least 2048", mode, kb)
		}
	default:
		t.Logf("THP %q: huge pages not checked", mode)
	}
	// The memory stays the frames': the bytes written are still there.
	for i := 0; i < 2*hugePageSize/PageSize; i++ {
		p := a.region.mem[i*PageSize:]
		if p[0] != byte(i) || p[PageSize-1] != byte(i>>8) {
			t.Fatalf("frame %d lost its bytes", i)
		}
	}
}

// Closing an arena unmaps its memory, aligned huge-page arenas too.
func TestArenaUnmapsOnClose(t *testing.T) {
	for _, huge := range []bool{false, true} {
		a := newArena(2*hugePageSize/PageSize, huge)
		if a.region == nil {
			t.Skip("no mmap arena")
		}
		_, data, _, _ := a.alloc()
		data[0] = 1
		addr, n := uintptr(unsafe.Pointer(&a.region.mem[0])), len(a.region.mem)
		vec := make([]byte, n/PageSize)
		if _, _, errno := unix.Syscall(unix.SYS_MINCORE, addr, uintptr(n), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			t.Fatalf("huge %v: mincore of the open arena: %v", huge, errno)
		}
		a.close()
		if _, _, errno := unix.Syscall(unix.SYS_MINCORE, addr, uintptr(n), uintptr(unsafe.Pointer(&vec[0]))); errno != unix.ENOMEM {
			t.Errorf("huge %v: mincore after close: %v, want ENOMEM (unmapped)", huge, errno)
		}
		if _, _, _, ok := a.alloc(); ok {
			t.Errorf("huge %v: alloc after close succeeded", huge)
		}
	}
}
