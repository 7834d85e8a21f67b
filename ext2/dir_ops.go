package ext2

// Directory changes, mirroring Linux fs/ext2/dir.c: finding an entry
// (ext2_find_entry), adding one (ext2_add_link), removing one
// (ext2_delete_entry), repointing one (ext2_set_link), making an empty
// directory (ext2_make_empty), testing emptiness (ext2_empty_dir) and
// readdir with positions (ext2_readdir). The read-only walk, ReadDir and
// LookupIn are in dir.go.
//
// Directory blocks live in the metadata buffer cache, not in the page
// cache as in Linux: each block is found through the inode's block map
// (Inode.MapBlock, with create for a block appended to the directory)
// and read with buffer.Cache.Bread. Every walk of a block checks each
// record as ext2_check_page checks a page (layout.DecodeDirRecord) and
// goes to the end of the block, so a block is wholly checked each time
// it is used, in the same pass that searches it, and nothing in it is
// changed unless all of it passed: a corrupt block is reported, naming
// the directory inode, the device block and the byte offset of the bad
// field, and never modified. (Linux checks a page once per read from
// disk and remembers it in PageChecked; buffer.Head has no such bit.)
//
// Hashed (dir_index, htree) directories are read and changed linearly,
// as Linux ext2 does: their index lives in records of inode 0 that read
// as free space. Every change to such a directory clears its
// EXT2_INDEX_FL, so the stale index is never believed again (Linux ext2
// clears EXT2_BTREE_FL in ext2_add_link, ext2_delete_entry and
// ext2_set_link; e2fsck rebuilds the index if asked to).
//
// The functions ending in Locked expect the directory's i_mutex
// (Inode.mu) held exclusively: it keeps the entries and i_size still,
// while each block's bytes are changed under its buffer lock so that
// writeback never sees half an entry.

import (
	"errors"
	"fmt"
	"time"

	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/ext2/layout"
)

// dirSlot is a record found in a directory: its block and place, with a
// reference to the block's buffer that the finder must release
// (fs.bc.Release).
type dirSlot struct {
	ib   int64 // file block in the directory
	blk  int64 // device block
	bh   *buffer.Head
	rec  layout.DirRecord
	prev int // offset of the record before rec in the block, -1 if rec is first
}

// dirBlockCount is the number of blocks of a directory, from i_size.
// Preconditions: dir.mu is held.
func (fs *FS) dirBlockCount(dir *Inode) int64 {
	return int64(dir.disk.Size()) >> fs.blockBits
}

// readDirBlockLocked reads block ib of directory dir (ext2_get_page).
// It returns the buffer with a reference and the device block. A hole is
// corruption. The records are not checked: callers walk them with
// layout.DecodeDirRecord, which checks each one (ext2_check_page's
// checks), and act on the block only after the whole block passed.
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) readDirBlockLocked(dir *Inode, ib int64) (*buffer.Head, int64, error) {
	blk, _, err := dir.MapBlock(ib, false)
	if err != nil {
		return nil, 0, err
	}
	if blk == 0 {
		return nil, 0, fs.corrupt(where{ino: dir.ino, group: int64(dir.group), block: -1, offset: -1}, nil,
			"directory block %d (byte %d of the directory) is a hole", ib, ib<<fs.blockBits)
	}
	bh, err := fs.bc.Bread(blk)
	if err != nil {
		return nil, 0, fmt.Errorf("ext2: directory inode %d: reading block %d: %w", dir.ino, blk, err)
	}
	return bh, blk, nil
}

// dirCorrupt reports a bad record found in block ib (device block blk)
// of directory dir: the cause is the *layout.CorruptError, whose offset
// within the block becomes a device byte offset.
func (fs *FS) dirCorrupt(dir *Inode, ib, blk int64, cause error) error {
	w := where{ino: dir.ino, group: int64(dir.group), block: blk, offset: -1}
	inBlock := int64(-1)
	var ce *layout.CorruptError
	if errors.As(cause, &ce) {
		inBlock = ce.Offset
		w.offset = blk*int64(fs.blockSize) + ce.Offset
	}
	return fs.corrupt(w, cause, "bad entry in directory block %d at byte %d of the block", ib, inBlock)
}

// checkedDirBlockLocked reads block ib of directory dir and checks all
// of it (ext2_get_page with ext2_check_page).
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) checkedDirBlockLocked(dir *Inode, ib int64) (*buffer.Head, int64, error) {
	bh, blk, err := fs.readDirBlockLocked(dir, ib)
	if err != nil {
		return nil, 0, err
	}
	bh.Lock()
	err = layout.CheckDirBlock(bh.Data, fs.filetype, fs.inodesCount)
	bh.Unlock()
	if err != nil {
		fs.bc.Release(bh)
		return nil, 0, fs.dirCorrupt(dir, ib, blk, err)
	}
	return bh, blk, nil
}

// walkRecords decodes, and so checks, every record of a directory block
// in order (ext2_check_page's checks, in the pass that uses the block),
// calling visit with each; it stops at the first bad record and returns
// its error (a *layout.CorruptError for dirCorrupt).
// Preconditions: the buffer holding data is locked.
func (fs *FS) walkRecords(data []byte, visit func(rec layout.DirRecord)) error {
	var rec layout.DirRecord
	var err error
	for off := 0; off < len(data); off += rec.RecLen {
		if rec, err = layout.DecodeDirRecord(data, off, fs.filetype, fs.inodesCount); err != nil {
			return err
		}
		visit(rec)
	}
	return nil
}

// findEntryLocked looks for name in directory dir, mirroring
// fs/ext2/dir.c:ext2_find_entry() (a linear scan of every block, hashed
// directories included). It returns nil when name is not there. In a
// directory with a name cache (dcache.go) the cache answers instead: a
// name it does not hold is not there, and the entry of one it holds is
// in the block it records, the only block read (Unlink, Rmdir and
// Rename's lookups in a large directory). Should that block not hold
// the name after all, the directory's cache is dropped and every block
// walked.
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) findEntryLocked(dir *Inode, name string) (*dirSlot, error) {
	n := fs.dirBlockCount(dir)
	e, cached, err := fs.dcacheEntryLocked(dir, name)
	if err != nil {
		return nil, err
	}
	if cached {
		if e.ino == 0 {
			return nil, nil
		}
		if int64(e.ib) < n {
			slot, err := fs.findInBlockLocked(dir, int64(e.ib), name)
			if err != nil || (slot != nil && slot.rec.Inode == e.ino) {
				return slot, err
			}
			fs.releaseSlot(slot)
		}
		// The cache is wrong about dir: forget it and walk. A shared
		// hold of dir.mu shuts out its writers, the only ones that
		// change its map, so dropping it here races with nobody.
		fs.dcacheDropLocked(dir)
	}
	for ib := int64(0); ib < n; ib++ {
		slot, err := fs.findInBlockLocked(dir, ib, name)
		if err != nil || slot != nil {
			return slot, err
		}
	}
	return nil, nil
}

// findInBlockLocked looks for name in block ib of directory dir, checking
// the whole block; nil when it is not there.
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) findInBlockLocked(dir *Inode, ib int64, name string) (*dirSlot, error) {
	bh, blk, err := fs.readDirBlockLocked(dir, ib)
	if err != nil {
		return nil, err
	}
	var slot *dirSlot
	prev := -1
	bh.Lock()
	data := bh.Data
	derr := fs.walkRecords(data, func(rec layout.DirRecord) {
		if slot == nil && rec.Inode != 0 && rec.NameLen == len(name) && string(rec.Name(data)) == name {
			slot = &dirSlot{ib: ib, blk: blk, bh: bh, rec: rec, prev: prev}
		}
		prev = rec.Offset
	})
	bh.Unlock()
	if derr != nil {
		fs.bc.Release(bh)
		return nil, fs.dirCorrupt(dir, ib, blk, derr)
	}
	if slot == nil {
		fs.bc.Release(bh)
	}
	return slot, nil
}

// release drops the slot's buffer reference.
func (fs *FS) releaseSlot(s *dirSlot) {
	if s != nil && s.bh != nil {
		fs.bc.Release(s.bh)
		s.bh = nil
	}
}

// encodeDirEntry writes one whole entry header and name at b[off:].
// Preconditions: the buffer holding b is locked; the arguments are valid
// (checked names, rec_len inside the block).
func (fs *FS) encodeDirEntry(b []byte, off int, ino uint32, recLen int, ft uint8, name string) {
	if !fs.filetype {
		ft = layout.FtUnknown
	}
	e := layout.DirEntry{Inode: ino, RecLen: recLen, FileType: ft, Name: name}
	if err := e.Encode(b[off:off+recLen], fs.filetype); err != nil {
		// Only reachable through a bug in this file: the callers
		// computed recLen from a checked block.
		panic(fmt.Sprintf("ext2: encoding directory entry %q at %d: %v", name, off, err))
	}
}

// dirChangedLocked notes a change to directory dir's entries, as
// ext2_add_link, ext2_delete_entry and ext2_set_link do: mtime and ctime
// become now, EXT2_INDEX_FL (EXT2_BTREE_FL) is cleared since the hash
// index no longer describes the entries, and newSize, if not 0, becomes
// i_size.
// Preconditions: dir.mu is held exclusively.
func (dir *Inode) dirChangedLocked(now time.Time, newSize uint64) {
	dir.UpdateLocked(func(d *layout.Inode) {
		setTimes(d, now, "mc")
		d.Flags &^= layout.FlIndex
		if newSize != 0 {
			d.SetSize(newSize)
		}
	})
}

// recordRoom is the largest entry that fits in record rec: all its
// rec_len if unused, else the slack after its own entry (ext2_add_link's
// two tests).
func recordRoom(rec layout.DirRecord) int {
	if rec.Inode == 0 {
		return rec.RecLen
	}
	return rec.RecLen - rec.Used()
}

// fits reports whether an entry of need bytes fits in record rec.
func fits(rec layout.DirRecord, need int) bool { return recordRoom(rec) >= need }

// blockRoom is the largest entry that fits in a directory block: the
// largest recordRoom of its records.
// Preconditions: the buffer holding data is locked; data passed the
// record checks.
func (fs *FS) blockRoom(data []byte) int32 {
	room := 0
	fs.walkRecords(data, func(rec layout.DirRecord) { room = max(room, recordRoom(rec)) })
	return int32(room)
}

// addLinkLocked adds the entry name → ino (of mode mode) to directory
// dir, mirroring fs/ext2/dir.c:ext2_add_link(): the first record that is
// unused and large enough, or whose slack after its own entry is large
// enough (the record is split), takes it; otherwise a new block is
// appended to the directory. The file type is recorded when the
// filesystem has the filetype feature. An existing name is refused with
// ErrExist (Linux relies on the dentry cache for that).
//
// A directory whose names are cached (dcache.go) is looked up there, and
// once its blocks' room is known too, only the first block with room for
// the entry is read: the entry lands in the same record as with a walk.
// Otherwise every block is walked, checking for the name and noting each
// block's room for the cache.
// Preconditions: dir.mu is held exclusively; name passed checkName.
func (fs *FS) addLinkLocked(dir *Inode, name string, ino uint32, mode uint16) error {
	need := layout.DirEntryLen(len(name))
	n := fs.dirBlockCount(dir)
	var slot *dirSlot
	defer func() { fs.releaseSlot(slot) }()
	known := false // slot (nil: append) is the first place with room
	got, cached, err := fs.dcacheLookupLocked(dir, name)
	if err != nil {
		return err
	}
	if cached && got != 0 {
		return fmt.Errorf("%w: %q in directory inode %d", ErrExist, name, dir.ino)
	}
	if cached {
		if ib, ok := fs.dcacheRoomLocked(dir, need, n); ok {
			if ib < n {
				if slot, err = fs.roomInBlockLocked(dir, ib, need); err != nil {
					return err
				}
			}
			known = ib == n || slot != nil
			if !known {
				fs.dcacheForgetRoomLocked(dir) // wrong: walk and record it anew
			}
		}
	}
	if !known {
		var err error
		if slot, err = fs.scanForRoomLocked(dir, name, need, n); err != nil {
			return err
		}
	}
	now := time.Now()
	ft := layout.FileTypeFromMode(mode)
	if slot != nil {
		bh, rec := slot.bh, slot.rec
		bh.Lock()
		off, recLen := rec.Offset, rec.RecLen
		if rec.Inode != 0 {
			// Split: the existing entry keeps what it uses, the new
			// one takes the slack.
			used := rec.Used()
			fs.encodeDirEntry(bh.Data, off, rec.Inode, used, rec.FileType, string(rec.Name(bh.Data)))
			off, recLen = off+used, recLen-used
		}
		fs.encodeDirEntry(bh.Data, off, ino, recLen, ft, name)
		room := fs.blockRoom(bh.Data)
		bh.Unlock()
		fs.bc.MarkDirty(bh)
		dir.dirChangedLocked(now, 0)
		fs.dcacheSetLocked(dir, name, ino, slot.ib)
		fs.dcacheSetRoomLocked(dir, slot.ib, room)
		return nil
	}
	// No room: append a block holding the one entry.
	blk, _, err := dir.MapBlock(n, true)
	if err != nil {
		return err
	}
	fs.fillNewBlock(blk, func(b []byte) { fs.encodeDirEntry(b, 0, ino, fs.blockSize, ft, name) })
	dir.dirChangedLocked(now, uint64(n+1)<<fs.blockBits)
	fs.dcacheSetLocked(dir, name, ino, n)
	fs.dcacheSetRoomLocked(dir, n, int32(fs.blockSize-need))
	return nil
}

// roomInBlockLocked returns the first record of block ib of dir with room
// for an entry of need bytes, checking the whole block, or nil if none
// has room.
// Preconditions: dir.mu is held exclusively.
func (fs *FS) roomInBlockLocked(dir *Inode, ib int64, need int) (*dirSlot, error) {
	bh, blk, err := fs.readDirBlockLocked(dir, ib)
	if err != nil {
		return nil, err
	}
	var found *dirSlot
	bh.Lock()
	derr := fs.walkRecords(bh.Data, func(rec layout.DirRecord) {
		if found == nil && fits(rec, need) {
			found = &dirSlot{ib: ib, blk: blk, bh: bh, rec: rec}
		}
	})
	bh.Unlock()
	if derr != nil || found == nil {
		fs.bc.Release(bh)
		if derr != nil {
			return nil, fs.dirCorrupt(dir, ib, blk, derr)
		}
	}
	return found, nil
}

// scanForRoomLocked walks every block of dir, of n, for ext2_add_link:
// it returns the first record with room for an entry of need bytes (nil:
// none, append a block), refuses name if it is there (ErrExist), and
// records each block's room in the name cache.
// Preconditions: dir.mu is held exclusively.
func (fs *FS) scanForRoomLocked(dir *Inode, name string, need int, n int64) (*dirSlot, error) {
	var slot *dirSlot
	room := make([]int32, n)
	for ib := int64(0); ib < n; ib++ {
		bh, blk, err := fs.readDirBlockLocked(dir, ib)
		if err != nil {
			fs.releaseSlot(slot)
			return nil, err
		}
		exists := false
		var found *dirSlot
		bh.Lock()
		data := bh.Data
		derr := fs.walkRecords(data, func(rec layout.DirRecord) {
			if rec.Inode != 0 && rec.NameLen == len(name) && string(rec.Name(data)) == name {
				exists = true
			}
			if slot == nil && found == nil && fits(rec, need) {
				found = &dirSlot{ib: ib, blk: blk, bh: bh, rec: rec}
			}
			room[ib] = max(room[ib], int32(recordRoom(rec)))
		})
		bh.Unlock()
		if derr != nil {
			fs.bc.Release(bh)
			fs.releaseSlot(slot)
			return nil, fs.dirCorrupt(dir, ib, blk, derr)
		}
		if slot == nil {
			slot = found // only now: the whole block passed the checks
		}
		if slot == nil || slot.bh != bh {
			fs.bc.Release(bh)
		}
		if exists {
			fs.releaseSlot(slot)
			return nil, fmt.Errorf("%w: %q in directory inode %d", ErrExist, name, dir.ino)
		}
	}
	fs.dcacheSetAllRoomLocked(dir, room)
	return slot, nil
}

// deleteEntryLocked removes the entry in slot from directory dir,
// mirroring fs/ext2/dir.c:ext2_delete_entry(): the record joins the one
// before it in the block, or, first in its block, keeps its place with
// inode 0. The slot's buffer is released.
// Preconditions: dir.mu is held exclusively; slot came from
// findEntryLocked on dir under the same hold of dir.mu.
func (fs *FS) deleteEntryLocked(dir *Inode, slot *dirSlot) {
	fs.dcacheRemoveLocked(dir, slot)
	bh, rec := slot.bh, slot.rec
	bh.Lock()
	if slot.prev >= 0 {
		p := layout.DirRecordAt(bh.Data, slot.prev, fs.filetype)
		fs.encodeDirEntry(bh.Data, p.Offset, p.Inode, p.RecLen+rec.RecLen, p.FileType, string(p.Name(bh.Data)))
	}
	// Linux zeroes the inode of the removed record in both cases.
	fs.encodeDirEntry(bh.Data, rec.Offset, 0, rec.RecLen, rec.FileType, string(rec.Name(bh.Data)))
	room := fs.blockRoom(bh.Data)
	bh.Unlock()
	fs.bc.MarkDirty(bh)
	fs.dcacheSetRoomLocked(dir, slot.ib, room)
	fs.releaseSlot(slot)
	dir.dirChangedLocked(time.Now(), 0)
}

// setLinkLocked points the entry in slot at inode ino of mode mode,
// mirroring fs/ext2/dir.c:ext2_set_link() (rename over an existing name,
// and ".." of a directory moved elsewhere). The slot's buffer is
// released.
// Preconditions: dir.mu is held exclusively; slot came from dir under
// the same hold of dir.mu.
func (fs *FS) setLinkLocked(dir *Inode, slot *dirSlot, ino uint32, mode uint16) {
	fs.dcacheSetSlotLocked(dir, slot, ino)
	bh, rec := slot.bh, slot.rec
	bh.Lock()
	fs.encodeDirEntry(bh.Data, rec.Offset, ino, rec.RecLen, layout.FileTypeFromMode(mode), string(rec.Name(bh.Data)))
	bh.Unlock()
	fs.bc.MarkDirty(bh)
	fs.releaseSlot(slot)
	dir.dirChangedLocked(time.Now(), 0)
}

// fillNewBlock writes the contents of a block just allocated: its
// buffer is zeroed rather than read (the old bytes on disk mean
// nothing), filled by fill under the buffer lock, and marked up to date
// and dirty.
func (fs *FS) fillNewBlock(blk int64, fill func(b []byte)) {
	bh := fs.bc.Getblk(blk)
	bh.Lock()
	clear(bh.Data)
	fill(bh.Data)
	bh.Set(buffer.Uptodate)
	bh.Unlock()
	fs.bc.MarkDirty(bh)
	fs.bc.Release(bh)
}

// makeEmptyLocked gives the new directory dir its first block with "."
// (itself) and ".." (parent), mirroring fs/ext2/dir.c:ext2_make_empty():
// "." takes 12 bytes and ".." the rest of the block. i_size becomes one
// block.
// Preconditions: dir.mu is held exclusively; dir has no blocks yet.
func (fs *FS) makeEmptyLocked(dir *Inode, parent uint32) error {
	fs.dcacheDropLocked(dir)
	blk, _, err := dir.MapBlock(0, true)
	if err != nil {
		return err
	}
	fs.fillNewBlock(blk, func(b []byte) {
		dot := layout.DirEntryLen(1)
		fs.encodeDirEntry(b, 0, dir.ino, dot, layout.FtDir, ".")
		fs.encodeDirEntry(b, dot, parent, fs.blockSize-dot, layout.FtDir, "..")
	})
	dir.UpdateLocked(func(d *layout.Inode) { d.SetSize(uint64(fs.blockSize)) })
	return nil
}

// emptyDirLocked reports whether directory dir holds nothing but "." and
// "..", mirroring fs/ext2/dir.c:ext2_empty_dir(). A "." that does not
// point at dir itself counts as an entry, as in Linux.
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) emptyDirLocked(dir *Inode) (bool, error) {
	n := fs.dirBlockCount(dir)
	for ib := int64(0); ib < n; ib++ {
		bh, blk, err := fs.readDirBlockLocked(dir, ib)
		if err != nil {
			return false, err
		}
		empty := true
		bh.Lock()
		data := bh.Data
		derr := fs.walkRecords(data, func(rec layout.DirRecord) {
			if rec.Inode == 0 {
				return
			}
			switch string(rec.Name(data)) {
			case ".":
				empty = rec.Inode == dir.ino
			case "..":
			default:
				empty = false
			}
		})
		bh.Unlock()
		fs.bc.Release(bh)
		if derr != nil {
			return false, fs.dirCorrupt(dir, ib, blk, derr)
		}
		if !empty {
			return false, nil
		}
	}
	return true, nil
}

// dotdotLocked finds the ".." entry of directory dir, the second record
// of its first block, mirroring fs/ext2/dir.c:ext2_dotdot(). A directory
// whose first block does not start with "." and ".." is corrupt.
// Preconditions: dir.mu is held exclusively.
func (fs *FS) dotdotLocked(dir *Inode) (*dirSlot, error) {
	bad := func(blk int64, format string, args ...any) error {
		w := where{ino: dir.ino, group: int64(dir.group), block: blk, offset: -1}
		if blk > 0 {
			w.offset = blk * int64(fs.blockSize)
		}
		return fs.corrupt(w, nil, format, args...)
	}
	if fs.dirBlockCount(dir) == 0 {
		return nil, bad(-1, "directory has no blocks, so no \"..\"")
	}
	bh, blk, err := fs.checkedDirBlockLocked(dir, 0)
	if err != nil {
		return nil, err
	}
	bh.Lock()
	first := layout.DirRecordAt(bh.Data, 0, fs.filetype)
	var second layout.DirRecord
	ok := first.RecLen < len(bh.Data) && string(first.Name(bh.Data)) == "."
	if ok {
		second = layout.DirRecordAt(bh.Data, first.RecLen, fs.filetype)
		ok = second.Inode != 0 && string(second.Name(bh.Data)) == ".."
	}
	bh.Unlock()
	if !ok {
		fs.bc.Release(bh)
		return nil, bad(blk, "first block does not start with \".\" and \"..\"")
	}
	return &dirSlot{ib: 0, blk: blk, bh: bh, rec: second, prev: 0}, nil
}

// forgetBlocksLocked drops the cached, possibly dirty, blocks of a
// directory that is going away: nothing will read them again and they
// are freed when its last reference goes (bforget).
// Preconditions: dir.mu is held exclusively.
func (fs *FS) forgetBlocksLocked(dir *Inode) {
	fs.dcacheDropLocked(dir)
	n := fs.dirBlockCount(dir)
	for ib := int64(0); ib < n; ib++ {
		if blk, _, err := dir.MapBlock(ib, false); err == nil && blk != 0 {
			fs.bc.Forget(blk)
		}
	}
}

// DirEntryAt is a directory entry with its position: the byte offset of
// its record in the directory, the readdir cookie of ext2_readdir.
type DirEntryAt struct {
	DirEntry
	Off int64
}

// ReadDirFrom returns up to max entries (all when max <= 0) of directory
// dir from position pos on, "." and ".." included, and the position to
// continue from, mirroring fs/ext2/dir.c:ext2_readdir(). Positions are
// byte offsets in the directory and stay valid while entries come and
// go: a position that no longer starts a record (the record was merged
// into its predecessor) continues at the next record that starts after
// it, as ext2_validate_entry does. At the end the position is i_size.
// Each call updates the directory's atime as Options.Atime says.
func (fs *FS) ReadDirFrom(dir *Inode, pos int64, max int) ([]DirEntryAt, int64, error) {
	if !dir.IsDir() {
		return nil, pos, ErrNotDir
	}
	if pos < 0 {
		return nil, pos, ErrInvalid
	}
	defer dir.accessed() // iterate_dir's file_accessed, once unlocked
	dir.mu.RLock()
	defer dir.mu.RUnlock()
	var out []DirEntryAt
	size := int64(dir.disk.Size())
	bs := int64(fs.blockSize)
	for pos < size {
		ib := pos >> fs.blockBits
		bh, blk, err := fs.readDirBlockLocked(dir, ib)
		if err != nil {
			return out, pos, err
		}
		base := ib << fs.blockBits
		full := false
		had := len(out)
		bh.Lock()
		data := bh.Data
		derr := fs.walkRecords(data, func(rec layout.DirRecord) {
			at := base + int64(rec.Offset)
			switch {
			case at < pos:
			case max > 0 && len(out) >= max:
				if !full { // the rest of the block is still checked
					pos = at
					full = true
				}
			case rec.Inode != 0:
				out = append(out, DirEntryAt{
					DirEntry: DirEntry{Name: string(rec.Name(data)), Ino: rec.Inode, Type: rec.FileType},
					Off:      at,
				})
			}
		})
		bh.Unlock()
		fs.bc.Release(bh)
		if derr != nil {
			return out[:had], pos, fs.dirCorrupt(dir, ib, blk, derr)
		}
		if full {
			return out, pos, nil
		}
		pos = base + bs
	}
	return out, size, nil
}
