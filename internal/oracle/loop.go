package oracle

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpagefs/mpage/internal/mountinfo"
)

// LoopMount mounts image with the kernel's ext2 driver on a loop device
// ("mount -t ext2 -o loop[,ro] image dir") at a new t.TempDir and returns
// the mount point. It skips the test when not running as root or when the
// system has no usable loop device; a mount that fails for another reason
// (the kernel refuses the filesystem) fails the test. The mount is
// unmounted, and its loop device detached, in t.Cleanup.
func LoopMount(t testing.TB, image string, readOnly bool) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("oracle: loop mounts need root")
	}
	prog := Tool(t, "mount")
	abs, err := filepath.Abs(image)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	dir := t.TempDir()
	opts := "loop"
	if readOnly {
		opts += ",ro"
	}
	args := []string{"-t", "ext2", "-o", opts, abs, dir}
	r := run(t, prog, args...)
	if r.code != 0 {
		msg := strings.ToLower(r.stderr + r.stdout)
		if r.timedOut || strings.Contains(msg, "loop") || strings.Contains(msg, "permission") ||
			strings.Contains(msg, "not permitted") || strings.Contains(msg, "only root") {
			t.Skipf("oracle: cannot loop-mount here: %s", r.describe(prog, args))
		}
		t.Fatalf("oracle: the kernel refuses to mount %s: %s\n(see dmesg)", image, r.describe(prog, args))
	}
	t.Cleanup(func() {
		if mounted(dir) {
			if err := umount(t, dir); err != nil {
				t.Errorf("oracle: %v", err)
			}
		}
		detach(t, abs)
	})
	return dir
}

// Umount unmounts a mount point made by LoopMount now, syncing it to the
// image, so that the test can examine the image. The loop device is
// released by the kernel (mount -o loop sets autoclear).
func Umount(t testing.TB, dir string) {
	t.Helper()
	if err := umount(t, dir); err != nil {
		t.Fatalf("oracle: %v", err)
	}
}

func umount(t testing.TB, dir string) error {
	t.Helper()
	prog := Tool(t, "umount")
	var r result
	for range 50 { // "target is busy" lasts while a file is still open
		if r = run(t, prog, dir); r.code == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cannot unmount: %s", r.describe(prog, []string{dir}))
}

// detach detaches any loop device still attached to image.
func detach(t testing.TB, image string) {
	t.Helper()
	prog := LookTool("losetup")
	if prog == "" {
		return
	}
	r := run(t, prog, "-j", image)
	for _, line := range strings.Split(r.stdout, "\n") {
		dev, _, ok := strings.Cut(line, ":")
		if ok && strings.HasPrefix(dev, "/dev/loop") {
			run(t, prog, "-d", dev)
		}
	}
}

func mounted(dir string) bool {
	_, _, ok := mountinfo.Lookup(dir)
	return ok
}

// LoopDevice returns the loop device ("/dev/loop3") mounted at dir.
func LoopDevice(t testing.TB, dir string) string {
	t.Helper()
	src, _, ok := mountinfo.Lookup(dir)
	if !ok {
		t.Fatalf("oracle: nothing is mounted at %s", dir)
	}
	if !strings.HasPrefix(src, "/dev/loop") {
		t.Fatalf("oracle: %s is mounted from %s, not a loop device", dir, src)
	}
	return src
}

// BlockStat holds the fields of /sys/block/DEV/stat
// (Documentation/block/stat.rst).
type BlockStat struct {
	ReadIOs, ReadMerges, ReadSectors, ReadTicks     uint64 // fields 1-4
	WriteIOs, WriteMerges, WriteSectors, WriteTicks uint64 // fields 5-8
	InFlight, IOTicks, TimeInQueue                  uint64 // fields 9-11
}

// Sub returns s - before, field by field (InFlight is s's own).
func (s BlockStat) Sub(before BlockStat) BlockStat {
	return BlockStat{
		ReadIOs: s.ReadIOs - before.ReadIOs, ReadMerges: s.ReadMerges - before.ReadMerges,
		ReadSectors: s.ReadSectors - before.ReadSectors, ReadTicks: s.ReadTicks - before.ReadTicks,
		WriteIOs: s.WriteIOs - before.WriteIOs, WriteMerges: s.WriteMerges - before.WriteMerges,
		WriteSectors: s.WriteSectors - before.WriteSectors, WriteTicks: s.WriteTicks - before.WriteTicks,
		InFlight: s.InFlight, IOTicks: s.IOTicks - before.IOTicks, TimeInQueue: s.TimeInQueue - before.TimeInQueue,
	}
}

// ParseBlockStat parses the contents of a /sys/block/DEV/stat file.
func ParseBlockStat(text string) (BlockStat, error) {
	f := strings.Fields(text)
	if len(f) < 11 {
		return BlockStat{}, fmt.Errorf("block stat has %d fields, want at least 11: %q", len(f), text)
	}
	var v [11]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return BlockStat{}, fmt.Errorf("block stat field %d: %v", i+1, err)
		}
		v[i] = n
	}
	return BlockStat{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]}, nil
}

// LoopStats reads /sys/block/loopN/stat of the loop device mounted at dir.
// Fields ReadIOs and WriteIOs (1 and 5) count the requests the kernel sent
// to the device.
func LoopStats(t testing.TB, dir string) BlockStat {
	t.Helper()
	dev := filepath.Base(LoopDevice(t, dir))
	b, err := os.ReadFile(filepath.Join("/sys/block", dev, "stat"))
	if err != nil {
		t.Skipf("oracle: cannot read block statistics: %v", err)
	}
	s, err := ParseBlockStat(string(b))
	if err != nil {
		t.Fatalf("oracle: /sys/block/%s/stat: %v", dev, err)
	}
	return s
}

// LoopDevStats is another name for LoopStats.
func LoopDevStats(t testing.TB, dir string) BlockStat {
	t.Helper()
	return LoopStats(t, dir)
}

// DropCaches writes back dirty data and drops the kernel's clean page,
// dentry and inode caches (echo 3 > /proc/sys/vm/drop_caches), so that
// the next reads on a loop mount reach the device. It needs root.
func DropCaches(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("oracle: dropping caches needs root")
	}
	if p := LookTool("sync"); p != "" {
		run(t, p)
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		t.Skipf("oracle: cannot drop caches: %v", err)
	}
}
