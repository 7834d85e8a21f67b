package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestHugePagesFlag copies a file larger than the page cache into an image
// and back out with --huge-pages (the cache's memory on transparent huge
// pages, its frames reused as pages are evicted, large reads direct): the
// bytes come back as written and e2fsck finds the image clean; with
// --huge-pages=false (the default) too. (Race-enabled builds, as in
// CI, keep page memory on the Go heap and ignore the flag; the arena's
// huge pages themselves are tested in pagecache.)
func TestHugePagesFlag(t *testing.T) {
	data := make([]byte, 20<<20+12345)
	r := rand.New(rand.NewPCG(6, 2026))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	src := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 64 << 20, BlockSize: 4096})
	mustRun(t, "--huge-pages", "--cache", "8M", "cp", src, image+":/big")
	oracle.RequireClean(t, image)
	got := mustRun(t, "--huge-pages", "--cache", "8M", "cat", image+":/big")
	if !bytes.Equal([]byte(got), data) {
		t.Fatalf("cat --huge-pages: %d bytes back, want the %d written (equal: %v)", len(got), len(data), len(got) == len(data))
	}
	// Without huge pages the same bytes are there: the option changes
	// where the cache keeps pages, not what reaches the image.
	if got := mustRun(t, "--huge-pages=false", "cat", image+":/big"); got != string(data) {
		t.Fatalf("cat --huge-pages=false: %d bytes back, want %d", len(got), len(data))
	}
	mustRun(t, "--huge-pages=false", "--cache", "8M", "cp", src, image+":/big2")
	oracle.RequireClean(t, image)
	if got := mustRun(t, "cat", image+":/big2"); got != string(data) {
		t.Fatalf("cat of the copy made with --huge-pages=false: %d bytes back, want %d", len(got), len(data))
	}
}
