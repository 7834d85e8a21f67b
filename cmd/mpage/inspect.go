package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mpagefs/mpage/ext2fs"
	"github.com/spf13/cobra"
)

func newLsCmd(a *app) *cobra.Command {
	var long, all, inum bool
	cmd := &cobra.Command{
		Use:   "ls [-l] [-a] [-i] IMAGE[:PATH]...",
		Short: "List a directory of an image",
		Long: `List the entries of a directory in an image, sorted by name, one per line.
With -l, each line shows the mode, links, owner, group, size (or device
numbers), modification time and name (and a symlink's target).`,
		Args: args(cobra.MinimumNArgs(1)),
	}
	f := cmd.Flags()
	f.BoolVarP(&long, "long", "l", false, "long listing")
	f.BoolVarP(&all, "all", "a", false, "include . and ..")
	f.BoolVarP(&inum, "inode", "i", false, "print inode numbers")
	cmd.RunE = a.runner(false, func(s *session, argv []string) error {
		for i, arg := range argv {
			sp, err := parseSpec(arg)
			if err != nil {
				return err
			}
			if len(argv) > 1 {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				fmt.Fprintf(a.stdout, "%s:\n", sp)
			}
			if err := a.ls(s, sp, long, all, inum); err != nil {
				return err
			}
		}
		return nil
	})
	return cmd
}

func (a *app) ls(s *session, sp spec, long, all, inum bool) error {
	fsys, err := s.open(sp.image)
	if err != nil {
		return err
	}
	name := ioPath(sp.path)
	fi, err := fsys.Stat(name)
	if err != nil {
		return pathError(sp, err)
	}
	if long {
		if lfi, err := fsys.Lstat(name); err == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			fi = lfi
		}
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 0, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	if !fi.IsDir() {
		return a.lsLine(tw, fsys, name, path.Base(sp.path), fi, long, inum)
	}
	if all {
		for _, dot := range []string{".", ".."} {
			dfi, err := fsys.Stat(ioPath(path.Join(sp.path, dot)))
			if err != nil {
				return pathError(sp, err)
			}
			if err := a.lsLine(tw, fsys, "", dot, dfi, long, inum); err != nil {
				return err
			}
		}
	}
	ents, err := fsys.ReadDir(name)
	if err != nil {
		return pathError(sp, err)
	}
	for _, e := range ents {
		efi, err := e.Info()
		if err != nil {
			return pathError(spec{sp.image, path.Join(sp.path, e.Name())}, err)
		}
		if err := a.lsLine(tw, fsys, ioPath(path.Join(sp.path, e.Name())), e.Name(), efi, long, inum); err != nil {
			return err
		}
	}
	return nil
}

// lsLine prints one entry; with long, fields are separated by tabs for
// the tabwriter, numbers right-aligned.
func (a *app) lsLine(w io.Writer, fsys *ext2fs.FS, full, name string, fi fs.FileInfo, long, inum bool) error {
	ii, _ := fi.Sys().(*ext2fs.InodeInfo)
	if ii == nil {
		ii = &ext2fs.InodeInfo{}
	}
	var b strings.Builder
	if inum {
		fmt.Fprintf(&b, "%d\t ", ii.Ino)
	}
	if !long {
		b.WriteString(name)
		fmt.Fprintf(w, "%s\n", strings.ReplaceAll(b.String(), "\t ", " "))
		return nil
	}
	size := fmt.Sprint(fi.Size())
	if fi.Mode()&fs.ModeDevice != 0 {
		size = fmt.Sprintf("%d, %d", ii.Major, ii.Minor)
	}
	fmt.Fprintf(&b, "%s\t %d\t %d\t %d\t %s\t %s %s", modeString(fi.Mode()), ii.Nlink, ii.UID, ii.GID, size,
		fi.ModTime().Format("2006-01-02 15:04"), name)
	// The last cell (time and name) ends without a tab: left as it is.
	if fi.Mode()&fs.ModeSymlink != 0 && full != "" {
		if target, err := fsys.ReadLink(full); err == nil {
			fmt.Fprintf(&b, " -> %s", target)
		}
	}
	fmt.Fprintf(w, "%s\n", b.String())
	return nil
}

// modeString prints a mode as ls -l does: "drwxr-xr-x", "-rwsr-xr-x".
func modeString(m fs.FileMode) string {
	var b [10]byte
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	default:
		b[0] = '-'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<uint(8-i)) != 0 {
			b[i+1] = rwx[i]
		} else {
			b[i+1] = '-'
		}
	}
	special := func(i int, set bool, on, off byte) {
		if !set {
			return
		}
		if b[i] != '-' {
			b[i] = on
		} else {
			b[i] = off
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b[:])
}

func newCatCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cat IMAGE:PATH...",
		Short: "Print files of an image to standard output",
		Args:  args(cobra.MinimumNArgs(1)),
	}
	cmd.RunE = a.runner(false, func(s *session, argv []string) error {
		for _, arg := range argv {
			sp, err := parseSpec(arg)
			if err != nil {
				return err
			}
			fsys, err := s.open(sp.image)
			if err != nil {
				return err
			}
			f, err := fsys.Open(ioPath(sp.path))
			if err != nil {
				return pathError(sp, err)
			}
			fi, err := f.Stat()
			if err == nil && fi.IsDir() {
				err = syscall.EISDIR
			}
			if err == nil {
				// Plain Writer and Reader: an *os.File stdout would
				// otherwise take over with ReadFrom, which copies
				// through a 32 KiB buffer of its own (32 times the
				// calls into the page cache and the writes to stdout).
				_, err = io.CopyBuffer(struct{ io.Writer }{a.stdout}, struct{ io.Reader }{f}, make([]byte, 1<<20))
			}
			f.Close()
			if err != nil {
				return pathError(sp, err)
			}
		}
		return nil
	})
	return cmd
}

func newStatCmd(a *app) *cobra.Command {
	var runs int
	cmd := &cobra.Command{
		Use:   "stat IMAGE:PATH...",
		Short: "Show an inode of an image: attributes and block map",
		Long: `Show the inode a path names (a symbolic link itself, not its target): number,
type, mode, links, owner, size, blocks, times, and a summary of its block
map: the runs of contiguous blocks, and the first few of them.`,
		Args: args(cobra.MinimumNArgs(1)),
	}
	cmd.Flags().IntVar(&runs, "runs", 8, "block runs to list (-1: all)")
	cmd.RunE = a.runner(false, func(s *session, argv []string) error {
		for i, arg := range argv {
			sp, err := parseSpec(arg)
			if err != nil {
				return err
			}
			if i > 0 {
				fmt.Fprintln(a.stdout)
			}
			if err := a.stat(s, sp, runs); err != nil {
				return err
			}
		}
		return nil
	})
	return cmd
}

// typeName names a file type as stat(1) does.
func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeCharDevice != 0:
		return "character special file"
	case m&fs.ModeDevice != 0:
		return "block special file"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "regular file"
}

func (a *app) stat(s *session, sp spec, maxRuns int) error {
	fsys, err := s.open(sp.image)
	if err != nil {
		return err
	}
	fi, err := fsys.Lstat(ioPath(sp.path))
	if err != nil {
		return pathError(sp, err)
	}
	ii := fi.Sys().(*ext2fs.InodeInfo)
	w := a.stdout
	name := sp.path
	if fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := fsys.ReadLink(ioPath(sp.path)); err == nil {
			name += " -> " + t
		}
	}
	fmt.Fprintf(w, "  File: %s\n", name)
	fmt.Fprintf(w, " Inode: %d\n  Type: %s\n", ii.Ino, typeName(fi.Mode()))
	fmt.Fprintf(w, "  Mode: %04o (%s)\n", ii.Mode&0o7777, modeString(fi.Mode()))
	fmt.Fprintf(w, " Links: %d\n   Uid: %d\n   Gid: %d\n", ii.Nlink, ii.UID, ii.GID)
	fmt.Fprintf(w, "  Size: %d\nBlocks: %d (512-byte units)\n", ii.Size, ii.Blocks)
	if fi.Mode()&fs.ModeDevice != 0 {
		fmt.Fprintf(w, "Device: %d,%d\n", ii.Major, ii.Minor)
	}
	fmt.Fprintf(w, " Flags: %#x\nGeneration: %d\n", ii.Flags, ii.Generation)
	for _, t := range []struct {
		n string
		t time.Time
	}{{"Access", ii.Atime}, {"Modify", ii.Mtime}, {"Change", ii.Ctime}} {
		fmt.Fprintf(w, "%s: %s (%d)\n", t.n, t.t.Format("2006-01-02 15:04:05 -0700"), t.t.Unix())
	}
	runs, err := fsys.BlockMap(sp.path)
	if err != nil {
		return pathError(sp, err)
	}
	if len(runs) == 0 {
		fmt.Fprintf(w, "Block map: no data blocks\n")
		return nil
	}
	blocks := int64(0)
	for _, r := range runs {
		blocks += r.Count
	}
	fmt.Fprintf(w, "Block map: %d data blocks in %d runs\n", blocks, len(runs))
	for i, r := range runs {
		if maxRuns >= 0 && i >= maxRuns {
			fmt.Fprintf(w, "  ... %d more runs\n", len(runs)-i)
			break
		}
		if r.Count == 1 {
			fmt.Fprintf(w, "  (%d):%d\n", r.Logical, r.Physical)
		} else {
			fmt.Fprintf(w, "  (%d-%d):%d-%d\n", r.Logical, r.Logical+r.Count-1, r.Physical, r.Physical+r.Count-1)
		}
	}
	return nil
}

func newDfCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "df IMAGE...",
		Short: "Show the space and inodes used and free in images",
		Args:  args(cobra.MinimumNArgs(1)),
	}
	cmd.RunE = a.runner(false, func(s *session, argv []string) error {
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "Image\tBlock size\tBlocks\tUsed\tAvailable\tUse%%\tInodes\tIUsed\tIFree\tIUse%%\t\n")
		for _, arg := range argv {
			sp, err := parseSpec(arg)
			if err != nil {
				return err
			}
			fsys, err := s.open(sp.image)
			if err != nil {
				return err
			}
			u, err := fsys.Statfs()
			if err != nil {
				return fmt.Errorf("%s: %s", sp.image, errText(err))
			}
			used := u.Blocks - u.FreeBlocks
			iused := u.Inodes - u.FreeInodes
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%s\t\n", sp.image, u.BlockSize, u.Blocks, used, u.AvailBlocks,
				percent(used, used+u.AvailBlocks), u.Inodes, iused, u.FreeInodes, percent(iused, u.Inodes))
		}
		return tw.Flush()
	})
	return cmd
}

// percent is df's Use%: used/total rounded up, "-" for an empty total.
func percent(used, total uint64) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", (used*100+total-1)/total)
}

var _ = os.Stdout
