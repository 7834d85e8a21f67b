package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2fs"
)

// fragmentedImage makes an image of 1 KiB blocks holding "contig", 64
// KiB written in one go, and "frag", 32 KiB whose even blocks were
// written before its odd ones, so that every page of it has its blocks
// in several runs on disk.
func fragmentedImage(t *testing.T) (image string, contig, frag []byte) {
	t.Helper()
	image = filepath.Join(t.TempDir(), "frag.img")
	if err := ext2fs.Format(image, 4<<20, ext2.FormatOptions{BlockSize: 1024}); err != nil {
		t.Fatal(err)
	}
	fsys, err := ext2fs.Open(image, ext2fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	contig = bytes.Repeat([]byte("contiguous file."), 4096)
	frag = make([]byte, 32*1024)
	for i := range frag {
		frag[i] = byte('a' + i/1024%26)
	}
	c, err := fsys.Create("contig")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(contig); err != nil {
		t.Fatal(err)
	}
	c.Close()
	f, err := fsys.Create("frag")
	if err != nil {
		t.Fatal(err)
	}
	for _, first := range []int{0, 1} {
		for blk := first; blk < 32; blk += 2 {
			if _, err := f.WriteAt(frag[blk*1024:(blk+1)*1024], int64(blk*1024)); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.Close()
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	return image, contig, frag
}

// TestFollowupStatsFallback checks the per-block fallback counters of
// --stats: reading a fragmented file counts its pages, a contiguous file
// none.
func TestFollowupStatsFallback(t *testing.T) {
	image, contig, frag := fragmentedImage(t)
	tests := []struct {
		name      string
		path      string
		want      []byte
		wantReads float64
	}{
		{"contiguous", "/contig", contig, 0},
		{"fragmented", "/frag", frag, 8}, // 8 pages, each in four runs
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mpage(t, "--stats=json", "cat", image+":"+tt.path)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if r.stdout != string(tt.want) {
				t.Errorf("cat printed %d bytes, want the %d written", len(r.stdout), len(tt.want))
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(r.stderr), &m); err != nil {
				t.Fatalf("stderr %q is not one JSON object: %v", r.stderr, err)
			}
			for _, k := range []string{"fallback_read_pages", "fallback_write_pages"} {
				if _, ok := m[k]; !ok {
					t.Errorf("--stats=json has no key %q: %s", k, r.stderr)
				}
			}
			if got := m["fallback_read_pages"]; got != tt.wantReads {
				t.Errorf("fallback_read_pages %v, want %v", got, tt.wantReads)
			}
			if got := m["fallback_write_pages"]; got != 0.0 {
				t.Errorf("fallback_write_pages %v after a cat, want 0", got)
			}
			// Metadata reads (superblock, inode, directory) wait at once
			// on an idle queue: their callers make the calls.
			if got, _ := m["polled_calls"].(float64); got < 1 || got > m["read_calls"].(float64) {
				t.Errorf("polled_calls %v, want at least 1 and at most read_calls %v", m["polled_calls"], m["read_calls"])
			}
		})
	}
	r := mpage(t, "--stats", "cat", image+":/frag")
	if r.code != 0 || !strings.Contains(r.stderr, "per-block fallback: 8 pages read, 0 written") {
		t.Errorf("--stats cat: exit %d, stderr %q; want the per-block fallback line", r.code, r.stderr)
	}
}
