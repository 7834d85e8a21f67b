package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chartBar is one bar: a peer's cost relative to the best peer of its
// group (1 = the best; larger is worse).
type chartBar struct {
	label  string
	ratio  float64 // NaN: no bar
	value  string  // the absolute number, printed beside the ratio
	ours   bool
	raw    bool
	failed bool
}

type chartGroup struct {
	title string
	bars  []chartBar
}

// chartGroups turns the results into chart groups: the time of each peer
// over the fastest file-system peer for workloads 1-3, and the best
// throughput over each peer's for the fio jobs.
func (b *bench) chartGroups() []chartGroup {
	var gs []chartGroup
	for _, w := range b.workloads {
		g := chartGroup{title: w.title}
		best := bestMedian(w)
		for _, r := range w.res {
			if r.skipped != "" {
				continue
			}
			s := summarize(r, w.bytes)
			bar := chartBar{label: r.peer.name, ours: r.peer.ours, raw: r.peer.raw, ratio: math.NaN()}
			if !s.ok() {
				bar.failed = true
			} else {
				bar.ratio = s.med / best
				bar.value = secs(s.med) + " s"
			}
			g.bars = append(g.bars, bar)
		}
		if len(g.bars) > 0 {
			gs = append(gs, g)
		}
	}
	if f := b.fio; f != nil && f.skipped == "" {
		jobs := []struct {
			title string
			get   func(fioSummary) float64
			unit  func(float64) string
		}{
			{"6. fio through FUSE: sequential 1 MiB write", func(s fioSummary) float64 { return s.write.med }, func(x float64) string { return fmt.Sprintf("%.0f MB/s", x/1e6) }},
			{"6. fio through FUSE: sequential 1 MiB read, cold", func(s fioSummary) float64 { return s.read.med }, func(x float64) string { return fmt.Sprintf("%.0f MB/s", x/1e6) }},
			{"6. fio through FUSE: random 4 KiB read", func(s fioSummary) float64 { return s.rand.med }, func(x float64) string { return fmt.Sprintf("%.0f IOPS", x) }},
		}
		for _, j := range jobs {
			g := chartGroup{title: j.title + " (best throughput ÷ peer's)"}
			best := 0.0
			for _, fp := range f.peers {
				if s := summarizeFio(fp); fp.missing == "" && s.ok {
					best = max(best, j.get(s))
				}
			}
			for _, fp := range f.peers {
				if fp.missing != "" {
					continue
				}
				s := summarizeFio(fp)
				bar := chartBar{label: fp.name, ours: fp.ours, ratio: math.NaN()}
				if !s.ok || j.get(s) <= 0 {
					bar.failed = true
				} else {
					bar.ratio = best / j.get(s)
					bar.value = j.unit(j.get(s))
				}
				g.bars = append(g.bars, bar)
			}
			if len(g.bars) > 0 {
				gs = append(gs, g)
			}
		}
	}
	return gs
}

// renderSVG draws the groups as a horizontal bar chart, by hand: no
// dependency, and it displays on GitHub and in any browser.
func renderSVG(groups []chartGroup) string {
	const (
		width   = 820
		labelW  = 190
		barMaxW = 420
		barH    = 16
		rowH    = 22
		groupH  = 30
		top     = 58
	)
	// The axis runs to the largest ratio, at least 2, at most 10; longer
	// bars are cut at the end and marked.
	axisMax := 2.0
	for _, g := range groups {
		for _, b := range g.bars {
			if !math.IsNaN(b.ratio) {
				axisMax = max(axisMax, b.ratio)
			}
		}
	}
	axisMax = math.Min(math.Ceil(axisMax), 10)
	height := top + 30
	for _, g := range groups {
		height += groupH + rowH*len(g.bars) + 8
	}
	if len(groups) == 0 {
		height += 30
	}
	x0 := float64(labelW)
	scale := float64(barMaxW) / axisMax
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	p(`<text x="10" y="22" font-size="15" font-weight="bold">mpage and its peers: cost relative to the best file-system peer</text>` + "\n")
	p(`<text x="10" y="40" fill="#555">1.00× is the best peer of the workload; shorter is better. Medians of the counted runs; raw dd is the disk's limit, not a peer.</text>` + "\n")
	if len(groups) == 0 {
		p(`<text x="10" y="%d">No results.</text>`+"\n", top+20)
	}
	y := top
	// Grid lines at whole ratios.
	gridTop, gridBottom := top, height-30
	step := 1.0
	if axisMax > 6 {
		step = 2
	}
	for r := 0.0; r <= axisMax+1e-9; r += step {
		x := x0 + r*scale
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e3e3e3"/>`+"\n", x, gridTop, x, gridBottom)
		p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#777">%g×</text>`+"\n", x, gridBottom+14, r)
	}
	one := x0 + scale
	p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#444" stroke-dasharray="4 3"/>`+"\n", one, gridTop, one, gridBottom)
	for _, g := range groups {
		y += groupH
		p(`<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y-9, html.EscapeString(g.title))
		for _, b := range g.bars {
			ty := y + barH - 4
			weight := "normal"
			if b.ours {
				weight = "bold"
			}
			p(`<text x="%d" y="%d" text-anchor="end" font-weight="%s">%s</text>`+"\n", labelW-8, ty, weight, html.EscapeString(b.label))
			if b.failed {
				p(`<text x="%.1f" y="%d" fill="#c62828" font-weight="bold">FAILED verification — no time counted</text>`+"\n", x0+4, ty)
				y += rowH
				continue
			}
			color := "#9e9e9e"
			switch {
			case b.ours:
				color = "#1565c0"
			case b.raw:
				color = "#2e7d32"
			}
			r := math.Min(b.ratio, axisMax)
			w := math.Max(r*scale, 1)
			p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, y, w, barH, color)
			label := fmt.Sprintf("%.2f× (%s)", b.ratio, b.value)
			if b.ratio > axisMax {
				label = "» " + label
			}
			p(`<text x="%.1f" y="%d" fill="#222">%s</text>`+"\n", x0+w+5, ty, html.EscapeString(label))
			y += rowH
		}
		y += 8
	}
	p("</svg>\n")
	return sb.String()
}
