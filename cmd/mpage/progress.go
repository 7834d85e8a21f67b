package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress counts bytes of long work on a bar on stderr, shown only when
// stderr is a terminal. The zero value (and a nil *progress) shows nothing.
type progress struct {
	bar *progressbar.ProgressBar
}

// stderrIsTerminal reports whether w is the process's stderr and a
// terminal.
func stderrIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && f == os.Stderr && term.IsTerminal(int(f.Fd()))
}

// wantProgress reports whether a bar would be shown for the app.
func (a *app) wantProgress() bool { return stderrIsTerminal(a.stderr) }

// newProgress starts a bar for total bytes (or an unknown total if
// total < 0), if stderr is a terminal.
func (a *app) newProgress(total int64, what string) *progress {
	if !a.wantProgress() {
		return nil
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionOnCompletion(func() {}),
	)
	return &progress{bar: bar}
}

func (p *progress) add(n int64) {
	if p != nil && p.bar != nil {
		_ = p.bar.Add64(n)
	}
}

func (p *progress) done() {
	if p != nil && p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	}
}
