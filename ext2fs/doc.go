// Package ext2fs is the Go API of the ext2 filesystem of this module: open
// an image file or block device, read it through the standard io/fs
// interfaces, change it with methods shaped like package os, and copy
// trees in and out of it.
//
//	fsys, err := ext2fs.Open("disk.img", ext2fs.Options{})
//	...
//	defer fsys.Close()
//	data, err := fs.ReadFile(fsys, "etc/hostname")
//	f, err := fsys.OpenFile("/var/log/messages", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
//
// # Names
//
// Two kinds of names are accepted, as in the standard library:
//
//   - The io/fs methods (Open, ReadDir, ReadFile, ReadLink, Sub, and the
//     fs.FS implementations returned by Sub) take io/fs names: unrooted,
//     slash-separated, without "." or ".." elements or empty elements
//     (fs.ValidPath); "." is the root. Anything else fails with an
//     *fs.PathError wrapping fs.ErrInvalid.
//   - The os-style methods (Create, OpenFile, Mkdir, MkdirAll, Remove,
//     RemoveAll, Rename, Symlink, Link, Readlink, Chmod, Chown, Lchown,
//     Chtimes, Lchtimes, Truncate, Mknod, OpenTmpfile, File.LinkTo, and
//     CopyOut's and CopyIn's image side) take names as package os does:
//     absolute ("/a/b") or relative to the filesystem root ("a/b"), both
//     meaning the same, cleaned lexically with path.Clean first
//     ("/a/../b" is "/b"). There is no current directory other than the
//     root.
//   - Stat and Lstat serve both roles (they implement fs.StatFS and
//     fs.ReadLinkFS, and are the os-style Stat and Lstat): they accept
//     every io/fs name and every os-style name.
//
// Symbolic links are resolved inside the image: an absolute target starts
// at the image's root and ".." at the root stays at the root, so no name
// ever leads outside the filesystem. At most 40 links are followed in one
// lookup; more fail with syscall.ELOOP. A name element longer than 255
// bytes fails with syscall.ENAMETOOLONG.
//
// # Errors
//
// Errors of the io/fs and os-style methods are *fs.PathError values, or
// *os.LinkError for Rename, Link, Symlink and File.LinkTo. They wrap what package
// ext2 reported, so both errors.Is(err, fs.ErrNotExist) and
// errors.Is(err, syscall.ENOENT) hold, and likewise fs.ErrExist (EEXIST,
// ENOTEMPTY), fs.ErrInvalid (EINVAL), fs.ErrPermission (EPERM, EACCES),
// syscall.ENOTDIR, EISDIR, ENOSPC, ENAMETOOLONG, EMLINK, EXDEV, ELOOP and
// EFBIG. Every change to a filesystem opened read-only (or turned
// read-only by an error) fails with syscall.EROFS. Corrupt metadata gives
// errors wrapping ext2.ErrCorrupt.
//
// # Permissions
//
// No permission checks are made: the caller acts as the superuser of the
// image, as debugfs does. Modes, owners and times are stored and reported
// faithfully.
//
// # Concurrency
//
// An *FS and its *File values are safe for concurrent use by multiple
// goroutines. ReadAt, WriteAt, Stat and Sync of one File may run
// concurrently with each other and with every other call; Read, Write,
// Seek, ReadDir and Readdir share the file offset and are serialised on
// it, as with *os.File. Writes to one file are serialised by its inode
// lock, and an O_APPEND write finds the end of file and writes there under
// that lock, so appends from many handles each land whole at the end.
// Close of the FS must not race with other calls; calls after it fail.
package ext2fs
