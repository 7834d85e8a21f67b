package ext2

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/internal/oracle"
)

// pattern returns n deterministic pseudo-random bytes.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeFile writes a source file for mke2fs -d.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeImage runs mke2fs -q -F -t ext2 -b bs -I isz [-d src] on a new image
// of size bytes and returns its path (skipping if mke2fs is missing).
func makeImage(t *testing.T, bs, isz int, size int64, src string) string {
	t.Helper()
	return oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: size, BlockSize: bs, InodeSize: isz, FromDir: src})
}

// traceDev wraps a device and records its reads while recording is on.
type traceDev struct {
	block.Device
	mu    sync.Mutex
	on    bool
	reads []traceIO
}

type traceIO struct{ off, n int64 }

func (d *traceDev) ReadVecAt(bufs [][]byte, off int64) error {
	n := int64(0)
	for _, b := range bufs {
		n += int64(len(b))
	}
	d.mu.Lock()
	if d.on {
		d.reads = append(d.reads, traceIO{off, n})
	}
	d.mu.Unlock()
	return d.Device.ReadVecAt(bufs, off)
}

func (d *traceDev) record(on bool) {
	d.mu.Lock()
	d.on = on
	if on {
		d.reads = nil
	}
	d.mu.Unlock()
}

func (d *traceDev) taken() []traceIO {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]traceIO(nil), d.reads...)
}

// mountImage mounts an image file and closes it at cleanup (errors of a
// cleanup Close are reported unless the test closed it itself).
func mountImage(t *testing.T, path string, opts Options) *FS {
	t.Helper()
	fs, _ := mountImageTraced(t, path, opts)
	return fs
}

func mountImageTraced(t *testing.T, path string, opts Options) (*FS, *traceDev) {
	t.Helper()
	dev, err := block.OpenFile(path, opts.ReadOnly)
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", path, err)
	}
	td := &traceDev{Device: dev}
	if opts.Name == "" {
		opts.Name = path
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	fs, err := Mount(td, opts)
	if err != nil {
		t.Fatalf("Mount(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := fs.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return fs, td
}

// readPath reads the whole file at path through Lookup, OpenInode and
// ReadAt in chunks of chunk bytes.
func readPath(t *testing.T, fs *FS, path string, chunk int) []byte {
	t.Helper()
	ino, err := fs.Lookup(path)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", path, err)
	}
	defer fs.Iput(ino)
	f, err := fs.Open(ino, false)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	defer f.Close()
	var out bytes.Buffer
	buf := make([]byte, chunk)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		out.Write(buf[:n])
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("ReadAt(%q, %d): %v", path, off, err)
		}
	}
	return out.Bytes()
}

// openPath opens the file at path for writing.
func openPath(t *testing.T, fs *FS, path string) *File {
	t.Helper()
	ino, err := fs.Lookup(path)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", path, err)
	}
	defer fs.Iput(ino)
	f, err := fs.Open(ino, true)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	return f
}

// makeImageOpts makes an empty 8 MiB image with extra -O features.
func makeImageOpts(t *testing.T, bs int, features string) string {
	t.Helper()
	return oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, BlockSize: bs, Features: features})
}

// openDev opens an image file as a device.
func openDev(t *testing.T, path string, readOnly bool) block.Device {
	t.Helper()
	dev, err := block.OpenFile(path, readOnly)
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", path, err)
	}
	return dev
}
