package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/ext2fs"
	"github.com/spf13/cobra"
)

// openSpec parses an IMAGE:PATH argument and opens its image.
func openSpec(s *session, arg string) (spec, *ext2fs.FS, error) {
	sp, err := parseSpec(arg)
	if err != nil {
		return sp, nil, err
	}
	fsys, err := s.open(sp.image)
	return sp, fsys, err
}

func newRmCmd(a *app) *cobra.Command {
	var recurse, force bool
	cmd := &cobra.Command{
		Use:   "rm [-r] [-f] IMAGE:PATH...",
		Short: "Remove files or directories from an image",
		Args:  args(cobra.MinimumNArgs(1)),
	}
	cmd.Flags().BoolVarP(&recurse, "recursive", "r", false, "remove directories and their contents")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "ignore missing files")
	cmd.RunE = a.runner(true, func(s *session, argv []string) error {
		for _, arg := range argv {
			sp, fsys, err := openSpec(s, arg)
			if err != nil {
				return err
			}
			if sp.path == "/" {
				return fmt.Errorf("%s: refusing to remove the root directory", sp)
			}
			fi, err := fsys.Lstat(sp.path)
			if err != nil {
				if force && errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return pathError(sp, err)
			}
			switch {
			case fi.IsDir() && !recurse:
				err = errors.New("is a directory (use -r)")
			case fi.IsDir():
				err = fsys.RemoveAll(sp.path)
			default:
				err = fsys.Remove(sp.path)
			}
			if err != nil {
				return pathError(sp, err)
			}
		}
		return nil
	})
	return cmd
}

// parseOctalMode reads an octal mode such as "755" or "1777".
func parseOctalMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, usagef("bad mode %q: want octal, e.g. 755", s)
	}
	return unixToMode(uint32(v)), nil
}

// unixToMode converts permission bits with setuid, setgid and sticky.
func unixToMode(v uint32) fs.FileMode {
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func modeToUnix(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

func newMkdirCmd(a *app) *cobra.Command {
	var parents bool
	var mode string
	cmd := &cobra.Command{
		Use:   "mkdir [-p] [-m MODE] IMAGE:PATH...",
		Short: "Make directories in an image",
		Args:  args(cobra.MinimumNArgs(1)),
	}
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "make parent directories as needed; no error if it exists")
	cmd.Flags().StringVarP(&mode, "mode", "m", "755", "permission bits (octal)")
	cmd.RunE = a.runner(true, func(s *session, argv []string) error {
		perm, err := parseOctalMode(mode)
		if err != nil {
			return err
		}
		for _, arg := range argv {
			sp, fsys, err := openSpec(s, arg)
			if err != nil {
				return err
			}
			if parents {
				err = fsys.MkdirAll(sp.path, perm)
			} else {
				err = fsys.Mkdir(sp.path, perm)
			}
			if err == nil && perm&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				err = fsys.Chmod(sp.path, perm)
			}
			if err != nil {
				return pathError(sp, err)
			}
		}
		return nil
	})
	return cmd
}

// sameImage parses arguments that must all name paths in one image.
func sameImage(s *session, argv []string) ([]spec, *ext2fs.FS, error) {
	var specs []spec
	var fsys *ext2fs.FS
	for _, arg := range argv {
		sp, f, err := openSpec(s, arg)
		if err != nil {
			return nil, nil, err
		}
		if fsys != nil && f != fsys {
			return nil, nil, fmt.Errorf("%s and %s are in different images", specs[0], sp)
		}
		fsys = f
		specs = append(specs, sp)
	}
	return specs, fsys, nil
}

func newMvCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mv IMAGE:SRC... IMAGE:DST",
		Short: "Move or rename files within an image",
		Long: `Move or rename files within one image. If DST is a directory, each SRC moves
into it; otherwise the one SRC is renamed DST, replacing a file there.`,
		Args: args(cobra.MinimumNArgs(2)),
	}
	cmd.RunE = a.runner(true, func(s *session, argv []string) error {
		specs, fsys, err := sameImage(s, argv)
		if err != nil {
			return err
		}
		dst := specs[len(specs)-1]
		dstDir := false
		if fi, err := fsys.Stat(dst.path); err == nil && fi.IsDir() {
			dstDir = true
		}
		if len(specs) > 2 && !dstDir {
			return fmt.Errorf("target %s is not a directory", dst)
		}
		for _, src := range specs[:len(specs)-1] {
			to := dst.path
			if dstDir {
				to = path.Join(dst.path, path.Base(src.path))
			}
			if err := fsys.Rename(src.path, to); err != nil {
				return fmt.Errorf("%s -> %s: %s", src, to, errnoText(err))
			}
		}
		return nil
	})
	return cmd
}

// errnoText is the errno's words if err has one, else the whole message.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return errText(err)
}

func newLnCmd(a *app) *cobra.Command {
	var symbolic bool
	cmd := &cobra.Command{
		Use:   "ln [-s] TARGET IMAGE:LINK",
		Short: "Make a hard or symbolic link in an image",
		Long: `Make LINK (inside an image) a hard link to TARGET, a path in the same image
(IMAGE:PATH or just PATH), or with -s a symbolic link whose target is the
text TARGET. If LINK is a directory, the link is made in it under TARGET's
last name.`,
		Args: args(cobra.ExactArgs(2)),
	}
	cmd.Flags().BoolVarP(&symbolic, "symbolic", "s", false, "make a symbolic link")
	cmd.RunE = a.runner(true, func(s *session, argv []string) error {
		sp, fsys, err := openSpec(s, argv[1])
		if err != nil {
			return err
		}
		target := argv[0]
		if !symbolic {
			if tsp, ok := hostOrSpec(target); ok {
				tf, err := s.open(tsp.image)
				if err != nil {
					return err
				}
				if tf != fsys {
					return fmt.Errorf("%s and %s are in different images", tsp, sp)
				}
				target = tsp.path
			}
			target = cleanImagePath(target)
		}
		if fi, err := fsys.Stat(sp.path); err == nil && fi.IsDir() {
			sp.path = path.Join(sp.path, path.Base(target))
		}
		if symbolic {
			err = fsys.Symlink(target, sp.path)
		} else {
			err = fsys.Link(target, sp.path)
		}
		if err != nil {
			return fmt.Errorf("%s: %s", sp, errnoText(err))
		}
		return nil
	})
	return cmd
}

// parseChmod applies a chmod mode, octal ("644") or symbolic
// ("u+x,go-w", "a=r", "+t"), to the current mode.
func parseChmod(spec string, cur fs.FileMode, isDir bool) (fs.FileMode, error) {
	if spec != "" && spec[0] >= '0' && spec[0] <= '7' {
		return parseOctalMode(spec)
	}
	v := modeToUnix(cur)
	for _, clause := range strings.Split(spec, ",") {
		i := 0
		var who uint32
		for ; i < len(clause) && strings.IndexByte("ugoa", clause[i]) >= 0; i++ {
			switch clause[i] {
			case 'u':
				who |= 0o4700
			case 'g':
				who |= 0o2070
			case 'o':
				who |= 0o1007
			case 'a':
				who |= 0o7777
			}
		}
		if who == 0 {
			who = 0o7777
		}
		if i >= len(clause) {
			return 0, usagef("bad mode %q", spec)
		}
		for i < len(clause) {
			op := clause[i]
			if op != '+' && op != '-' && op != '=' {
				return 0, usagef("bad mode %q", spec)
			}
			i++
			var bits uint32
			for ; i < len(clause) && strings.IndexByte("rwxXst", clause[i]) >= 0; i++ {
				switch clause[i] {
				case 'r':
					bits |= 0o444
				case 'w':
					bits |= 0o222
				case 'x':
					bits |= 0o111
				case 'X':
					if isDir || v&0o111 != 0 {
						bits |= 0o111
					}
				case 's':
					bits |= 0o6000
				case 't':
					bits |= 0o1000
				}
			}
			bits &= who
			switch op {
			case '+':
				v |= bits
			case '-':
				v &^= bits
			case '=':
				v = v&^(who&0o777) | bits
			}
		}
	}
	return unixToMode(v), nil
}

func newChmodCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chmod MODE IMAGE:PATH...",
		Short: "Change the mode of files in an image",
		Long: `Change the permission bits of files in an image. MODE is octal (755, 4755)
or symbolic as chmod(1) reads it (u+x, go-w, a=rX, +t).`,
		Args: args(cobra.MinimumNArgs(2)),
	}
	cmd.RunE = a.runner(true, func(s *session, argv []string) error {
		for _, arg := range argv[1:] {
			sp, fsys, err := openSpec(s, arg)
			if err != nil {
				return err
			}
			fi, err := fsys.Stat(sp.path)
			if err != nil {
				return pathError(sp, err)
			}
			mode, err := parseChmod(argv[0], fi.Mode(), fi.IsDir())
			if err != nil {
				return err
			}
			if err := fsys.Chmod(sp.path, mode); err != nil {
				return pathError(sp, err)
			}
		}
		return nil
	})
	return cmd
}

// parseOwner reads UID[:GID] (or :GID); -1 leaves an id as it is.
func parseOwner(s string) (uid, gid int, err error) {
	uid, gid = -1, -1
	u, g, hasG := strings.Cut(s, ":")
	if u == "" && (!hasG || g == "") {
		return 0, 0, usagef("bad owner %q: want UID[:GID]", s)
	}
	num := func(x string) (int, error) {
		v, err := strconv.ParseUint(x, 10, 32)
		if err != nil {
			return 0, usagef("bad owner %q: want numeric UID[:GID]", s)
		}
		return int(v), nil
	}
	if u != "" {
		if uid, err = num(u); err != nil {
			return
		}
	}
	if hasG && g != "" {
		if gid, err = num(g); err != nil {
			return
		}
	}
	return uid, gid, nil
}

func newChownCmd(a *app) *cobra.Command {
	var noDeref bool
	cmd := &cobra.Command{
		Use:   "chown [-h] UID[:GID] IMAGE:PATH...",
		Short: "Change the owner and group of files in an image",
		Args:  args(cobra.MinimumNArgs(2)),
	}
	cmd.Flags().BoolVarP(&noDeref, "no-dereference", "h", false, "change a symbolic link itself")
	cmd.Flags().BoolP("help", "", false, "help for chown")
	cmd.RunE = a.runner(true, func(s *session, argv []string) error {
		uid, gid, err := parseOwner(argv[0])
		if err != nil {
			return err
		}
		for _, arg := range argv[1:] {
			sp, fsys, err := openSpec(s, arg)
			if err != nil {
				return err
			}
			if noDeref {
				err = fsys.Lchown(sp.path, uid, gid)
			} else {
				err = fsys.Chown(sp.path, uid, gid)
			}
			if err != nil {
				return pathError(sp, err)
			}
		}
		return nil
	})
	return cmd
}

// parseTime reads a time for touch -d: RFC 3339, "2006-01-02 15:04:05",
// "2006-01-02" (local time) or "@SECONDS".
func parseTime(s string) (time.Time, error) {
	if strings.HasPrefix(s, "@") {
		v, err := strconv.ParseInt(s[1:], 10, 64)
		if err != nil {
			return time.Time{}, usagef("bad time %q", s)
		}
		return time.Unix(v, 0), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("bad time %q: want RFC 3339, \"YYYY-MM-DD[ HH:MM:SS]\" or @SECONDS", s)
}

func newTouchCmd(a *app) *cobra.Command {
	var noCreate bool
	var date string
	cmd := &cobra.Command{
		Use:   "touch [-c] [-d TIME] IMAGE:PATH...",
		Short: "Create empty files in an image, or set their times",
		Args:  args(cobra.MinimumNArgs(1)),
	}
	cmd.Flags().BoolVarP(&noCreate, "no-create", "c", false, "do not create missing files")
	cmd.Flags().StringVarP(&date, "date", "d", "", "use this time instead of now (RFC 3339, YYYY-MM-DD[ HH:MM:SS], @SECONDS)")
	cmd.RunE = a.runner(true, func(s *session, argv []string) error {
		when := time.Now()
		if date != "" {
			t, err := parseTime(date)
			if err != nil {
				return err
			}
			when = t
		}
		for _, arg := range argv {
			sp, fsys, err := openSpec(s, arg)
			if err != nil {
				return err
			}
			if _, err := fsys.Stat(sp.path); errors.Is(err, fs.ErrNotExist) {
				if noCreate {
					continue
				}
				f, err := fsys.OpenFile(sp.path, os.O_WRONLY|os.O_CREATE, 0o644)
				if err != nil {
					return pathError(sp, err)
				}
				if err := f.Close(); err != nil {
					return pathError(sp, err)
				}
			}
			if err := fsys.Chtimes(sp.path, when, when); err != nil {
				return pathError(sp, err)
			}
		}
		return nil
	})
	return cmd
}
