// Package ext2 is the ext2 filesystem on top of the buffered block I/O
// stack: mount and unmount, the inode cache, block and inode allocation,
// the block map (the get_block function handed down to package mpage),
// truncate, file handles and read-only directory lookup.
//
// It mirrors Linux fs/ext2 (super.c, inode.c, balloc.c, ialloc.c, file.c,
// dir.c, namei.c) as it uses fs/mpage.c: each regular file's data lives in
// a pagecache.Mapping whose operations are ext2's address_space_operations
// (ReadPage/ReadPages through mpage, WritePage through the buffer layer,
// WritePages through mpage, block allocation at write_begin time), and all
// metadata (superblock, group descriptors, bitmaps, inode tables, indirect
// blocks, directory and symlink blocks) goes through the metadata
// buffer.Cache.
//
// Directory and slow-symlink blocks use the buffer cache rather than the
// page cache (Linux ext2 keeps directories in the page cache): directory
// blocks are metadata-sized, are read and modified a block at a time, and
// the buffer cache gives the directory layer one block-sized buffer with
// its own lock, found through Inode.MapBlock.
//
// On-disk bytes are decoded and encoded by package layout only.
//
// # Lock order
//
//	FS.syncMu (Sync, Close)
//	  → directory Inode.mu → child Inode.mu        (i_mutex)
//	    → page lock (pagecache)
//	      → Inode.tree                              (truncate_mutex, i_meta_lock)
//	        → FS.rsv.mu                             (reservation windows)
//	          → group.mu                            (sb_bgl_lock: bitmaps, descriptor counts)
//	            → FS.sbMu                           (the in-memory superblock, error state)
//	              → buffer lock (buffer.Head.Lock)
//	FS.dcache.mu (the name cache of large directories) is a leaf taken
//	under the directory's Inode.mu (shared or exclusive): nothing is
//	taken while it is held.
//	FS.icache is a leaf: nothing else is taken while it is held. No
//	corruption is reported (FS.corrupt takes FS.sbMu) with a buffer lock
//	held.
//
// get_block (Inode.getBlock) is called with a page locked, by readers and
// by writeback; it takes Inode.tree and never Inode.mu.
//
// # Differences from Linux ext2
//
// Reads update atime as Linux's VFS does (relatime by default,
// Options.Atime; atime.go), without lazytime. Blocks reserved for
// root (s_r_blocks_count) are not held back: the caller is taken to be
// root. The initial allocation goal of a directory or symlink is its
// group's first block, that of a regular file 1/16 into the group, where
// Linux colours both by the writer's pid (the same for every file one
// process writes). Reservation windows are kept
// in a sorted slice rather than a red-black tree and do not grow in
// place (try_to_extend_reservation). Unused inodes are evicted, least
// recently used first, when the inode cache passes
// Options.InodeCacheLimit (Linux evicts them under memory pressure).
// Finding corruption never panics: errors=panic acts as errors=remount-ro.
package ext2
