// Package fusemount serves an ext2 filesystem opened with package ext2fs
// to the kernel through FUSE (github.com/hanwen/go-fuse/v2, its fs node
// API), so that ordinary programs read and change an image through our
// page cache, buffer heads and mpage bios.
//
//	fsys, err := ext2fs.Open("disk.img", ext2fs.Options{})
//	srv, err := fusemount.Mount(fsys, "/mnt/disk", fusemount.Options{})
//	srv.Wait()        // until "fusermount3 -u /mnt/disk" or srv.Unmount()
//	err = fsys.Close() // write everything back, mark the image clean
//
// # Design
//
// The FUSE node API is inode-based, as Linux's VFS is over ext2, and so
// is this package: it works on package ext2's inodes directly (the
// *ext2.FS of ext2fs.FS.Ext2), and uses ext2fs only to open and close
// the filesystem and for statfs.
//
// Each node is one ext2 inode: the inode number and i_generation are
// go-fuse's StableAttr (the root is inode 2), so hard links are one node
// and a reused inode number is a new node. While the kernel knows a
// node, the node holds a reference to its inode (Iget when it is looked
// up or made, Iput in OnForget), as a dentry pins its inode: an inode
// unlinked or renamed over stays what the node names until the kernel
// forgets it, so open, stat, chmod, chown, utimes and truncate work on
// it with or without a name left, and it is deleted once neither a node
// nor an open file holds it. A node go-fuse hands out again after
// OnForget (a lookup racing with the forget) takes its reference again
// by number and fails with ENOENT if the inode was deleted or the number
// reused: never does an operation act on another file. Nodes of the same
// inode number are shared between lookups (a table by inode number), so
// a name looked up again or another hard link finds the node that holds
// the reference.
//
// Every operation on names is one call of package ext2 on the parent
// directory's inode: lookups (LookupInode, which answers from a name
// cache in large directories), create, mkdir, mknod, symlink, link,
// unlink, rmdir and rename (RENAME_NOREPLACE included), and O_TMPFILE
// (tmpfile.go: ext2's Tmpfile makes a file in no directory, whose node
// holds it as any node does until linkat(2) names it, or the last close
// and FORGET delete it). There is no path walk from the root and no lock
// of our own around them: ext2 locks the inodes it changes, in its own
// order. New files get the caller's uid
// and gid at creation (fuse.Caller), not by a chown afterwards. Setattr
// changes the inode itself (ext2.FS.SetAttr and Truncate). Open files
// are ext2 file handles on the inode; open directories hold a reference
// to the directory and list it with ReadDirFrom, whose positions stay
// valid while entries come and go.
//
// At close(2) the kernel sends FLUSH; there is nothing to do (see Flush)
// and the answer is ENOSYS, after which the kernel sends no more.
//
// # Permissions
//
// Package ext2 makes no permission checks. The mount asks the kernel for
// default_permissions, so the kernel checks modes and owners against the
// attributes we report before it sends a request. New files, directories,
// links and device nodes get the caller's uid and gid (or the directory's
// group below a set-group-ID directory, which package ext2 applies); the
// kernel has already applied the caller's umask to the mode. AllowOther
// lets users other than the mounter in (allow_other, which needs root or
// user_allow_other in /etc/fuse.conf). A read-only mount is mounted "ro"
// and refuses every change with EROFS.
//
// # Caching
//
// Our page cache is the source of truth for file data. The kernel keeps
// names, missing names and attributes for an hour (entry, negative entry
// and attribute timeouts). Nothing but the kernel's own requests changes
// the image while it is mounted, and the kernel drops or refreshes what
// each of its requests changes: the parent's attributes and the new
// name's negative entry on create, mkdir, link, unlink, rmdir and rename;
// the size, times and blocks of a file it writes or truncates; the
// attributes of an inode whose link count it changes; atime after a
// read. So long timeouts show nothing stale, and they spare a LOOKUP or
// GETATTR round trip per name each time the short ones expired: stat(2)
// of all 5,000 paths of a copied /usr/share/doc, 2 s after they were
// last looked at, took 0.21 s with one-second timeouts and 0.02 s with
// these. For the same reason files are opened with FOPEN_KEEP_CACHE:
// the kernel keeps the pages it cached of a file from one open to the
// next (libfuse's kernel_cache, which its documentation allows where
// "the file data is never changed externally"), so a file read again is
// served from the kernel's memory without a READ: each write, truncate,
// mapped store or O_DIRECT write reaches us through the kernel, which
// updates or drops its own pages as it sends it, and a name that comes
// to mean another inode (rename over it, unlink and create) is another
// kernel inode with no cached pages (TestKeptCacheSeesEveryChange). A
// file is opened with FOPEN_DIRECT_IO off, so reads and writes go
// through the kernel's page cache in large requests (up to MaxWrite)
// rather than one request per system call.
// Writes are written through to us at once (no writeback cache): dirty
// data lives in our page cache only, and reaches the image at fsync, at
// our own writeback, and at unmount. FUSE_WRITEBACK_CACHE would let the
// kernel hold dirty pages and send them later in large WRITEs, but it
// makes the kernel a second dirty cache in front of ours (its i_size and
// mtime become authoritative, it reads partial pages from us before
// writing them, and O_APPEND is then the kernel's job, not the
// handle's), and it buys nothing for the writes we see: cp -a writes
// each small file in one request and closes it, which sends the kernel's
// dirty pages at once, and large writes already come in MaxWrite (1 MiB)
// requests. Measured on cp -a of /usr/share/doc it was no faster (a
// median of 4.3 s against 4.1 s without). Measured again later (with
// HANDLE_KILLPRIV_V2, 1 MiB readahead): fio's 1 MiB sequential write of
// 1 GiB gained about 8% (median 670 -> 726 MB/s, 5 alternated pairs),
// because the kernel's writeback overlaps our handling of one WRITE with
// fio filling the next pages, but cp -a of /usr/share/doc (5,083 files)
// lost about 20% (2.39 -> 2.89 s, 4 pairs): at each close the kernel
// sends the file's times in SETATTRs of its own (182 SETATTRs for 50
// small files against 82). Our WRITE also sets mtime to its own now,
// after the kernel's SETATTR of the time of the write(2) may already
// have arrived, so the image's mtime and the kernel's would differ by
// the writeback delay. So it stays off.
//
// The kernel keeps posix_fadvise to itself, so a handle infers random
// access from its READs: after four small ones in a row that do not
// continue each other, its readahead is off (ext2.File.SetRandom, the
// effect of POSIX_FADV_RANDOM) and each page our cache misses is read
// alone; a READ that continues the last one, or a large one, turns it on
// again. Without that, fio's 4 KiB random reads of a 1 GiB file through
// a 256 MiB cache read 1.4 (O_DIRECT) to 2.4 (buffered) pages from the
// image per miss, the extra ones guessed from cached neighbours and
// never read.
//
// The kernel's readahead for the mount is raised from its 128 KiB to
// 1 MiB (Options.ReadAhead, through the mount's read_ahead_kb in sysfs;
// see setReadAhead), so that a sequential reader's data comes in 1 MiB
// READs instead of 256 KiB ones.
//
// MaxBackground is go-fuse's default (12): it bounds asynchronous
// requests (readahead READs, RELEASE), and 64 made no measurable
// difference to cp -a or to a cold sequential read. Readdirplus stays
// on: ls -lR of a copied /usr/share/doc took 0.4 to 0.6 s with it and
// 0.7 to 0.9 s without.
//
// # Errors
//
// ext2 errors are mapped to errno values here and only here, by errno,
// which looks through wrapped errors with errors.As and errors.Is.
//
// # Not supported
//
// fallocate (ext2 has none: EOPNOTSUPP, as Linux's ext2),
// RENAME_EXCHANGE and RENAME_WHITEOUT (EINVAL, as Linux's ext2), and file
// locks in the filesystem (the kernel keeps POSIX and flock locks
// locally). Extended attributes are read and written (xattr.go), POSIX
// ACLs included; --no-xattr turns them off. copy_file_range(2) within
// the mount is served by copying through our page cache (copyrange.go).
package fusemount
