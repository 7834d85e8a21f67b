package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"one", []float64{3}, 3},
		{"odd unsorted", []float64{5, 1, 3}, 3},
		{"even is the mean of the middle two", []float64{4, 1, 2, 10}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestParseDDRecords(t *testing.T) {
	tests := []struct {
		name          string
		stderr        string
		reads, writes int64
		ok            bool
	}{
		{"full and partial records", "1024+0 records in\n1023+2 records out\n1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2.1 s, 511 MB/s\n", 1024, 1025, true},
		{"no report", "dd: failed to open 'x': No such file or directory\n", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w, ok := parseDDRecords(tt.stderr)
			if r != tt.reads || w != tt.writes || ok != tt.ok {
				t.Errorf("parseDDRecords = %d, %d, %v; want %d, %d, %v", r, w, ok, tt.reads, tt.writes, tt.ok)
			}
		})
	}
}

func TestParseMpageStats(t *testing.T) {
	stderr := "some progress\n{\"command\":\"cp\",\"read_calls\":7,\"write_calls\":38}\n"
	s, err := parseMpageStats(stderr)
	if err != nil {
		t.Fatalf("parseMpageStats: %v", err)
	}
	if s.ReadCalls != 7 || s.WriteCalls != 38 {
		t.Errorf("got read_calls %d, write_calls %d; want 7, 38", s.ReadCalls, s.WriteCalls)
	}
	if _, err := parseMpageStats("mpage: cp: no such file\n"); err == nil {
		t.Error("parseMpageStats without JSON: got nil error, want one")
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "1G", want: 1 << 30},
		{in: "64M", want: 64 << 20},
		{in: "4096", want: 4096},
		{in: "12x", bad: true},
		{in: "", bad: true},
		{in: "-1M", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.bad {
				if err == nil {
					t.Errorf("parseSize(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// A failed run must never make a peer the fastest: its row has no time,
// and the best and raw references skip it.
func TestFailedRunIsNeverBest(t *testing.T) {
	ok := func(s float64) sample { return sample{wall: s, reads: -1, writes: -1} }
	w := &workload{bytes: 1 << 20}
	fast := &peerResult{peer: &peer{name: "fast but wrong"}, samples: []sample{ok(0.1), {wall: 0.1, failed: "verification: differs"}}}
	slow := &peerResult{peer: &peer{name: "slow"}, samples: []sample{ok(2), ok(3), ok(4)}}
	raw := &peerResult{peer: &peer{name: "raw", raw: true}, samples: []sample{ok(1)}}
	skipped := &peerResult{peer: &peer{name: "absent"}, skipped: "not installed"}
	w.res = []*peerResult{fast, slow, raw, skipped}
	if s := summarize(fast, w.bytes); s.ok() || s.failed != 1 {
		t.Errorf("summary of a peer with a failed run: ok %v, failed %d; want false, 1", s.ok(), s.failed)
	}
	if got := bestMedian(w); got != 3 {
		t.Errorf("bestMedian = %v, want 3 (the slow peer; the failed one and raw are not candidates)", got)
	}
	if got := rawMedian(w); got != 1 {
		t.Errorf("rawMedian = %v, want 1", got)
	}
	b := &bench{workloads: []*workload{w}}
	gs := b.chartGroups()
	if len(gs) != 1 || len(gs[0].bars) != 3 {
		t.Fatalf("chart groups %+v, want one group of 3 bars (skipped peer left out)", gs)
	}
	if !gs[0].bars[0].failed || !math.IsNaN(gs[0].bars[0].ratio) {
		t.Errorf("bar of the failed peer: %+v, want failed with no ratio", gs[0].bars[0])
	}
	var sb strings.Builder
	b.workloadSection(&sb, w)
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, "| fast but wrong") && !strings.Contains(line, "FAILED") {
			t.Errorf("row of the failed peer %q does not say FAILED", line)
		}
	}
}

func TestSummarizeRequests(t *testing.T) {
	r := &peerResult{peer: &peer{name: "p"}, samples: []sample{
		{wall: 1, reads: 10, writes: 100, rssKiB: 2048},
		{wall: 2, reads: 20, writes: 300, rssKiB: 4096},
		{wall: 3, reads: 30, writes: 200, rssKiB: 1024},
	}}
	s := summarize(r, 10<<20)
	if s.readsPerMiB != 2 || s.writesPerMiB != 20 {
		t.Errorf("requests per MiB %v / %v, want 2 / 20 (medians over 10 MiB)", s.readsPerMiB, s.writesPerMiB)
	}
	if s.rssKiB != 4096 || s.min != 1 || s.max != 3 || s.med != 2 {
		t.Errorf("got rss %d, min %v, max %v, median %v; want 4096, 1, 3, 2", s.rssKiB, s.min, s.max, s.med)
	}
}

// The chart must be well-formed XML that an SVG viewer can read, with
// names escaped.
func TestRenderSVGIsXML(t *testing.T) {
	groups := []chartGroup{{
		title: "1. <tree> & more",
		bars: []chartBar{
			{label: "mpage", ours: true, ratio: 1.5, value: "1.5 s"},
			{label: "kernel", ratio: 1, value: "1 s"},
			{label: "slowpoke", ratio: 40, value: "40 s"},
			{label: "broken", failed: true, ratio: math.NaN()},
		},
	}}
	svg := renderSVG(groups)
	dec := xml.NewDecoder(strings.NewReader(svg))
	var texts []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
		}
		if cd, ok := tok.(xml.CharData); ok {
			texts = append(texts, string(cd))
		}
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"1. <tree> & more", "1.50× (1.5 s)", "» 40.00× (40 s)", "FAILED"} {
		if !strings.Contains(all, want) {
			t.Errorf("chart text lacks %q", want)
		}
	}
	if !strings.HasPrefix(svg, "<svg ") {
		t.Errorf("chart starts %q, want <svg", svg[:min(20, len(svg))])
	}
}

func TestGenerateTreeShape(t *testing.T) {
	dir := t.TempDir()
	sh := treeShape{files: 200, dirs: 20, mu: 7.48, sigma: 1.92, maxSize: 256 << 10}
	if err := generateTree(dir, sh); err != nil {
		t.Fatal(err)
	}
	ti, err := scanTreeInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ti.files != 200 || ti.dirs != 20 {
		t.Errorf("got %d files in %d directories, want 200 in 20", ti.files, ti.dirs)
	}
	// The same shape makes the same tree.
	dir2 := filepath.Join(t.TempDir(), "again")
	if err := generateTree(dir2, sh); err != nil {
		t.Fatal(err)
	}
	ti2, err := scanTreeInfo(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if ti2 != ti {
		t.Errorf("second tree %+v, want the same as the first %+v", ti2, ti)
	}
}

func TestParseTimeText(t *testing.T) {
	report := `	Command being timed: "dd if=/dev/zero of=/dev/null bs=64M count=1"
	User time (seconds): 0.01
	System time (seconds): 0.25
	Percent of CPU this job got: 98%
	Maximum resident set size (kbytes): 67316
	Exit status: 0
`
	got, ok := parseTimeText(report)
	if !ok || got.rssKiB != 67316 || math.Abs(got.cpu-0.26) > 1e-9 {
		t.Errorf("parseTimeText = %+v, %v; want cpu 0.26, rss 67316, true", got, ok)
	}
	if _, ok := parseTimeText("Command terminated by signal 9\n"); ok {
		t.Error("parseTimeText of a report without the fields: got ok, want not ok")
	}
}

// TestFuseTargets: the FUSE mount's targets come from the fio runs of both
// mounts and from the tree copy; a fuse2fs copy that failed verification
// is not compared against.
func TestFuseTargets(t *testing.T) {
	ok := func(s float64) sample { return sample{wall: s, reads: -1, writes: -1} }
	fio := &fioWorkload{peers: []*fioPeer{
		{name: "mpage mount", ours: true, runs: []fioRun{{writeBW: 700e6, readBW: 780e6, randIOPS: 22000, randIOPS4: 40000}}},
		{name: "fuse2fs", runs: []fioRun{{writeBW: 340e6, readBW: 400e6, randIOPS: 20000, randIOPS4: 16000}}},
	}}
	tests := []struct {
		name        string
		fuse2fsTree sample
		want        map[string]string // target name prefix -> verdict
	}{
		{
			name:        "fuse2fs copy verified",
			fuse2fsTree: ok(10),
			want: map[string]string{
				"FUSE sequential 1 MiB write": "met",
				"FUSE sequential 1 MiB read":  "**not met**", // 1.95x
				"FUSE 4 KiB random reads":     "met",
				"FUSE tree copy":              "**not met**", // 10 s / 6 s
			},
		},
		{
			name:        "fuse2fs copy failed",
			fuse2fsTree: sample{wall: 1, failed: "verification: differs"},
			want:        map[string]string{"FUSE tree copy": "not measured"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree := &workload{key: "tree", bytes: 1 << 20, res: []*peerResult{
				{peer: &peer{name: "mpage mount"}, samples: []sample{ok(6)}},
				{peer: &peer{name: "fuse2fs"}, samples: []sample{tc.fuse2fsTree}},
			}}
			b := &bench{workloads: []*workload{tree}, fio: fio}
			got := map[string]target{}
			for _, tg := range b.fuseTargets() {
				got[tg.name] = tg
			}
			for prefix, verdict := range tc.want {
				found := false
				for name, tg := range got {
					if strings.HasPrefix(name, prefix) {
						found = true
						if tg.verdict != verdict {
							t.Errorf("%s: verdict %q (%s), want %q", name, tg.verdict, tg.measured, verdict)
						}
					}
				}
				if !found {
					t.Errorf("no target named %q...; have %v", prefix, got)
				}
			}
			for name, tg := range got {
				if strings.HasPrefix(name, "FUSE 4 KiB random reads") && !strings.Contains(tg.measured, "2.50× (40000 vs 16000 IOPS)") {
					t.Errorf("%s: measured %q, want the %d jobs' ratio 2.50× (40000 vs 16000 IOPS) in it", name, tg.measured, randJobs)
				}
			}
		})
	}
}
