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
// Inode numbers are the ext2 inode numbers (the root is inode 2) and the
// generation is i_generation, both in go-fuse's StableAttr, so hard links
// are one node and a reused inode number is a new node.
//
// Nodes are named by path. ext2fs offers os-style calls on names, not on
// inodes (nor on a directory handle, as openat does), so every operation on a node turns the node into its path in
// the go-fuse tree (the last known parent of each node up to the root)
// and checks, with Lstat, that the path still names the node's inode and
// generation. Operations that remove or move names (unlink, rmdir,
// rename) hold a mount-wide lock exclusively and all other path-based
// operations hold it shared, so a checked path keeps naming the same inode
// for the length of the operation. A path once checked is not checked
// again until a name is removed or moved (a namespace generation counts
// those). go-fuse updates its tree just after a
// rename or unlink returns; an operation that finds its path stale in that
// moment retries briefly, and otherwise fails with ENOENT: never does it
// act on another file. Operations on an open file (read, write, fstat,
// ftruncate, fsync) go through its ext2fs.File and need no path, so a file
// unlinked or renamed over while open keeps working, as on a local
// filesystem.
//
// # Permissions
//
// ext2fs makes no permission checks. The mount asks the kernel for
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
// names, missing names and attributes for one second (entry, negative
// entry and attribute timeouts);
// nothing else changes the image while it is mounted, so this only bounds
// how long a stale view could last. Files are opened without
// FOPEN_KEEP_CACHE, so the kernel drops its own cached pages of a file at
// each open and refills them from us, and with FOPEN_DIRECT_IO off, so
// reads and writes still go through the kernel's page cache in large
// requests (up to MaxWrite) rather than one request per system call.
// Writes are written through to us at once (no writeback cache): dirty
// data lives in our page cache only, and reaches the image at fsync, at
// our own writeback, and at unmount.
//
// # Errors
//
// ext2fs errors are mapped to errno values here and only here, by errno,
// which looks through wrapped errors with errors.As and errors.Is.
//
// # Not supported
//
// fallocate (ext2 has none: EOPNOTSUPP, as Linux's ext2), extended
// attributes (ENOTSUP), O_TMPFILE, RENAME_EXCHANGE and RENAME_WHITEOUT
// (EINVAL, as Linux's ext2), file locks in the filesystem (the kernel
// keeps POSIX and flock locks locally), and chmod, chown and utimes of a
// file that has no name left (ENOENT).
package fusemount
