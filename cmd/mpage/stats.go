package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mpagefs/mpage/ext2fs"
)

// runStats sums the I/O counters of every image a run opened.
type runStats struct {
	mu     sync.Mutex
	images int
	s      ext2fs.Stats
}

func (r *runStats) add(s ext2fs.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.images++
	q, o := &r.s.Queue, s.Queue
	q.ReadBios += o.ReadBios
	q.WriteBios += o.WriteBios
	q.ReadPages += o.ReadPages
	q.WritePages += o.WritePages
	q.Merges += o.Merges
	q.ReadCalls += o.ReadCalls
	q.WriteCalls += o.WriteCalls
	q.BytesRead += o.BytesRead
	q.BytesWritten += o.BytesWritten
	q.LargestRequest = max(q.LargestRequest, o.LargestRequest)
	q.Flushes += o.Flushes
	q.Errors += o.Errors
	q.PolledCalls += o.PolledCalls
	p := &r.s.PageCache
	p.PeakPages = max(p.PeakPages, s.PageCache.PeakPages)
	p.Evicted += s.PageCache.Evicted
	p.AllocWaits += s.PageCache.AllocWaits
	p.Throttled += s.PageCache.Throttled
	b := &r.s.Buffers
	b.Hits += s.Buffers.Hits
	b.Misses += s.Buffers.Misses
	b.Reads += s.Buffers.Reads
	b.Writes += s.Buffers.Writes
	r.s.FallbackReadPages += s.FallbackReadPages
	r.s.FallbackWritePages += s.FallbackWritePages
}

// statsReport is what --stats prints: in JSON with these keys, in text as
// a short summary.
type statsReport struct {
	Command            string  `json:"command"`
	Images             int     `json:"images"`
	ReadBios           int64   `json:"read_bios"`
	WriteBios          int64   `json:"write_bios"`
	ReadPages          int64   `json:"read_pages"`
	WritePages         int64   `json:"write_pages"`
	Merges             int64   `json:"merges"`
	ReadCalls          int64   `json:"read_calls"`
	WriteCalls         int64   `json:"write_calls"`
	BytesRead          int64   `json:"bytes_read"`
	BytesWritten       int64   `json:"bytes_written"`
	BytesPerReadCall   float64 `json:"bytes_per_read_call"`
	BytesPerWriteCall  float64 `json:"bytes_per_write_call"`
	LargestRequest     int64   `json:"largest_request"`
	Flushes            int64   `json:"flushes"`
	DeviceErrors       int64   `json:"device_errors"`
	PolledCalls        int64   `json:"polled_calls"`
	PeakCachePages     int64   `json:"peak_cache_pages"`
	EvictedPages       int64   `json:"evicted_pages"`
	ThrottledWriters   int64   `json:"throttled_writers"`
	MetadataReads      int64   `json:"metadata_reads"`
	MetadataWrites     int64   `json:"metadata_writes"`
	MetadataHits       int64   `json:"metadata_hits"`
	MetadataMisses     int64   `json:"metadata_misses"`
	FallbackReadPages  int64   `json:"fallback_read_pages"`
	FallbackWritePages int64   `json:"fallback_write_pages"`
	ElapsedSeconds     float64 `json:"elapsed_seconds"`
	ThroughputBytesSec float64 `json:"throughput_bytes_per_second"`
}

func (r *runStats) report(command string, elapsed time.Duration) statsReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.s.Queue
	rep := statsReport{
		Command:          command,
		Images:           r.images,
		ReadBios:         q.ReadBios,
		WriteBios:        q.WriteBios,
		ReadPages:        q.ReadPages,
		WritePages:       q.WritePages,
		Merges:           q.Merges,
		ReadCalls:        q.ReadCalls,
		WriteCalls:       q.WriteCalls,
		BytesRead:        q.BytesRead,
		BytesWritten:     q.BytesWritten,
		LargestRequest:   q.LargestRequest,
		Flushes:          q.Flushes,
		DeviceErrors:     q.Errors,
		PolledCalls:      q.PolledCalls,
		PeakCachePages:   r.s.PageCache.PeakPages,
		EvictedPages:     r.s.PageCache.Evicted,
		ThrottledWriters: r.s.PageCache.Throttled,
		MetadataReads:    r.s.Buffers.Reads,
		MetadataWrites:   r.s.Buffers.Writes,
		MetadataHits:     r.s.Buffers.Hits,
		MetadataMisses:   r.s.Buffers.Misses,
		ElapsedSeconds:   elapsed.Seconds(),

		FallbackReadPages:  r.s.FallbackReadPages,
		FallbackWritePages: r.s.FallbackWritePages,
	}
	if q.ReadCalls > 0 {
		rep.BytesPerReadCall = float64(q.BytesRead) / float64(q.ReadCalls)
	}
	if q.WriteCalls > 0 {
		rep.BytesPerWriteCall = float64(q.BytesWritten) / float64(q.WriteCalls)
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.ThroughputBytesSec = float64(q.BytesRead+q.BytesWritten) / s
	}
	return rep
}

// printStats prints the --stats summary, if asked for, on stderr.
func (a *app) printStats() {
	if a.g.stats != "text" && a.g.stats != "json" {
		return
	}
	rep := a.stats.report(a.command, time.Since(a.start))
	if a.g.stats == "json" {
		b, _ := json.Marshal(rep)
		fmt.Fprintf(a.stderr, "%s\n", b)
		return
	}
	writeStatsText(a.stderr, rep)
}

func writeStatsText(w io.Writer, r statsReport) {
	fmt.Fprintf(w, "stats: %d read bios (%d pages), %d write bios (%d pages), %d merged\n",
		r.ReadBios, r.ReadPages, r.WriteBios, r.WritePages, r.Merges)
	fmt.Fprintf(w, "stats: device: %d reads of %s (%s/call), %d writes of %s (%s/call), largest %s, %d flushes\n",
		r.ReadCalls, human(r.BytesRead), human(int64(r.BytesPerReadCall)),
		r.WriteCalls, human(r.BytesWritten), human(int64(r.BytesPerWriteCall)),
		human(r.LargestRequest), r.Flushes)
	fmt.Fprintf(w, "stats: %d device calls made by a waiting reader itself (polled)\n", r.PolledCalls)
	fmt.Fprintf(w, "stats: page cache peak %d pages, %d evicted; metadata %d blocks read, %d written (%d hits, %d misses)\n",
		r.PeakCachePages, r.EvictedPages, r.MetadataReads, r.MetadataWrites, r.MetadataHits, r.MetadataMisses)
	fmt.Fprintf(w, "stats: per-block fallback: %d pages read, %d written\n", r.FallbackReadPages, r.FallbackWritePages)
	fmt.Fprintf(w, "stats: %.3f s, %s/s\n", r.ElapsedSeconds, human(int64(r.ThroughputBytesSec)))
}

// human prints a byte count with a binary unit, e.g. "4.0 MiB".
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
