package ext2

import (
	"errors"

	"github.com/mpagefs/mpage/writeback"
)

// Helpers for package ext2fs (the public API), kept apart from the core
// files.

// Append writes p at the end of the file and returns the offset it was
// written at. The end of file is found under the inode lock that
// serialises writers, so appends from several handles each land whole
// and never overlap (O_APPEND: generic_write_checks with IOCB_APPEND
// reading i_size under inode_lock). Otherwise it behaves as WriteAt.
func (f *File) Append(p []byte) (off int64, n int, err error) {
	if err := f.checkWrite(); err != nil {
		return 0, 0, err
	}
	ino := f.ino
	ino.mu.Lock()
	defer ino.mu.Unlock()
	off = ino.m.Size()
	if len(p) == 0 {
		return off, 0, nil
	}
	n, err = f.writeLocked(p, off)
	return off, n, err
}

// Writable reports whether the handle was opened for writing.
func (f *File) Writable() bool { return f.writable }

// SyncInode makes an inode durable as fsync does for a directory, a
// symbolic link or a special file (ext2_fsync → generic_file_fsync:
// sync_inode_metadata, sync_mapping_buffers, then a device flush): the
// inode is written to its inode table block, and the dirty metadata
// blocks are written (a directory's blocks, and the indirect blocks that
// map them, live in the buffer cache; like File.Sync this writes every
// dirty metadata block, bitmaps and group descriptors included, where
// Linux writes those associated with the inode), then the device is
// flushed. The file data of other inodes is
// not written, nor are other inodes: to make a new name durable, sync
// the file it names too. For a regular file, its dirty pages are written
// and waited for first; File.Sync also reports writeback errors.
func (fs *FS) SyncInode(ino *Inode) error {
	if fs.closed.Load() {
		return ErrClosed
	}
	if !fs.writableAtMount() {
		return nil
	}
	var errs []error
	if ino.m != nil {
		if err := writeback.WriteAndWait(ino.m); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, fs.syncMetadata(ino))
	return errors.Join(errs...)
}

// syncMetadata is the metadata part of fsync, for File.Sync and
// SyncInode (generic_file_fsync after the data: sync_inode_metadata,
// sync_mapping_buffers, blkdev_issue_flush): ino is written to its inode
// table block, the group descriptors are encoded into their blocks, every
// dirty metadata block is written, and the device is flushed.
//
// Linux ext2 writes less: the inode and the buffers tied to it (its
// indirect blocks; a directory's pages), while the bitmaps and the group
// descriptors, dirtied at each allocation, reach the disk later with the
// block device's writeback. A crash right after an fsync that allocated
// leaves e2fsck -fn reporting block and inode bitmap differences and
// wrong group counts, errors (exit 4) that every e2fsck run after a crash
// of ext2 fixes. The buffer cache here has no per-inode list, so the
// dirty bitmaps are written with the rest; written without their group
// descriptors they would leave the group counts wrong, so the
// descriptors are written too (a few blocks), and a crash right after
// the fsync leaves an image that e2fsck -fn finds clean. The
// superblock's free counts are left as they were: e2fsck -fn reports a
// stale one but does not count it as an error (its pass 5 leaves the
// filesystem valid when that fix is declined, since the kernel writes
// the summary only at sync_fs and unmount; the test
// TestFollowupFileSyncCrash sees exit 0 with those lines).
// Preconditions: the filesystem was mounted writable.
func (fs *FS) syncMetadata(ino *Inode) error {
	var errs []error
	if err := ino.writeInode(); err != nil {
		errs = append(errs, err)
	}
	if err := fs.writeDescriptors(); err != nil {
		errs = append(errs, err)
	}
	if err := fs.bc.Sync(); err != nil {
		errs = append(errs, err)
	}
	if err := fs.q.Flush(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
