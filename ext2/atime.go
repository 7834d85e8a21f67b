package ext2

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
)

// AtimeMode is when reads update an inode's access time, the atime mount
// options of Linux (MNT_RELATIME, MNT_NOATIME, the absence of both for
// strictatime). The zero value is Linux's default, relatime.
type AtimeMode uint8

const (
	// AtimeDefault is the mode of an unset option: Relatime.
	AtimeDefault AtimeMode = iota
	// Relatime updates atime on a read when atime is not later than
	// mtime or ctime, or is at least 24 hours old (relatime_need_update):
	// "was the file read since it last changed" stays answerable, at
	// most one inode write a day for a file only read.
	Relatime
	// Noatime never updates atime on a read.
	Noatime
	// Strictatime updates atime on every read (the POSIX behaviour).
	Strictatime
)

// String is the mount option's name: "relatime", "noatime" or
// "strictatime" ("relatime" for AtimeDefault too).
func (m AtimeMode) String() string {
	switch m {
	case AtimeDefault, Relatime:
		return "relatime"
	case Noatime:
		return "noatime"
	case Strictatime:
		return "strictatime"
	}
	return fmt.Sprintf("AtimeMode(%d)", uint8(m))
}

// ParseAtimeMode parses a mount option name: "relatime", "noatime" or
// "strictatime"; "" is AtimeDefault.
func ParseAtimeMode(s string) (AtimeMode, error) {
	switch s {
	case "":
		return AtimeDefault, nil
	case "relatime":
		return Relatime, nil
	case "noatime":
		return Noatime, nil
	case "strictatime":
		return Strictatime, nil
	}
	return AtimeDefault, fmt.Errorf("%w: atime mode %q (want relatime, noatime or strictatime)", ErrInvalid, s)
}

// atimeNoDir is the nodiratime bit of FS.atime, beside the mode.
const atimeNoDir = 0x100

// relatimeWindow is how old an atime may grow under relatime before a
// read updates it anyway (relatime_need_update's 24*60*60).
const relatimeWindow = 24 * 60 * 60

// AtimeMode returns the filesystem's atime mode (never AtimeDefault) and
// whether directories are exempt (nodiratime).
func (fs *FS) AtimeMode() (mode AtimeMode, noDirAtime bool) {
	v := fs.atime.Load()
	mode = AtimeMode(v & 0xff)
	if mode == AtimeDefault {
		mode = Relatime
	}
	return mode, v&atimeNoDir != 0
}

// SetAtimeMode changes the atime mode of a mounted filesystem, as
// "mount -o remount,noatime" does (AtimeDefault: relatime). Reads
// already under way may still use the old mode.
func (fs *FS) SetAtimeMode(mode AtimeMode, noDirAtime bool) error {
	if mode > Strictatime {
		return fmt.Errorf("%w: atime mode %d", ErrInvalid, uint8(mode))
	}
	v := uint32(mode)
	if noDirAtime {
		v |= atimeNoDir
	}
	fs.atime.Store(v)
	return nil
}

// accessed records a read of ino: file_accessed() and touch_atime() of
// fs/inode.c. It is called after a read of a regular file
// (generic_file_read_iter → filemap_read), a directory listing
// (iterate_dir) and a readlink or a symlink followed (do_readlinkat,
// pick_link), with no lock of ino held.
//
// The common case costs three atomic loads, no lock and no clock read:
// noatime returns at once; under relatime, once a read found no update
// due, ino.atimeDue holds the second from which one is (atime + 24 h),
// any change of the inode's times resets it (UpdateLocked), and it is
// compared with fs.clock, a clock of whole seconds (Linux reads its
// coarse clock too: current_time). time.Now costs 60 ns on the machine
// this was measured on, more than a 64-byte read of a cached page.
// Otherwise touchAtime compares the times under ino.mu shared, and only
// an update due takes ino.mu exclusively. The update marks the inode
// dirty; it reaches the disk with the inode's next write-out, never by
// a write of its own.
func (ino *Inode) accessed() { ino.readAccessed(0) }

// readAccessed is accessed after a read of a regular file at off, which
// filemap_read does not count at or past s_maxbytes.
func (ino *Inode) readAccessed(off int64) {
	fs := ino.fs
	v := fs.atime.Load()
	mode := AtimeMode(v & 0xff)
	if mode == Noatime {
		return
	}
	if due := ino.atimeDue.Load(); due != 0 && mode != Strictatime && fs.clock.sec.Load() < due {
		return
	}
	if fs.readOnly.Load() || off >= fs.maxFileSize() {
		return
	}
	ino.touchAtime(mode, v&atimeNoDir != 0)
}

// touchAtime is the rest of accessed, when an update may be due.
func (ino *Inode) touchAtime(mode AtimeMode, noDir bool) {
	fs := ino.fs
	now := time.Now()
	ino.mu.RLock()
	need := ino.atimeNeedsUpdateLocked(mode, noDir, now)
	ino.mu.RUnlock()
	if !need {
		return
	}
	ino.mu.Lock()
	defer ino.mu.Unlock()
	// Checked again: another reader may have updated it meanwhile, or
	// the filesystem gone read-only (touch_atime's mnt_want_write).
	if fs.readOnly.Load() || fs.closed.Load() || !ino.atimeNeedsUpdateLocked(mode, noDir, now) {
		return
	}
	t := ino.atimeTruncLocked(now)
	ino.UpdateLocked(func(d *layout.Inode) { setTimes(d, t, "a") })
}

// atimeNeedsUpdateLocked mirrors fs/inode.c:atime_needs_update() with
// relatime_need_update(): false for an inode flagged noatime
// (EXT2_NOATIME_FL, S_NOATIME), a directory under nodiratime, or, under
// relatime, an atime later than both mtime and ctime and younger than a
// day (whose due second it then caches in ino.atimeDue); false too when
// atime already equals now at the filesystem's granularity.
// Preconditions: ino.mu is held (shared is enough).
func (ino *Inode) atimeNeedsUpdateLocked(mode AtimeMode, noDir bool, now time.Time) bool {
	d := &ino.disk
	if d.Flags&layout.FlNoAtime != 0 {
		ino.atimeDue.Store(math.MaxInt64) // until the flags change
		return false
	}
	if d.Mode&layout.ModeFmt == layout.ModeDir && (noDir || d.LinksCount == 0) {
		return false // nodiratime, or a removed directory (IS_DEADDIR)
	}
	atime := diskTime(d.Atime, d.AtimeExtra)
	if mode != Strictatime {
		mtime := diskTime(d.Mtime, d.MtimeExtra)
		ctime := diskTime(d.Ctime, d.CtimeExtra)
		if atime.After(mtime) && atime.After(ctime) {
			due := atime.Unix() + relatimeWindow
			if now.Unix() < due {
				// Stored under mu shared: writers of the times
				// hold it exclusively and reset atimeDue, so the
				// value cannot outlive the times it came from.
				ino.atimeDue.Store(due)
				return false
			}
		}
	}
	return !atime.Equal(ino.atimeTruncLocked(now))
}

// atimeTruncLocked truncates t to the granularity at which ino stores
// atime (timestamp_truncate): nanoseconds when the inode has room for
// i_atime_extra, else seconds.
// Preconditions: ino.mu is held (shared is enough).
func (ino *Inode) atimeTruncLocked(t time.Time) time.Time {
	const atimeExtraEnd = 144 // i_atime_extra ends at byte 144
	if ino.fs.inodeSize < atimeExtraEnd || layout.InodeSize+int(ino.disk.ExtraIsize) < atimeExtraEnd {
		return time.Unix(t.Unix(), 0)
	}
	return t
}

// diskTime is the time of a seconds field and its _extra field, as Stat
// reports it.
func diskTime(sec, extra uint32) time.Time {
	return time.Unix(int64(sec), int64(extra>>2))
}

// coarseClock is the wall clock in whole seconds, ticked by a goroutine
// of its own while a writable filesystem is mounted. It may lag by
// about a second, which only delays a relatime update that falls due a
// day after the last one.
type coarseClock struct {
	sec  atomic.Int64 // Unix seconds
	stop chan struct{}
	done chan struct{}
}

// start sets the clock and starts its goroutine.
func (c *coarseClock) start() {
	c.sec.Store(time.Now().Unix())
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-c.stop:
				return
			case now := <-tick.C:
				c.sec.Store(now.Unix())
			}
		}
	}()
}

// halt stops the goroutine of a started clock; it is a no-op otherwise.
func (c *coarseClock) halt() {
	if c.stop != nil {
		close(c.stop)
		<-c.done
		c.stop = nil
	}
}
