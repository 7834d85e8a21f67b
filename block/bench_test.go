package block_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mpagefs/mpage/block"
)

const (
	benchSize     = 256 << 20 // bytes moved per benchmark iteration
	benchPage     = 4096
	benchBioPages = 256 // pages per bio: 1 MiB bios
)

// benchQueue makes a File device of benchSize bytes in b.TempDir, a
// queue over it and the benchSize-byte buffer the bios use.
func benchQueue(b *testing.B) (*block.Queue, []byte) {
	b.Helper()
	f, err := block.CreateFile(filepath.Join(b.TempDir(), "bench.img"), benchSize)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, benchSize)
	for i := range data {
		data[i] = byte(i >> 12)
	}
	// Allocate the file's blocks first, as the raw baseline does.
	for off := 0; off < benchSize; off += 1 << 20 {
		if err := f.WriteVecAt([][]byte{data[off : off+1<<20]}, int64(off)); err != nil {
			b.Fatal(err)
		}
	}
	q := block.NewQueue(f, block.Config{})
	b.Cleanup(func() { q.Close() })
	return q, data
}

// sequential moves data through q in bios of benchBioPages pages, as the
// mpage layer does, and waits for all of them.
func sequential(b *testing.B, q *block.Queue, op block.Op, data []byte) {
	for off := 0; off < len(data); off += benchBioPages * benchPage {
		bio := q.AllocBio(op, int64(off>>block.SectorShift), benchBioPages)
		for p := 0; p < benchBioPages; p++ {
			at := off + p*benchPage
			if !bio.AddPage(data[at:at+benchPage:at+benchPage], nil) {
				b.Fatalf("AddPage refused page %d of a bio", p)
			}
		}
		bio.EndIO = func(_ *block.Bio, err error) {
			if err != nil {
				b.Error(err)
			}
		}
		q.Submit(bio)
	}
	q.Wait()
}

func reportCalls(b *testing.B, st block.Stats, op block.Op) {
	bytes, calls := st.BytesWritten, st.WriteCalls
	if op == block.Read {
		bytes, calls = st.BytesRead, st.ReadCalls
	}
	if calls > 0 {
		b.ReportMetric(float64(bytes)/float64(calls), "bytes/call")
	}
	b.ReportMetric(float64(st.Merges)/float64(b.N), "merges/op")
}

func BenchmarkQueueSequentialWrite(b *testing.B) {
	q, data := benchQueue(b)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		sequential(b, q, block.Write, data)
	}
	b.StopTimer()
	reportCalls(b, q.Stats(), block.Write)
}

func BenchmarkQueueSequentialRead(b *testing.B) {
	q, data := benchQueue(b)
	before := q.Stats()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		sequential(b, q, block.Read, data)
	}
	b.StopTimer()
	st := q.Stats()
	st.Merges -= before.Merges
	reportCalls(b, st, block.Read)
}

// benchRawFile is the baseline: the same file moved with a plain 1 MiB
// pwrite/pread loop on one goroutine.
func benchRawFile(b *testing.B, write bool) {
	path := filepath.Join(b.TempDir(), "raw.img")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if err := f.Truncate(benchSize); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < benchSize; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		for off := int64(0); off < benchSize; off += int64(len(buf)) {
			if write {
				_, err = f.WriteAt(buf, off)
			} else {
				_, err = f.ReadAt(buf, off)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(buf)), "bytes/call")
}

func BenchmarkRawPwrite1MiB(b *testing.B) { benchRawFile(b, true) }
func BenchmarkRawPread1MiB(b *testing.B)  { benchRawFile(b, false) }
