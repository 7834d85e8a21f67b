package mpage

import (
	"testing"

	"github.com/mpagefs/mpage/pagecache"
)

// TestReadPageIssuedBySubmitter: the one bio of ReadPage is Polled, so on
// an idle queue its reader makes the device call itself and the page is
// uptodate and unlocked when ReadPage returns; ReadPages' bios (readahead,
// which nobody waits for at once) go to the queue's workers.
func TestReadPageIssuedBySubmitter(t *testing.T) {
	for _, bsz := range blockSizes {
		t.Run(bsz.name, func(t *testing.T) {
			e := newEnv(t, bsz.bits)
			bpp := e.bpp()
			e.m.SetSize(4 * pagecache.PageSize)
			e.mp.set(0, 4*bpp, 40)

			p := e.newPages(0)[0]
			if err := e.m.AddPage(p); err != nil {
				t.Fatalf("AddPage: %v", err)
			}
			if err := ReadPage(p, e.mp.get); err != nil {
				t.Fatalf("ReadPage: got %v, want nil", err)
			}
			// No waiting: the read is over when ReadPage returns.
			wantPage(t, p, up|mtd, locked|perr, e.pageOf(run(40, bpp)...))
			if got := e.q.Stats().PolledCalls; got != 1 {
				t.Errorf("device calls made by ReadPage's caller: got %d, want 1", got)
			}

			pages := e.newPages(1, 2, 3)
			if err := ReadPages(e.m, pages, e.mp.get); err != nil {
				t.Fatalf("ReadPages: got %v, want nil", err)
			}
			e.waitIO()
			e.checkTrace(e.rd(40, bpp), e.rd(40+bpp, 3*bpp))
			if got := e.q.Stats().PolledCalls; got != 1 {
				t.Errorf("device calls made by callers after ReadPages: got %d, want still 1", got)
			}
		})
	}
}
