package ext2

// The name cache of large directories: for each directory of at least
// dcacheMinSize bytes that was searched, a map from every name in it to
// its inode number and the directory block holding its entry, so that a
// lookup (LookupInode) costs a map access rather than a walk of every
// block, and finding the entry to remove or replace (findEntryLocked:
// Unlink, Rmdir, Rename) reads one block (Linux's dentry cache plays
// this part for ext2; it holds missing names too: a name not in a
// cached directory's map is not there).
//
// A directory's map is built by one full walk of its blocks under its
// i_mutex held shared, and kept in step by the functions that change
// entries, all of which hold the directory's i_mutex exclusively:
// addLinkLocked adds the name, deleteEntryLocked removes it,
// setLinkLocked repoints it, and makeEmptyLocked and forgetBlocksLocked
// (a directory made, or going away) drop the map. A map is keyed by
// the directory's inode number, so dropping it when the directory goes
// keeps a later directory of the same number from finding it.
//
// Beside the names, a cached directory may know how much room each of its
// blocks has for a new entry (dirCache.room), so that addLinkLocked goes
// straight to the first block where the entry fits instead of walking
// every block before it (Linux ext2 walks them; so does addLinkLocked
// until it has walked the directory once). The room of a block changes
// only when an entry is added to it (addLinkLocked) or removed from it
// (deleteEntryLocked), and each of those records the block's new room;
// a block appended to the directory is recorded by addLinkLocked, the
// only function that appends one. A directory made or going away drops
// its room with its names. Nothing else changes a directory's records:
// ext2 never compacts or shrinks a directory, and setLinkLocked repoints
// an entry in place. If the recorded room is ever found wrong (the
// block has no record that fits), addLinkLocked forgets it and walks the
// directory, which records it anew.
//
// The cache is FS.dcache, made by Mount and emptied by Close. Its mu is
// a leaf, taken with the directory's i_mutex held (shared or
// exclusively) and nothing else taken under it; see the lock order in
// doc.go.

import (
	"sync"

	"github.com/mpagefs/mpage/ext2/layout"
)

const (
	// dcacheMinSize is the least directory size, in bytes, whose names
	// are cached: a smaller directory is searched as fast as a map.
	dcacheMinSize = 8 << 10
	// dcacheMaxNames bounds the names cached in all directories of one
	// filesystem; past it, other directories' maps are dropped.
	dcacheMaxNames = 1 << 20
)

// dcache is the name cache of one filesystem (FS.dcache).
type dcache struct {
	mu    sync.Mutex
	dirs  map[uint32]*dirCache // guarded by mu; by directory inode number; nil after close
	names int                  // guarded by mu; names in all maps
}

// dirCache is what the cache knows of one directory. Guarded by
// dcache.mu.
type dirCache struct {
	names map[string]dcEntry // name → where the entry is and what it names
	// room[ib] is the largest entry (layout.DirEntryLen) that fits in
	// block ib: the rec_len of its largest unused record, or the
	// largest slack after an entry's own length (ext2_add_link's two
	// tests). nil until a walk of every block has recorded it.
	room []int32
}

// dcEntry is what the cache knows of one name: the inode it names and
// the directory block that holds its entry. An entry never leaves its
// block (ext2 neither compacts nor shrinks a directory), so the block
// stays right while the name is there.
type dcEntry struct {
	ino uint32
	ib  uint32 // file block of the directory
}

// init makes the empty cache (Mount).
func (dc *dcache) init() {
	dc.dirs = map[uint32]*dirCache{}
}

// close drops every map (Close); the cache stays empty after it, so a
// lookup still running searches the blocks.
func (dc *dcache) close() {
	dc.mu.Lock()
	dc.dirs = nil
	dc.names = 0
	dc.mu.Unlock()
}

// dcacheLookupLocked looks name up in dir's map, building the map first
// for a directory large enough. ok is false when dir is not cached (the
// caller searches its blocks); otherwise ino is the inode number, 0 for
// a name that is not there.
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) dcacheLookupLocked(dir *Inode, name string) (ino uint32, ok bool, err error) {
	e, ok, err := fs.dcacheEntryLocked(dir, name)
	return e.ino, ok, err
}

// dcacheEntryLocked is dcacheLookupLocked returning the block of the
// entry too. A directory in which a name appears twice (a corrupt one)
// is not cached: removing the first entry of the name would leave the
// map without it while a walk finds the second.
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) dcacheEntryLocked(dir *Inode, name string) (e dcEntry, ok bool, err error) {
	if dir.disk.Size() < dcacheMinSize {
		return dcEntry{}, false, nil
	}
	dc := &fs.dcache
	dc.mu.Lock()
	d, ok := dc.dirs[dir.ino]
	if ok {
		e = d.names[name]
	}
	dc.mu.Unlock()
	if ok {
		return e, true, nil
	}
	m := map[string]dcEntry{}
	ib, dup := uint32(0), false
	err = fs.dirBlocksLocked(dir, func(ents []layout.DirEntry) bool {
		for _, e := range ents {
			if e.Inode == 0 {
				continue
			}
			if _, dup = m[e.Name]; dup {
				return false
			}
			m[e.Name] = dcEntry{ino: e.Inode, ib: ib}
		}
		ib++
		return true
	})
	if err != nil || dup {
		return dcEntry{}, false, err
	}
	// Writers of dir are shut out by dir.mu until the caller is done,
	// so m is still what dir holds.
	dc.mu.Lock()
	if _, built := dc.dirs[dir.ino]; !built && dc.dirs != nil {
		for other, od := range dc.dirs {
			if dc.names+len(m) <= dcacheMaxNames {
				break
			}
			dc.names -= len(od.names)
			delete(dc.dirs, other)
		}
		dc.dirs[dir.ino] = &dirCache{names: m}
		dc.names += len(m)
	}
	dc.mu.Unlock()
	return m[name], true, nil
}

// dcacheSetLocked records name → ino, in block ib, in dir's map, if it
// has one (ext2_add_link, ext2_set_link).
// Preconditions: dir.mu is held exclusively.
func (fs *FS) dcacheSetLocked(dir *Inode, name string, ino uint32, ib int64) {
	dc := &fs.dcache
	dc.mu.Lock()
	if d, ok := dc.dirs[dir.ino]; ok {
		if _, had := d.names[name]; !had {
			dc.names++
		}
		d.names[name] = dcEntry{ino: ino, ib: uint32(ib)}
	}
	dc.mu.Unlock()
}

// dcacheSetSlotLocked records that the entry in slot now holds ino.
// Preconditions: dir.mu is held exclusively; slot is an entry of dir.
func (fs *FS) dcacheSetSlotLocked(dir *Inode, slot *dirSlot, ino uint32) {
	fs.dcacheSetLocked(dir, fs.slotName(slot), ino, slot.ib)
}

// dcacheRemoveLocked drops the name of the entry in slot from dir's map
// (ext2_delete_entry).
// Preconditions: dir.mu is held exclusively; slot is an entry of dir.
func (fs *FS) dcacheRemoveLocked(dir *Inode, slot *dirSlot) {
	name := fs.slotName(slot)
	dc := &fs.dcache
	dc.mu.Lock()
	if d, ok := dc.dirs[dir.ino]; ok {
		if _, had := d.names[name]; had {
			delete(d.names, name)
			dc.names--
		}
	}
	dc.mu.Unlock()
}

// dcacheDropLocked drops dir's map: the directory is new or going away.
// Preconditions: dir.mu is held exclusively.
func (fs *FS) dcacheDropLocked(dir *Inode) {
	dc := &fs.dcache
	dc.mu.Lock()
	if d, ok := dc.dirs[dir.ino]; ok {
		dc.names -= len(d.names)
		delete(dc.dirs, dir.ino)
	}
	dc.mu.Unlock()
}

// dcacheRoomLocked returns the first block of dir, of nblocks, with room
// for an entry of need bytes, or nblocks if none has. ok is false when
// dir's room is not known (the caller walks the directory).
// Preconditions: dir.mu is held exclusively.
func (fs *FS) dcacheRoomLocked(dir *Inode, need int, nblocks int64) (ib int64, ok bool) {
	dc := &fs.dcache
	dc.mu.Lock()
	defer dc.mu.Unlock()
	d := dc.dirs[dir.ino]
	if d == nil || d.room == nil || int64(len(d.room)) != nblocks {
		return 0, false
	}
	for i, r := range d.room {
		if int(r) >= need {
			return int64(i), true
		}
	}
	return nblocks, true
}

// dcacheSetAllRoomLocked records the room of every block of dir, if dir
// has names cached.
// Preconditions: dir.mu is held exclusively; room came from a walk of
// every block under this hold of dir.mu.
func (fs *FS) dcacheSetAllRoomLocked(dir *Inode, room []int32) {
	dc := &fs.dcache
	dc.mu.Lock()
	if d := dc.dirs[dir.ino]; d != nil {
		d.room = room
	}
	dc.mu.Unlock()
}

// dcacheSetRoomLocked records the room of block ib of dir, which may be
// the block just appended. Room not known stays unknown.
// Preconditions: dir.mu is held exclusively.
func (fs *FS) dcacheSetRoomLocked(dir *Inode, ib int64, room int32) {
	dc := &fs.dcache
	dc.mu.Lock()
	if d := dc.dirs[dir.ino]; d != nil && d.room != nil {
		switch {
		case ib < int64(len(d.room)):
			d.room[ib] = room
		case ib == int64(len(d.room)):
			d.room = append(d.room, room)
		default:
			d.room = nil
		}
	}
	dc.mu.Unlock()
}

// dcacheForgetRoomLocked forgets the room of dir's blocks, found wrong.
// Preconditions: dir.mu is held exclusively.
func (fs *FS) dcacheForgetRoomLocked(dir *Inode) {
	dc := &fs.dcache
	dc.mu.Lock()
	if d := dc.dirs[dir.ino]; d != nil {
		d.room = nil
	}
	dc.mu.Unlock()
}

// slotName is the name of the entry in slot.
func (fs *FS) slotName(slot *dirSlot) string {
	slot.bh.Lock()
	defer slot.bh.Unlock()
	return string(slot.rec.Name(slot.bh.Data))
}
