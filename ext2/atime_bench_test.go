package ext2

import (
	"testing"

	"github.com/mpagefs/mpage/block"
)

// BenchmarkReadAtCached reads 64 bytes at a time from a cached 64 KiB
// file through one handle, under each atime mode: the cost a read pays
// for the atime check. Under relatime, after the first read nothing is
// due; under strictatime every read updates atime.
func BenchmarkReadAtCached(b *testing.B) {
	for _, mode := range []AtimeMode{Relatime, Noatime, Strictatime} {
		b.Run(mode.String(), func(b *testing.B) {
			dev := block.NewMemory(16 << 20)
			if err := Format(dev, FormatOptions{}); err != nil {
				b.Fatal(err)
			}
			fs, err := Mount(dev, Options{Atime: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer fs.Close()
			root, err := fs.Root()
			if err != nil {
				b.Fatal(err)
			}
			ino, err := fs.Create(root, "f", 0o644, 0, 0)
			fs.Iput(root)
			if err != nil {
				b.Fatal(err)
			}
			defer fs.Iput(ino)
			f, err := fs.Open(ino, true)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			const size = 64 << 10
			if _, err := f.WriteAt(make([]byte, size), 0); err != nil {
				b.Fatal(err)
			}
			p := make([]byte, 64)
			for off := int64(0); off < size; off += int64(len(p)) { // warm the cache
				f.ReadAt(p, off)
			}
			b.ReportAllocs()
			b.ResetTimer()
			off := int64(0)
			for range b.N {
				if _, err := f.ReadAt(p, off); err != nil {
					b.Fatal(err)
				}
				if off += int64(len(p)); off >= size {
					off = 0
				}
			}
		})
	}
}
