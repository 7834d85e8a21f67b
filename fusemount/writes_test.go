package fusemount

import (
	"bytes"
	"os"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestWritesReachUs writes through the mount: appends through two
// descriptors interleave, a write-only descriptor that writes part of a
// page keeps the rest of it, and once the descriptors are closed our
// filesystem (not the kernel's cache) holds the data, size and
// modification time that the mount shows; after unmount the image holds
// them too. (With FUSE_WRITEBACK_CACHE, which the mount does not ask
// for, the kernel would put O_APPEND writes at its own end of file, read
// partial pages through write-only descriptors, and keep an mtime of its
// own: see the package documentation.)
func TestWritesReachUs(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"xattr", Options{}},
		{"noxattr", Options{NoXattr: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, InodeSize: 256})
			m := mountImage(t, image, tc.opts)
			want := map[string][]byte{}

			// Appends through two descriptors.
			var a [2]*os.File
			for i := range a {
				f, err := os.OpenFile(m.path("log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				a[i] = f
			}
			var log []byte
			for i := range 6 {
				line := []byte{byte('a' + i%2), byte('0' + i), '\n'}
				if _, err := a[i%2].Write(line); err != nil {
					t.Fatal(err)
				}
				log = append(log, line...)
			}
			for _, f := range a {
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
			want["log"] = log

			// Part of two pages through a write-only descriptor.
			part := bytes.Repeat([]byte{'x'}, 10000)
			if err := os.WriteFile(m.path("part"), part, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(m.path("part"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("HELLO"), 4094); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			copy(part[4094:], "HELLO")
			want["part"] = part

			for name, data := range want {
				got, err := os.ReadFile(m.path(name))
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s through the mount: %q, %v; want %q", name, shorten(got), err, shorten(data))
				}
				got, err = m.fsys.ReadFile(name)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s in our filesystem after close: %q, %v; want %q", name, shorten(got), err, shorten(data))
				}
				kst, err := os.Stat(m.path(name))
				if err != nil {
					t.Fatal(err)
				}
				ost, err := m.fsys.Stat(name)
				if err != nil {
					t.Fatal(err)
				}
				if kst.Size() != ost.Size() || !kst.ModTime().Equal(ost.ModTime()) {
					t.Errorf("%s: the mount shows size %d, mtime %v; our filesystem has %d, %v",
						name, kst.Size(), kst.ModTime(), ost.Size(), ost.ModTime())
				}
			}
			m.unmount(t)
			oracle.RequireClean(t, image)
			for name, data := range want {
				if dump := oracle.DebugfsDump(t, image, "/"+name); !bytes.Equal(dump, data) {
					t.Errorf("debugfs dump of %s: %q, want %q", name, shorten(dump), shorten(data))
				}
			}
		})
	}
}

// shorten cuts long file contents for messages.
func shorten(b []byte) []byte {
	if len(b) > 40 {
		return append(b[:20:20], "..."...)
	}
	return b
}
