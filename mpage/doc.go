// Package mpage builds and submits bios that carry several page-cache pages
// at once: the multi-page read and write paths of Linux 2.6.12 fs/mpage.c,
// the seed of this project (../shared/seed/fs-mpage.c.txt).
//
// Each function names the seed function it mirrors, and its body follows
// the seed's control flow so the two can be read side by side. Where later
// Linux improved on the seed (write_cache_pages in mm/page-writeback.c for
// the writepages loop, mapping_set_error in completions), the comment says
// so.
//
// A page whose blocks are not a contiguous run on one device, or that has
// buffer heads already, is "confused": it leaves the multi-page path and is
// read or written block by block through package buffer (the seed's
// block_read_full_page and the filesystem's writepage).
//
// The filesystem hands its block mapper down as a buffer.GetBlock; this
// package never imports the filesystem.
//
// Locking: a page is locked (pagecache.Page.Lock) while it is being mapped
// and added to a bio. A read page stays locked until its bio completes; a
// written page is unlocked once it is in a bio and under writeback.
// Completions run on the block layer's goroutines and only unlock pages,
// end writeback and record errors. Lock order: page lock, then the locks
// of package buffer.
package mpage
