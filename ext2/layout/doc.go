// Package layout holds the plain-data, on-disk structures of the ext2
// filesystem: the superblock, group descriptors, inodes, directory
// entries and extended attribute blocks.
//
// Every structure is laid out in the order and at the byte offsets of
// e2fsprogs lib/ext2fs/ext2_fs.h and Linux fs/ext2/ext2.h, and is decoded
// and encoded field by field with encoding/binary in little-endian order.
// There are no unsafe casts and no I/O: the package works on byte slices
// handed to it by the ext2 package, which reads and writes the blocks.
//
// Decoding keeps every byte. Fields that ext2 does not use (ext4 fields,
// reserved areas, in-inode extended attributes) are kept, either as typed
// fields or as raw byte arrays, so that Encode(Decode(b)) reproduces b
// byte for byte and a read-modify-write cycle never loses data that a
// newer tool wrote.
//
// Decoding does not judge the values it reads. Checks that protect later
// arithmetic (division by blocks per group, shifts by the log block size,
// loops over directory records) live in Superblock.Validate and in the
// parsers of variable-length structures (ParseDirBlock, ParseXattrBlock),
// which mirror the checks of Linux fs/ext2/super.c:ext2_fill_super(),
// fs/ext2/dir.c:ext2_check_page() and fs/ext2/xattr.c. Their failures are
// *CorruptError values that wrap ErrCorrupt.
//
// Hashed (dir_index, "htree") directories are read linearly, as Linux
// ext2 does: the index blocks of an htree are built to look like ordinary
// directory blocks. The root block holds "." and then ".." with a rec_len
// that covers the rest of the block (the dx_root_info and dx_entry arrays
// live inside that record), and every interior index block starts with a
// fake entry of inode 0 whose rec_len spans the whole block. A linear
// parser therefore sees valid records with nothing in them, and this
// package does not decode struct dx_root_info.
package layout
