package ext2

// Inode-level entry points for faces that keep inodes rather than paths
// (package fusemount: the FUSE node API is inode-based, as Linux's VFS is
// over ext2): a second reference to an inode already held (igrab), a
// lookup that returns the inode (ext2_lookup), and setattr on an inode
// (ext2_setattr), which works as well for an inode that has no name left.

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
)

// Igrab takes another reference to ino, which the caller holds (or
// knows to be held), mirroring fs/inode.c:igrab(). It returns nil for an
// inode already being deleted. Give the reference back with Iput.
func (fs *FS) Igrab(ino *Inode) *Inode {
	fs.icache.Lock()
	defer fs.icache.Unlock()
	if ino.evicted || ino.refs <= 0 {
		return nil
	}
	ino.refs++
	return ino
}

// LookupInode finds name in directory dir and returns its inode with a
// reference, mirroring fs/ext2/namei.c:ext2_lookup() (ext2_inode_by_name,
// then ext2_iget). The directory is held shared from the search to the
// Iget, so the inode returned is the one the name holds at that moment,
// never an inode number freed and reused in between. A missing name is
// an error wrapping ErrNotExist. "." and ".." are the entries on disk.
//
// Large directories are searched through the name cache (dcache.go)
// rather than block by block.
func (fs *FS) LookupInode(dir *Inode, name string) (*Inode, error) {
	if err := fs.checkParent(dir); err != nil {
		return nil, err
	}
	if err := checkLookupName(name); err != nil {
		return nil, err
	}
	dir.mu.RLock()
	defer dir.mu.RUnlock()
	n, err := fs.lookupNameLocked(dir, name)
	if err != nil {
		return nil, err
	}
	if n == dir.ino && name != "." {
		return nil, fs.corrupt(where{ino: dir.ino, group: int64(dir.group), block: -1, offset: -1}, nil,
			"entry %q points at its own directory", name)
	}
	return fs.igetEntryLocked(dir, name, n, -1)
}

// igetEntryLocked gets inode n, which dir's entry name (in directory
// block blk, or -1 if not known) holds. As fs/ext2/namei.c:ext2_lookup()
// does, an entry that holds a deleted inode (ext2_iget's -ESTALE) is
// reported as a filesystem error (ext2_error, "deleted inode
// referenced") and returned as corruption, which callers see as EIO: not
// ESTALE, which tells a program that a handle it held has gone stale.
// Holding dir.mu, the entry is there and so the inode has a link: only a
// corrupt directory or inode table can make it deleted.
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) igetEntryLocked(dir *Inode, name string, n uint32, blk int64) (*Inode, error) {
	ino, err := fs.Iget(n)
	if err != nil && errors.Is(err, syscall.ESTALE) {
		return nil, fs.corrupt(where{ino: dir.ino, group: int64(dir.group), block: blk, offset: -1}, err,
			"entry %q references deleted inode %d", name, n)
	}
	return ino, err
}

// lookupNameLocked returns the inode number of name in dir, from the name
// cache when dir has one, else by a scan of its blocks that allocates
// nothing (findEntryLocked).
// Preconditions: dir.mu is held (shared is enough).
func (fs *FS) lookupNameLocked(dir *Inode, name string) (uint32, error) {
	if n, ok, err := fs.dcacheLookupLocked(dir, name); ok || err != nil {
		if err == nil && n == 0 {
			err = fmt.Errorf("%w: %q in directory inode %d", ErrNotExist, name, dir.ino)
		}
		return n, err
	}
	slot, err := fs.findEntryLocked(dir, name)
	if err != nil {
		return 0, err
	}
	if slot == nil {
		return 0, fmt.Errorf("%w: %q in directory inode %d", ErrNotExist, name, dir.ino)
	}
	n := slot.rec.Inode
	fs.releaseSlot(slot)
	return n, nil
}

// AttrChange lists the attributes SetAttr changes: each field applies
// only when its Set flag is true.
type AttrChange struct {
	SetMode  bool
	Mode     uint16 // permission bits with set-user-ID, set-group-ID and sticky; the type stays
	SetUID   bool
	UID      uint32
	SetGID   bool
	GID      uint32
	SetAtime bool
	Atime    time.Time
	SetMtime bool
	Mtime    time.Time
}

// SetAttr changes the mode bits, owner and times of ino (not the size:
// see Truncate), mirroring fs/ext2/inode.c:ext2_setattr() with
// setattr_copy; the change time becomes now. It needs no name, so it
// works on an inode unlinked while in use. The caller holds a reference;
// permission checks are the caller's (the kernel's, for FUSE).
func (fs *FS) SetAttr(ino *Inode, c AttrChange) error {
	if err := fs.checkWritable(); err != nil {
		return err
	}
	if ino.fs != fs {
		return ErrCrossDevice
	}
	now := time.Now()
	ino.mu.Lock()
	defer ino.mu.Unlock()
	ino.UpdateLocked(func(d *layout.Inode) {
		if c.SetMode {
			d.Mode = d.Mode&layout.ModeFmt | c.Mode&layout.ModePerm
		}
		if c.SetUID {
			d.SetUID(c.UID)
		}
		if c.SetGID {
			d.SetGID(c.GID)
		}
		if c.SetAtime {
			setTimes(d, c.Atime, "a")
		}
		if c.SetMtime {
			setTimes(d, c.Mtime, "m")
		}
		setTimes(d, now, "c")
	})
	return nil
}

// Truncate sets the size of the regular file ino, mirroring the ATTR_SIZE
// part of fs/ext2/inode.c:ext2_setattr() (ext2_setsize): shrinking frees
// the blocks past the end, growing leaves a hole; mtime and ctime are
// set. It needs no open file and no name. A directory is ErrIsDir, any
// other type ErrInvalid.
func (fs *FS) Truncate(ino *Inode, size int64) error {
	if err := fs.checkWritable(); err != nil {
		return err
	}
	if ino.fs != fs {
		return ErrCrossDevice
	}
	if ino.IsDir() {
		return fmt.Errorf("%w: truncate of directory inode %d", ErrIsDir, ino.ino)
	}
	if ino.m == nil {
		return fmt.Errorf("%w: truncate of inode %d, not a regular file", ErrInvalid, ino.ino)
	}
	ino.mu.Lock()
	defer ino.mu.Unlock()
	return ino.truncateLocked(size)
}
