package buffer

import "github.com/mpagefs/mpage/pagecache"

// ReadFullPage reads a locked page block by block through its buffer heads
// (block_read_full_page): the path fs/mpage.c takes for "confused" pages.
// The page is unlocked when all its reads are over.
func ReadFullPage(p *pagecache.Page, get GetBlock) error { panic(ErrNotImplemented) }

// WriteFullPage writes a locked page block by block through its buffer
// heads (block_write_full_page), allocating with get where needed, zeroing
// the part past end of file. It sets writeback and unlocks the page.
func WriteFullPage(p *pagecache.Page, get GetBlock, wbc *pagecache.WritebackControl) error {
	panic(ErrNotImplemented)
}
