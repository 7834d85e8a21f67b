// Package flat is a TEST VEHICLE, internal to this module: the smallest
// filesystem that drives the whole I/O stack (block, pagecache, buffer,
// mpage, writeback) the way ext2 does, without ext2's on-disk format.
// It exists for integration tests and benchmarks of that stack; it is not
// a filesystem anyone should keep data in.
//
// A flat filesystem is a fixed set of named files laid out on one
// block.Device. Each file owns a list of extents of device blocks (one
// extent for a linear file); file block i is the i-th block of the
// concatenated extents. Nothing is stored on the device but file data:
// names, extents and sizes live in memory (Config), so a filesystem is
// "mounted" again by calling New with the same Config.
//
// Block allocation is modelled so that the page I/O paths see what they
// see on ext2: a file block is allocated the first time it is written
// (get_block with create sets buffer.New) and freed by truncation, and an
// unallocated block reads as a hole (zeroes). Blocks under FileSpec.Size
// start out allocated, so a file can be opened over data already on the
// device.
//
// The address-space operations are ext2's (fs/ext2/inode.c:ext2_aops):
//
//	ReadPage   → mpage.ReadPage
//	ReadPages  → mpage.ReadPages
//	WritePage  → buffer.WriteFullPage
//	WritePages → mpage.WritePages (falling back to WritePage)
//	WriteBegin → buffer.BlockWriteBegin
//
// all with the file's block mapper (inode.getBlock, the get_block_t).
//
// Handles (File) follow Linux's file semantics for writeback errors: each
// handle samples the mapping's errseq when it is opened and File.Sync
// reports a writeback error once to every handle that was open when it
// happened (vfs_fsync → file_write_and_wait_range →
// file_check_and_advance_wb_err).
//
// Unlike Linux, which serialises writers of one file under i_rwsem,
// writers of one file run in parallel here (the page cache keeps itself
// consistent; callers wanting POSIX ordering must order their writes), so
// that tests can load the page cache from several goroutines at once.
// Truncation excludes writers of its file.
//
// Lock order: inode.rw (held shared by writers, exclusively by Truncate)
// → the page locks and locks of the packages below → inode.allocMu (a
// leaf, taken inside get_block). FS.mu is a leaf.
package flat
