package fusemount

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpagefs/mpage/ext2"
)

// Set-user-ID and set-group-ID bits on writes (FUSE_HANDLE_KILLPRIV_V2).
//
// A write, truncate or chown of a regular file by a caller without
// CAP_FSETID clears its set-user-ID bit, and its set-group-ID bit when
// group execute is set (fs/attr.c:setattr_should_drop_suidgid; chown
// clears them whatever the caller). Without HANDLE_KILLPRIV_V2 the
// kernel does it itself, and to know whether a write must drop file
// capabilities it asks for security.capability before every write(2):
// a GETXATTR round trip per write, which costs small writes about half
// their speed. With it, the kernel marks the superblock SB_NOSEC and
// stops asking once a file has neither bit (it asks again after an
// attribute change or a security.* setxattr, and still removes
// security.capability itself, by REMOVEXATTR), and leaves the bits to
// us: a WRITE carries FUSE_WRITE_KILL_SUIDGID, a truncating or chown
// SETATTR FATTR_KILL_SUIDGID, and an OPEN or CREATE with O_TRUNC
// FUSE_OPEN_KILL_SUIDGID, each when the caller lacks CAP_FSETID (chown:
// always). We then clear them as the kernel would (ext2.FS.KillSetID).
//
// The node API passes none of these flags on, so the mount's raw
// filesystem (rawFS) sees WRITE, OPEN and CREATE first and marks the
// request by its cancel channel, the one thing of a request the node API
// hands the operation (in its fuse.Context). Setattr sees its flag in
// SetAttrIn.
//
// One rule is the FUSE protocol's, not Linux's: a set-group-ID file
// without group execute keeps its bit (Linux 6.2 and later clear it too
// when the writer is not in the file's group, which we cannot tell: the
// request names the caller's uid and gid, not its supplementary groups).
// The kernel's own handling without HANDLE_KILLPRIV_V2 keeps it as well
// (fs/fuse/dir.c:fuse_setattr recomputes the mode with that rule).

// rawFS is the raw filesystem of a mount: go-fuse's node API bridge,
// with the requests whose kill flag it would drop seen first.
type rawFS struct {
	fuse.RawFileSystem
	m *mount
}

func (r *rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		r.m.kills.add(cancel)
		defer r.m.kills.remove(cancel)
	}
	return r.RawFileSystem.Write(cancel, in, data)
}

func (r *rawFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		r.m.kills.add(cancel)
		defer r.m.kills.remove(cancel)
	}
	return r.RawFileSystem.Writev(cancel, in, data)
}

func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.Mode&fuse.OPEN_KILL_SUIDGID != 0 {
		r.m.kills.add(cancel)
		defer r.m.kills.remove(cancel)
	}
	return r.RawFileSystem.Open(cancel, in, out)
}

func (r *rawFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if in.OpenFlags&fuse.OPEN_KILL_SUIDGID != 0 {
		r.m.kills.add(cancel)
		defer r.m.kills.remove(cancel)
	}
	return r.RawFileSystem.Create(cancel, in, name, out)
}

// killMarks are the requests in progress that carry a kill flag, by
// their cancel channel (unique among requests in progress).
type killMarks struct {
	n   atomic.Int32 // len(set), read without mu so that unmarked requests take no lock
	mu  sync.Mutex   // guards set
	set map[<-chan struct{}]struct{}
}

func (k *killMarks) add(c <-chan struct{}) {
	k.mu.Lock()
	if k.set == nil {
		k.set = map[<-chan struct{}]struct{}{}
	}
	k.set[c] = struct{}{}
	k.n.Store(int32(len(k.set)))
	k.mu.Unlock()
}

func (k *killMarks) remove(c <-chan struct{}) {
	k.mu.Lock()
	delete(k.set, c)
	k.n.Store(int32(len(k.set)))
	k.mu.Unlock()
}

// has reports whether the request of ctx (a *fuse.Context from go-fuse)
// carries a kill flag.
func (k *killMarks) has(ctx context.Context) bool {
	if k.n.Load() == 0 {
		return false
	}
	fc, ok := ctx.(*fuse.Context)
	if !ok || fc.Cancel == nil {
		return false
	}
	k.mu.Lock()
	_, ok = k.set[fc.Cancel]
	k.mu.Unlock()
	return ok
}

// killSetID clears the set-ID bits of ino that a write by an
// unprivileged caller clears. When it cleared one and in, the kernel's
// inode, is known, it tells the kernel to drop the attributes it caches:
// a WRITE reply carries none, and the kernel would otherwise keep the
// old mode for the attribute timeout, which an exec of the file (the
// set-ID check) would believe.
func (m *mount) killSetID(ino *ext2.Inode, in *gofs.Inode) syscall.Errno {
	if mode := ino.Stat().Mode; ext2.SetIDToKill(mode) == mode {
		return 0 // the common case: nothing to clear, no lock taken
	}
	killed, err := m.fs.KillSetID(ino)
	if err != nil {
		return errno(err)
	}
	if killed && in != nil {
		in.NotifyContent(-1, 0) // attributes only; ENOENT if the kernel forgot it
	}
	return 0
}
