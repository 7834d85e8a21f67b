package ext2

// Namespace operations, mirroring Linux fs/ext2/namei.c (ext2_create,
// ext2_mknod, ext2_symlink, ext2_link, ext2_unlink, ext2_mkdir,
// ext2_rmdir, ext2_rename) with the checks the VFS makes before calling
// them (fs/namei.c: may_delete, may_create, vfs_rename, lock_rename).
// Each takes a parent directory *Inode and a name; LookupPath and
// LookupParent turn absolute paths into those.
//
// Errors are syscall.Errno values wrapped in this package's errors, so
// errors.Is(err, syscall.ENOENT) and friends hold: ENOENT, EEXIST,
// ENOTDIR, EISDIR, ENOTEMPTY, ENOSPC, EMLINK, ENAMETOOLONG, EINVAL,
// ELOOP, EPERM, EXDEV and EROFS for a read-only filesystem.
//
// # Lock order of the namespace operations
//
// These operations follow the package's lock order (directory Inode.mu
// before a child's Inode.mu) and add one lock above it:
//
//	renameMu                                  (s_vfs_rename_mutex)
//	  → ancestor directory Inode.mu → descendant directory Inode.mu
//	    → child Inode.mu (source before target by inode number)
//
// Create, Mknod, Symlink, Mkdir, Link, Unlink and Rmdir lock the parent
// directory, then the one child they change. Rename takes renameMu
// first, so that no other rename changes the shape of the tree while it
// works, then finds the ancestors of both parents by walking ".." with
// no directory locked, refuses a move into its own subtree (EINVAL) or
// over an ancestor of the source (ENOTEMPTY), and locks the two parents
// ancestor first, as lock_rename does; unrelated parents are locked old
// then new, which cannot deadlock because renames are serialised by
// renameMu and every other operation locks a parent before its child.
// Then it locks the source and the target (when there is one) in inode
// number order; neither is an ancestor of anything locked before it.
// NewInode reads the parent's flags under its shared lock, so it is
// called with no directory locked; Iput may delete an inode and lock it,
// so it is called after every lock is dropped.
//
// renameMu is FS.renameMu, one per mounted filesystem.

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
)

// Errors of the namespace operations, beside those of errors.go.
var (
	// ErrExist is returned when the name to create is taken.
	ErrExist = fmt.Errorf("ext2: file exists: %w", syscall.EEXIST)
	// ErrNotEmpty is returned by Rmdir, and Rename over a directory, when
	// the directory has entries besides "." and "..".
	ErrNotEmpty = fmt.Errorf("ext2: directory not empty: %w", syscall.ENOTEMPTY)
	// ErrTooManyLinks is returned when a link count would pass LinkMax.
	ErrTooManyLinks = fmt.Errorf("ext2: too many links: %w", syscall.EMLINK)
	// ErrNameTooLong is returned for a name above 255 bytes, or a
	// symlink target that does not fit in a block.
	ErrNameTooLong = fmt.Errorf("ext2: file name too long: %w", syscall.ENAMETOOLONG)
	// ErrLoop is returned when a path follows more than 40 symbolic
	// links.
	ErrLoop = fmt.Errorf("ext2: too many levels of symbolic links: %w", syscall.ELOOP)
	// ErrCrossDevice is returned for a link or rename between two
	// filesystems.
	ErrCrossDevice = fmt.Errorf("ext2: cross-device link: %w", syscall.EXDEV)
)

// LinkMax is EXT2_LINK_MAX of Linux fs/ext2/ext2.h, the most links an
// inode may have in Linux ext2 (e2fsprogs allows 65000,
// layout.LinkMax): a directory with LinkMax links can have no more
// subdirectories.
const LinkMax = 32000

// RenameNoReplace is Rename's RENAME_NOREPLACE flag: fail with EEXIST
// rather than replace an existing name.
const RenameNoReplace = 1 << 0

// maxLinkFollow is MAXSYMLINKS, the most symbolic links one path
// resolution follows.
const maxLinkFollow = 40

// writableErr returns the error for a change to fs (ErrReadOnly, which
// wraps EROFS), nil if it may be changed.
func (fs *FS) writableErr() error { return fs.checkWritable() }

// checkName checks a name to create: 1 to 255 bytes with no '/' or NUL
// (EINVAL, ENAMETOOLONG). "." and ".." always exist (EEXIST).
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty file name", ErrInvalid)
	}
	if err := checkLookupName(name); err != nil {
		return err
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrExist, name)
	}
	return nil
}

// checkLookupName checks a name to look up or remove.
func checkLookupName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty file name", ErrNotExist)
	case len(name) > layout.NameLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrNameTooLong, len(name), layout.NameLen)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: file name %q holds '/' or NUL", ErrInvalid, name)
	}
	return nil
}

// checkParent checks that dir is a directory of fs.
func (fs *FS) checkParent(dir *Inode) error {
	if dir.fs != fs {
		return ErrCrossDevice
	}
	if !dir.IsDir() {
		return fmt.Errorf("%w: inode %d", ErrNotDir, dir.ino)
	}
	return nil
}

// deadDirLocked reports a directory that was removed (no links): nothing
// may be created in it (the VFS's IS_DEADDIR check gives ENOENT).
// Preconditions: dir.mu is held.
func deadDirLocked(dir *Inode) error {
	if dir.disk.LinksCount == 0 {
		return fmt.Errorf("%w: directory inode %d was removed", ErrNotExist, dir.ino)
	}
	return nil
}

// dropLinkLocked takes one link from dir, the one a subdirectory's ".."
// gave it, never going below 0 (drop_nlink on a corrupt count).
// Preconditions: dir.mu is held exclusively.
func dropLinkLocked(dir *Inode) {
	dir.UpdateLocked(func(d *layout.Inode) {
		if d.LinksCount > 0 {
			d.LinksCount--
		}
	})
}

// canCreateInLocked reports why nothing may be created in dir: it was
// removed (ENOENT), or, for a new directory (isDir), it has LinkMax
// links and can take no more "..", EMLINK.
// Preconditions: dir.mu is held.
func canCreateInLocked(dir *Inode, isDir bool) error {
	if err := deadDirLocked(dir); err != nil {
		return err
	}
	return canLinkSubdirLocked(dir, isDir)
}

// canLinkSubdirLocked refuses a new subdirectory (isDir) in a dir with
// LinkMax links, EMLINK.
// Preconditions: dir.mu is held.
func canLinkSubdirLocked(dir *Inode, isDir bool) error {
	if isDir && dir.disk.LinksCount >= LinkMax {
		return fmt.Errorf("%w: directory inode %d has %d links", ErrTooManyLinks, dir.ino, dir.disk.LinksCount)
	}
	return nil
}

// setLinksLocked sets the link count of ino and its ctime.
// Preconditions: ino.mu is held exclusively.
func setLinksLocked(ino *Inode, links uint16, now time.Time) {
	ino.UpdateLocked(func(d *layout.Inode) {
		d.LinksCount = links
		setTimes(d, now, "c")
	})
}

// newNode creates an inode of mode in dir under name, the common part of
// ext2_create, ext2_mknod, ext2_symlink and ext2_mkdir: a new inode
// (NewInode: Orlov placement for directories), init to fill it in with
// dir and the new inode locked, then the link (ext2_add_nondir /
// ext2_add_link). On failure the new inode, left with no links, is
// deleted by its last Iput. The new inode is returned with a reference.
// As inode_init_owner does, a set-group-ID directory gives its group to
// the new inode, and its set-group-ID bit to a new directory.
func (fs *FS) newNode(dir *Inode, name string, mode uint16, uid, gid uint32, init func(ino *Inode) error) (*Inode, error) {
	if err := fs.writableErr(); err != nil {
		return nil, err
	}
	if err := fs.checkParent(dir); err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	isDir := mode&layout.ModeFmt == layout.ModeDir
	// Fail early, before allocating, on the cheap checks; they are made
	// again below with dir locked. An existing name is found by
	// addLinkLocked, whose scan of the directory is the only one.
	dir.mu.RLock()
	err := canCreateInLocked(dir, isDir)
	if dir.disk.Mode&layout.ModeSetgid != 0 {
		gid = dir.disk.GID()
		if isDir {
			mode |= layout.ModeSetgid
		}
	}
	dir.mu.RUnlock()
	if err != nil {
		return nil, err
	}

	ino, err := fs.NewInode(dir, mode, uid, gid)
	if err != nil {
		return nil, err
	}
	dir.mu.Lock()
	ino.mu.Lock()
	err = canCreateInLocked(dir, isDir)
	if err == nil && init != nil {
		err = init(ino)
	}
	now := time.Now()
	if err == nil {
		links := uint16(1)
		if isDir {
			links = 2
		}
		setLinksLocked(ino, links, now)
		err = fs.addLinkLocked(dir, name, ino.ino, mode)
		if err != nil {
			setLinksLocked(ino, 0, now)
		} else if isDir {
			dir.UpdateLocked(func(d *layout.Inode) { d.LinksCount++ })
		}
	}
	ino.mu.Unlock()
	dir.mu.Unlock()
	if err != nil {
		fs.Iput(ino) // no links: deleted
		return nil, err
	}
	return ino, nil
}

// Create makes a regular file name in dir with the permission bits of
// mode, mirroring fs/ext2/namei.c:ext2_create(). The new inode is
// returned with a reference (give it back with Iput).
func (fs *FS) Create(dir *Inode, name string, mode uint16, uid, gid uint32) (*Inode, error) {
	return fs.newNode(dir, name, layout.ModeReg|mode&layout.ModePerm, uid, gid, nil)
}

// Mknod makes a special file name in dir, mirroring
// fs/ext2/namei.c:ext2_mknod(): mode's type is a character or block
// device (with the device number major:minor, stored as
// layout.EncodeDev encodes it), a fifo, a socket or a regular file (type
// 0 too). Directories and symlinks have their own calls (EINVAL here).
func (fs *FS) Mknod(dir *Inode, name string, mode uint16, major, minor uint32, uid, gid uint32) (*Inode, error) {
	typ := mode & layout.ModeFmt
	switch typ {
	case 0:
		mode |= layout.ModeReg
	case layout.ModeReg, layout.ModeFifo, layout.ModeSock:
	case layout.ModeChr, layout.ModeBlk:
		return fs.newNode(dir, name, mode, uid, gid, func(ino *Inode) error {
			ino.tree.Lock()
			ino.disk.SetRdev(major, minor)
			ino.tree.Unlock()
			ino.markDirty()
			return nil
		})
	default:
		return nil, fmt.Errorf("%w: mknod of file type %#o", ErrInvalid, typ)
	}
	return fs.newNode(dir, name, mode, uid, gid, nil)
}

// Mkdir makes a directory name in dir, mirroring
// fs/ext2/namei.c:ext2_mkdir(): the inode is placed by the Orlov
// allocator (NewInode), which counts it in its group's used directories;
// it gets "." and ".." (ext2_make_empty) and 2 links, and dir one more
// link for the new "..". EMLINK when dir has LinkMax links.
func (fs *FS) Mkdir(dir *Inode, name string, mode uint16, uid, gid uint32) (*Inode, error) {
	return fs.newNode(dir, name, layout.ModeDir|mode&layout.ModePerm, uid, gid, func(ino *Inode) error {
		return fs.makeEmptyLocked(ino, dir.ino)
	})
}

// Link makes name in dir another link to ino, mirroring
// fs/ext2/namei.c:ext2_link() with vfs_link's checks: not for a
// directory (EPERM), not past LinkMax links (EMLINK), not for an inode
// that has lost its last link (ENOENT), unless it is a file made by
// Tmpfile that was never linked (I_LINKABLE), which gets its first link
// here and is an ordinary file from then on.
func (fs *FS) Link(ino *Inode, dir *Inode, name string) error {
	if err := fs.writableErr(); err != nil {
		return err
	}
	if err := fs.checkParent(dir); err != nil {
		return err
	}
	if ino.fs != fs {
		return ErrCrossDevice
	}
	if err := checkName(name); err != nil {
		return err
	}
	if ino.IsDir() {
		return fmt.Errorf("%w: hard link to directory inode %d", ErrPermission, ino.ino)
	}
	// ino is not a directory, so no one locks anything after it: taking
	// it after dir keeps the order whatever its own parent is.
	dir.mu.Lock()
	defer dir.mu.Unlock()
	ino.mu.Lock()
	defer ino.mu.Unlock()
	if err := deadDirLocked(dir); err != nil {
		return err
	}
	links := ino.disk.LinksCount
	if links == 0 && !ino.linkable {
		return fmt.Errorf("%w: inode %d has no links left", ErrNotExist, ino.ino)
	}
	if links >= LinkMax {
		return fmt.Errorf("%w: inode %d has %d links", ErrTooManyLinks, ino.ino, links)
	}
	if err := fs.addLinkLocked(dir, name, ino.ino, ino.disk.Mode); err != nil {
		return err
	}
	setLinksLocked(ino, links+1, time.Now())
	ino.linkable = false
	return nil
}

// lookupChildLocked finds name in dir and gets its inode.
// Preconditions: dir.mu is held exclusively.
func (fs *FS) lookupChildLocked(dir *Inode, name string) (*dirSlot, *Inode, error) {
	slot, err := fs.findEntryLocked(dir, name)
	if err != nil {
		return nil, nil, err
	}
	if slot == nil {
		return nil, nil, fmt.Errorf("%w: %q in directory inode %d", ErrNotExist, name, dir.ino)
	}
	if slot.rec.Inode == dir.ino {
		fs.releaseSlot(slot)
		return nil, nil, fs.corrupt(where{ino: dir.ino, group: int64(dir.group), block: slot.blk, offset: -1}, nil,
			"entry %q points at its own directory", name)
	}
	child, err := fs.igetEntryLocked(dir, name, slot.rec.Inode, slot.blk)
	if err != nil {
		fs.releaseSlot(slot)
		return nil, nil, err
	}
	return slot, child, nil
}

// Unlink removes name from dir, mirroring fs/ext2/namei.c:ext2_unlink():
// the entry goes (ext2_delete_entry) and the inode loses a link. An
// inode with no links left is deleted at its last Iput, so one still in
// use stays readable until then. Directories need Rmdir (EISDIR).
func (fs *FS) Unlink(dir *Inode, name string) error {
	if err := fs.checkRemove(dir, name); err != nil {
		return err
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: unlink %q", ErrIsDir, name)
	}
	return fs.removeChild(dir, name, func(slot *dirSlot, child *Inode) error {
		if child.disk.IsDir() {
			fs.releaseSlot(slot)
			return fmt.Errorf("%w: unlink of directory %q (inode %d)", ErrIsDir, name, child.ino)
		}
		fs.deleteEntryLocked(dir, slot)
		if child.disk.LinksCount > 0 {
			setLinksLocked(child, child.disk.LinksCount-1, time.Now())
		}
		return nil
	})
}

// checkRemove makes the checks of Unlink and Rmdir before any lock: a
// writable filesystem, dir a directory of fs, a name that can be looked
// up.
func (fs *FS) checkRemove(dir *Inode, name string) error {
	if err := fs.writableErr(); err != nil {
		return err
	}
	if err := fs.checkParent(dir); err != nil {
		return err
	}
	return checkLookupName(name)
}

// removeChild is the locking of Unlink and Rmdir: with dir locked it
// finds name and gets its inode, locks that child and calls remove,
// which must consume slot (delete the entry, or release it), then drops
// both locks and the child's reference, which deletes an inode left
// with no links.
func (fs *FS) removeChild(dir *Inode, name string, remove func(slot *dirSlot, child *Inode) error) error {
	dir.mu.Lock()
	slot, child, err := fs.lookupChildLocked(dir, name)
	if err != nil {
		dir.mu.Unlock()
		return err
	}
	child.mu.Lock()
	err = remove(slot, child)
	child.mu.Unlock()
	dir.mu.Unlock()
	fs.Iput(child)
	return err
}

// Rmdir removes the empty directory name from dir, mirroring
// fs/ext2/namei.c:ext2_rmdir() with do_rmdir's checks ("." is EINVAL,
// ".." ENOTEMPTY): the entry goes, the directory loses both its links
// and its size, and dir loses the link of its "..". The directory's
// blocks and inode are freed at its last Iput.
func (fs *FS) Rmdir(dir *Inode, name string) error {
	if err := fs.checkRemove(dir, name); err != nil {
		return err
	}
	switch name {
	case ".":
		return fmt.Errorf("%w: rmdir of \".\"", ErrInvalid)
	case "..":
		return fmt.Errorf("%w: rmdir of \"..\"", ErrNotEmpty)
	}
	return fs.removeChild(dir, name, func(slot *dirSlot, child *Inode) error {
		return fs.rmdirLocked(dir, slot, child, name)
	})
}

// rmdirLocked does Rmdir's work once both inodes are locked. It releases
// slot.
// Preconditions: dir.mu and child.mu are held exclusively.
func (fs *FS) rmdirLocked(dir *Inode, slot *dirSlot, child *Inode, name string) error {
	if !child.disk.IsDir() {
		fs.releaseSlot(slot)
		return fmt.Errorf("%w: %q (inode %d)", ErrNotDir, name, child.ino)
	}
	empty, err := fs.emptyDirLocked(child)
	if err != nil {
		fs.releaseSlot(slot)
		return err
	}
	if !empty {
		fs.releaseSlot(slot)
		return fmt.Errorf("%w: %q (inode %d)", ErrNotEmpty, name, child.ino)
	}
	fs.deleteEntryLocked(dir, slot)
	now := time.Now()
	fs.forgetBlocksLocked(child)
	child.UpdateLocked(func(d *layout.Inode) {
		d.LinksCount = 0
		d.SetSize(0)
		setTimes(d, now, "c")
	})
	dropLinkLocked(dir)
	return nil
}

// ancestors returns the inode numbers of dir and of every directory
// above it up to the root, following "..". A chain longer than the
// filesystem has inodes, or a ".." that is not a directory, is
// corruption.
// Preconditions: renameMu is held; no directory is locked.
func (fs *FS) ancestors(dir *Inode) ([]uint32, error) {
	chain := []uint32{dir.ino}
	cur := dir.ino
	for cur != layout.RootIno {
		if uint32(len(chain)) > fs.inodesCount {
			return nil, fs.corrupt(where{ino: dir.ino, group: -1, block: -1, offset: -1}, nil, "\"..\" entries form a loop")
		}
		d, err := fs.Iget(cur)
		if err != nil {
			return nil, err
		}
		if !d.IsDir() {
			fs.Iput(d)
			return nil, fs.corrupt(where{ino: cur, group: -1, block: -1, offset: -1}, nil, "\"..\" leads to a non-directory")
		}
		up, err := fs.LookupIn(d, "..")
		fs.Iput(d)
		if err != nil {
			return nil, err
		}
		chain = append(chain, up)
		cur = up
	}
	return chain, nil
}

// Rename moves oldName in oldDir to newName in newDir, mirroring
// fs/ext2/namei.c:ext2_rename() with vfs_rename's checks:
//
//   - an existing newName is replaced: a file by a non-directory, an
//     empty directory by a directory (ENOTEMPTY if it has entries;
//     EISDIR and ENOTDIR for mixed types); with RenameNoReplace it is
//     EEXIST instead;
//   - a directory cannot move into its own subtree (EINVAL), nor "." or
//     ".." be renamed (EINVAL);
//   - renaming a name onto itself, or onto another link to the same
//     inode, does nothing;
//   - a moved directory's ".." is repointed (ext2_set_link) and the link
//     counts of both parents change, EMLINK when newDir is full.
//
// See the lock order at the top of this file.
func (fs *FS) Rename(oldDir *Inode, oldName string, newDir *Inode, newName string, flags uint) error {
	if err := fs.writableErr(); err != nil {
		return err
	}
	if flags&^RenameNoReplace != 0 {
		return fmt.Errorf("%w: rename flags %#x", ErrInvalid, flags)
	}
	for _, d := range []*Inode{oldDir, newDir} {
		if err := fs.checkParent(d); err != nil {
			return err
		}
	}
	if err := checkLookupName(oldName); err != nil {
		return err
	}
	if err := checkLookupName(newName); err != nil {
		return err
	}
	for _, n := range []string{oldName, newName} {
		if n == "." || n == ".." {
			return fmt.Errorf("%w: rename of %q", ErrInvalid, n)
		}
	}

	fs.renameMu.Lock()
	defer fs.renameMu.Unlock()
	oldUp, err := fs.ancestors(oldDir)
	if err != nil {
		return err
	}
	newUp, err := fs.ancestors(newDir)
	if err != nil {
		return err
	}
	// Parents, ancestor first (lock_rename).
	first, second := oldDir, newDir
	switch {
	case oldDir == newDir:
		second = nil
	case slices.Contains(oldUp, newDir.ino):
		first, second = newDir, oldDir
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if second != nil {
		second.mu.Lock()
		defer second.mu.Unlock()
	}

	var put []*Inode
	defer func() {
		for _, ino := range put {
			fs.Iput(ino)
		}
	}()
	oldSlot, src, err := fs.lookupChildLocked(oldDir, oldName)
	if err != nil {
		return err
	}
	put = append(put, src)
	defer fs.releaseSlot(oldSlot)
	if slices.Contains(newUp, src.ino) { // src is a directory, maybe newDir itself
		return fmt.Errorf("%w: directory %q (inode %d) into its own subtree", ErrInvalid, oldName, src.ino)
	}
	newSlot, err := fs.findEntryLocked(newDir, newName)
	if err != nil {
		return err
	}
	defer fs.releaseSlot(newSlot)
	if newSlot != nil && newSlot.bh == oldSlot.bh && newSlot.rec.Offset == oldSlot.rec.Offset {
		return nil // the same entry
	}
	var target *Inode
	if newSlot != nil {
		if newSlot.rec.Inode == src.ino {
			return nil // two links to one inode: POSIX says do nothing
		}
		if flags&RenameNoReplace != 0 {
			return fmt.Errorf("%w: %q in directory inode %d", ErrExist, newName, newDir.ino)
		}
		if newSlot.rec.Inode == newDir.ino {
			return fs.corrupt(where{ino: newDir.ino, group: int64(newDir.group), block: newSlot.blk, offset: -1}, nil,
				"entry %q points at its own directory", newName)
		}
		if slices.Contains(oldUp, newSlot.rec.Inode) {
			// The target is oldDir or above it: it holds the source.
			return fmt.Errorf("%w: %q (inode %d) is an ancestor of the source", ErrNotEmpty, newName, newSlot.rec.Inode)
		}
		target, err = fs.igetEntryLocked(newDir, newName, newSlot.rec.Inode, newSlot.blk)
		if err != nil {
			return err
		}
		put = append(put, target)
	}

	// Children, by inode number.
	kids := []*Inode{src}
	if target != nil {
		kids = append(kids, target)
		if target.ino < src.ino {
			kids[0], kids[1] = target, src
		}
	}
	for _, k := range kids {
		k.mu.Lock()
		defer k.mu.Unlock()
	}
	return fs.renameLocked(oldDir, oldSlot, oldName, src, newDir, newSlot, newName, target)
}

// renameLocked does ext2_rename's work with every inode locked. It
// consumes oldSlot and newSlot (setting their buffers to nil).
// Preconditions: oldDir, newDir, src and target (if not nil) are locked
// exclusively; newSlot is nil exactly when target is.
func (fs *FS) renameLocked(oldDir *Inode, oldSlot *dirSlot, oldName string, src *Inode, newDir *Inode, newSlot *dirSlot, newName string, target *Inode) error {
	srcIsDir := src.disk.IsDir()
	now := time.Now()
	var dotdot *dirSlot
	if srcIsDir && oldDir != newDir {
		var err error
		if dotdot, err = fs.dotdotLocked(src); err != nil {
			return err
		}
		defer fs.releaseSlot(dotdot)
	}
	if target != nil {
		tIsDir := target.disk.IsDir()
		switch {
		case srcIsDir && !tIsDir:
			return fmt.Errorf("%w: %q (inode %d)", ErrNotDir, newName, target.ino)
		case !srcIsDir && tIsDir:
			return fmt.Errorf("%w: %q (inode %d)", ErrIsDir, newName, target.ino)
		case tIsDir:
			empty, err := fs.emptyDirLocked(target)
			if err != nil {
				return err
			}
			if !empty {
				return fmt.Errorf("%w: %q (inode %d)", ErrNotEmpty, newName, target.ino)
			}
		}
		fs.setLinkLocked(newDir, newSlot, src.ino, src.disk.Mode)
		links := target.disk.LinksCount
		if tIsDir {
			// Its "." and its entry both go (drop_nlink, then
			// inode_dec_link_count).
			links = 0
			fs.forgetBlocksLocked(target)
			target.UpdateLocked(func(d *layout.Inode) { d.SetSize(0) })
		} else if links > 0 {
			links--
		}
		setLinksLocked(target, links, now)
	} else {
		if err := canLinkSubdirLocked(newDir, srcIsDir && oldDir != newDir); err != nil {
			return err
		}
		if err := fs.addLinkLocked(newDir, newName, src.ino, src.disk.Mode); err != nil {
			return err
		}
		if srcIsDir {
			newDir.UpdateLocked(func(d *layout.Inode) { d.LinksCount++ })
		}
	}
	src.TouchLocked("c")
	if oldDir == newDir && newSlot == nil {
		// The new entry may have been put in the old entry's block,
		// moving records: find the old one again.
		fs.releaseSlot(oldSlot)
		s, err := fs.findEntryLocked(oldDir, oldName)
		if err != nil {
			return err
		}
		if s == nil {
			return fs.corrupt(where{ino: oldDir.ino, group: int64(oldDir.group), block: -1, offset: -1}, nil,
				"entry of inode %d vanished during rename", src.ino)
		}
		*oldSlot = *s
	}
	fs.deleteEntryLocked(oldDir, oldSlot)
	if srcIsDir {
		// The source's ".." now counts for newDir (ext2_set_link), no
		// longer for oldDir: with a replaced target this is the link
		// the target's ".." took from newDir.
		if dotdot != nil {
			fs.setLinkLocked(src, dotdot, newDir.ino, newDir.disk.Mode)
		}
		dropLinkLocked(oldDir)
	}
	return nil
}
