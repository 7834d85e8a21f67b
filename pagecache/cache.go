package pagecache

import "sync"

// Config sets the limits of a Cache. Zero values take the defaults.
type Config struct {
	// Limit is the most memory, in bytes, that cached pages may use.
	// Default 256 MiB.
	Limit int64
}

// Cache is the memory all mappings' pages share: an LRU of pages and the
// dirty count that throttles writers.
type Cache struct {
	limit int64 // never changes

	mu      sync.Mutex // guards the fields below
	nrPages int64
	nrDirty int64
	lruHead Page // sentinel of the LRU list: lruHead.lruNext is the oldest
}

// NewCache makes a page cache.
func NewCache(cfg Config) *Cache {
	if cfg.Limit <= 0 {
		cfg.Limit = 256 << 20
	}
	c := &Cache{limit: cfg.Limit}
	c.lruHead.lruNext = &c.lruHead
	c.lruHead.lruPrev = &c.lruHead
	return c
}

// Limit is the cache's memory limit in bytes.
func (c *Cache) Limit() int64 { return c.limit }

// Stats are the cache's counters.
type Stats struct {
	Pages, Dirty int64
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Pages: c.nrPages, Dirty: c.nrDirty}
}

func (c *Cache) reserve() {
	c.mu.Lock()
	c.nrPages++
	c.mu.Unlock()
}

func (c *Cache) unreserve() {
	c.mu.Lock()
	c.nrPages--
	c.mu.Unlock()
}

func (c *Cache) accountDirty(n int64) {
	c.mu.Lock()
	c.nrDirty += n
	c.mu.Unlock()
}

func (c *Cache) addLRU(p *Page) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.onLRU {
		return
	}
	p.onLRU = true
	p.lruPrev = c.lruHead.lruPrev
	p.lruNext = &c.lruHead
	c.lruHead.lruPrev.lruNext = p
	c.lruHead.lruPrev = p
}

func (c *Cache) removeLRU(p *Page) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !p.onLRU {
		return
	}
	p.lruPrev.lruNext = p.lruNext
	p.lruNext.lruPrev = p.lruPrev
	p.lruPrev, p.lruNext, p.onLRU = nil, nil, false
	c.nrPages--
}

func (c *Cache) touch(p *Page) { p.set(Referenced) }
