package pagecache

// DirtyMappings appends to dst the mappings of the cache that have dirty
// pages and returns the extended slice, in no particular order: the
// inodes on the bdi's dirty lists (b_dirty) that a flusher walks instead
// of every inode it knows. The set is a snapshot taken under the cache's
// lock; a mapping may get or lose dirty pages as soon as it is returned.
func (c *Cache) DirtyMappings(dst []*Mapping) []*Mapping {
	c.mu.Lock()
	defer c.mu.Unlock()
	for m := range c.dirtyMappings {
		dst = append(dst, m)
	}
	return dst
}
