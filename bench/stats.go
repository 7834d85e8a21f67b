package main

import (
	"math"
	"slices"
)

// median returns the median of xs (the mean of the middle two for an even
// count); NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summary condenses the counted runs of one peer.
type summary struct {
	runs     int
	failed   int
	failure  string // the first failure
	med      float64
	min, max float64
	cpu      float64 // median CPU seconds
	rssKiB   int64   // largest peak RSS
	// Device requests per MiB of payload (median); NaN when unknown.
	readsPerMiB, writesPerMiB float64
}

// ok reports whether the peer has results to compare: at least one run,
// and none failed.
func (s summary) ok() bool { return s.runs > 0 && s.failed == 0 }

func summarize(r *peerResult, payload int64) summary {
	s := summary{runs: len(r.samples), readsPerMiB: math.NaN(), writesPerMiB: math.NaN()}
	var walls, cpus, rd, wr []float64
	mib := float64(payload) / (1 << 20)
	for _, x := range r.samples {
		if x.failed != "" {
			if s.failed == 0 {
				s.failure = x.failed
			}
			s.failed++
			continue
		}
		walls = append(walls, x.wall)
		cpus = append(cpus, x.cpu)
		s.rssKiB = max(s.rssKiB, x.rssKiB)
		if x.reads >= 0 && mib > 0 {
			rd = append(rd, float64(x.reads)/mib)
			wr = append(wr, float64(x.writes)/mib)
		}
	}
	s.med = median(walls)
	if len(walls) > 0 {
		s.min, s.max = slices.Min(walls), slices.Max(walls)
	}
	s.cpu = median(cpus)
	if len(rd) > 0 {
		s.readsPerMiB, s.writesPerMiB = median(rd), median(wr)
	}
	return s
}

// bestMedian returns the smallest median of the file-system peers (not
// the raw limit) that passed every verification; NaN if none.
func bestMedian(w *workload) float64 {
	best := math.NaN()
	for _, r := range w.res {
		if r.skipped != "" || r.peer.raw {
			continue
		}
		s := summarize(r, w.bytes)
		if s.ok() && (math.IsNaN(best) || s.med < best) {
			best = s.med
		}
	}
	return best
}

// rawMedian returns the median of the raw limit, NaN if there is none.
func rawMedian(w *workload) float64 {
	for _, r := range w.res {
		if r.peer.raw && r.skipped == "" {
			if s := summarize(r, w.bytes); s.ok() {
				return s.med
			}
		}
	}
	return math.NaN()
}

// find returns the result of the peer with the given property.
func find(w *workload, match func(*peer) bool) *peerResult {
	if w == nil {
		return nil
	}
	for _, r := range w.res {
		if match(r.peer) {
			return r
		}
	}
	return nil
}
