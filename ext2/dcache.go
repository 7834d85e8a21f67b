package ext2

// The name cache of large directories: for each directory of at least
// dcacheMinSize bytes that was searched, a map from every name in it to
// its inode number, so that a lookup (LookupInode) costs a map access
// rather than a walk of every block (Linux's dentry cache plays this part
// for ext2; here only the lookups of LookupInode use it, and it holds
// missing names too: a name not in a cached directory's map is not
// there).
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
	dirs  map[uint32]map[string]uint32 // guarded by mu; directory inode number → name → inode number; nil after close
	names int                          // guarded by mu; names in all maps
}

// init makes the empty cache (Mount).
func (dc *dcache) init() {
	dc.dirs = map[uint32]map[string]uint32{}
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
	if dir.disk.Size() < dcacheMinSize {
		return 0, false, nil
	}
	dc := &fs.dcache
	dc.mu.Lock()
	m, ok := dc.dirs[dir.ino]
	if ok {
		ino = m[name]
	}
	dc.mu.Unlock()
	if ok {
		return ino, true, nil
	}
	m = map[string]uint32{}
	err = fs.dirBlocksLocked(dir, func(ents []layout.DirEntry) bool {
		for _, e := range ents {
			if _, dup := m[e.Name]; e.Inode != 0 && !dup { // the first of a name wins, as in findEntryLocked
				m[e.Name] = e.Inode
			}
		}
		return true
	})
	if err != nil {
		return 0, false, err
	}
	// Writers of dir are shut out by dir.mu until the caller is done,
	// so m is still what dir holds.
	dc.mu.Lock()
	if _, built := dc.dirs[dir.ino]; !built && dc.dirs != nil {
		for d, dm := range dc.dirs {
			if dc.names+len(m) <= dcacheMaxNames {
				break
			}
			dc.names -= len(dm)
			delete(dc.dirs, d)
		}
		dc.dirs[dir.ino] = m
		dc.names += len(m)
	}
	dc.mu.Unlock()
	return m[name], true, nil
}

// dcacheSetLocked records name → ino in dir's map, if it has one
// (ext2_add_link, ext2_set_link).
// Preconditions: dir.mu is held exclusively.
func (fs *FS) dcacheSetLocked(dir *Inode, name string, ino uint32) {
	dc := &fs.dcache
	dc.mu.Lock()
	if m, ok := dc.dirs[dir.ino]; ok {
		if _, had := m[name]; !had {
			dc.names++
		}
		m[name] = ino
	}
	dc.mu.Unlock()
}

// dcacheSetSlotLocked records that the entry in slot now holds ino.
// Preconditions: dir.mu is held exclusively; slot is an entry of dir.
func (fs *FS) dcacheSetSlotLocked(dir *Inode, slot *dirSlot, ino uint32) {
	fs.dcacheSetLocked(dir, fs.slotName(slot), ino)
}

// dcacheRemoveLocked drops the name of the entry in slot from dir's map
// (ext2_delete_entry).
// Preconditions: dir.mu is held exclusively; slot is an entry of dir.
func (fs *FS) dcacheRemoveLocked(dir *Inode, slot *dirSlot) {
	name := fs.slotName(slot)
	dc := &fs.dcache
	dc.mu.Lock()
	if m, ok := dc.dirs[dir.ino]; ok {
		if _, had := m[name]; had {
			delete(m, name)
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
	if m, ok := dc.dirs[dir.ino]; ok {
		dc.names -= len(m)
		delete(dc.dirs, dir.ino)
	}
	dc.mu.Unlock()
}

// slotName is the name of the entry in slot.
func (fs *FS) slotName(slot *dirSlot) string {
	slot.bh.Lock()
	defer slot.bh.Unlock()
	return string(slot.rec.Name(slot.bh.Data))
}
