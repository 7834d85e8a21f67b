package ext2

import (
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
)

// SetIDToKill returns mode without the bits a write, truncate or chown
// by a caller without CAP_FSETID clears (fs/attr.c:should_remove_suid
// and setattr_should_drop_sgid): set-user-ID always, set-group-ID only
// with group execute (without it the bit marks mandatory locking, not
// privilege).
func SetIDToKill(mode uint16) uint16 {
	m := mode &^ layout.ModeSetuid
	if mode&(layout.ModeSetgid|0o010) == layout.ModeSetgid|0o010 {
		m &^= layout.ModeSetgid
	}
	return m
}

// KillSetID clears the set-user-ID and set-group-ID bits of ino that
// SetIDToKill names, under the inode lock so that a concurrent chmod is
// neither lost nor undone, and sets the change time as notify_change
// does (ATTR_KILL_SUID and ATTR_KILL_SGID become an ATTR_MODE change).
// It reports whether a bit was cleared; with none to clear it changes
// nothing. It is for a FUSE server that asked the kernel to leave this to
// it (FUSE_HANDLE_KILLPRIV_V2).
func (fs *FS) KillSetID(ino *Inode) (bool, error) {
	if err := fs.checkWritable(); err != nil {
		return false, err
	}
	if ino.fs != fs {
		return false, ErrCrossDevice
	}
	ino.mu.Lock()
	defer ino.mu.Unlock()
	ino.tree.RLock()
	mode := ino.disk.Mode
	ino.tree.RUnlock()
	m := SetIDToKill(mode)
	if m == mode {
		return false, nil
	}
	now := time.Now()
	ino.UpdateLocked(func(d *layout.Inode) {
		d.Mode = m
		setTimes(d, now, "c")
	})
	return true, nil
}
