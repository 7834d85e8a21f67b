package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mpagefs/mpage/fusemount"
	"github.com/spf13/cobra"
)

// mountReadyEnv marks the background child of "mpage mount": its value is
// the descriptor on which the child reports that the mount is ready
// ("ok") or why it failed.
const mountReadyEnv = "MPAGE_MOUNT_READY_FD"

// mountFlags are the flags of the mount command.
type mountFlags struct {
	ro         bool
	foreground bool
	allowOther bool
	noXattr    bool
	debug      bool
}

func newMountCmd(a *app) *cobra.Command {
	var o mountFlags
	cmd := &cobra.Command{
		Use:   "mount [--ro] [--foreground] [--allow-other] IMAGE DIR",
		Short: "Mount an image at a directory with FUSE, served through mpage's I/O stack",
		Long: `mount serves the ext2 filesystem in IMAGE at the directory DIR with FUSE,
so that every program reads and changes it through mpage's page cache,
buffer heads and multi-page bios.

Without --foreground the command returns once the mount is ready and
serves it from a process of its own. Unmount with "fusermount3 -u DIR"
or "umount DIR"; in the foreground, SIGINT and SIGTERM unmount too (a
second signal detaches a busy mount lazily). Unmounting writes
everything back and marks the image clean.

The kernel checks permissions (default_permissions) against the modes and
owners in the image; files are created with the caller's uid and gid.

Reads through the mount update access times as the global --atime says
(relatime by default, as Linux mounts; noatime, strictatime), and
--nodiratime keeps directory listings from updating them; a read-only
mount never does.`,
		Args: args(cobra.ExactArgs(2)),
	}
	f := cmd.Flags()
	f.BoolVar(&o.ro, "ro", false, "mount read-only (as the global --readonly)")
	f.BoolVarP(&o.foreground, "foreground", "f", false, "serve in this process until unmounted")
	f.BoolVar(&o.allowOther, "allow-other", false, "let users other than the mounter use the mount (allow_other)")
	f.BoolVar(&o.noXattr, "no-xattr", false, "do not serve extended attributes")
	f.BoolVar(&o.debug, "debug", false, "log every FUSE request on stderr (with --foreground)")
	cmd.RunE = func(_ *cobra.Command, argv []string) error {
		image, dir := argv[0], argv[1]
		if err := checkMountArgs(image, dir); err != nil {
			return err
		}
		if o.foreground || os.Getenv(mountReadyEnv) != "" {
			return a.mountForeground(o, image, dir)
		}
		return a.mountBackground(o, image, dir)
	}
	return cmd
}

// checkMountArgs refuses a missing image or a mount point that is not a
// directory before anything is started.
func checkMountArgs(image, dir string) error {
	if _, err := os.Stat(image); err != nil {
		return fmt.Errorf("%s: %s", image, errText(err))
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %s", dir, errText(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %s", dir, syscall.ENOTDIR.Error())
	}
	return nil
}

// mountForeground mounts and serves until the mount goes away, then
// closes the image. A background child reports readiness, or the error
// that stopped it, on the descriptor named by mountReadyEnv.
func (a *app) mountForeground(o mountFlags, image, dir string) error {
	var ready *os.File
	if v := os.Getenv(mountReadyEnv); v != "" {
		os.Unsetenv(mountReadyEnv)
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 3 {
			return fmt.Errorf("%s=%q: not a descriptor", mountReadyEnv, v)
		}
		ready = os.NewFile(uintptr(fd), "mount-ready")
	}
	err := a.serveMount(o, image, dir, func() {
		if ready != nil {
			io.WriteString(ready, "ok\n")
			ready.Close()
			ready = nil
		}
	})
	if ready != nil {
		msg := "mount process stopped before the mount was ready"
		if err != nil {
			msg = errText(err)
		}
		io.WriteString(ready, "error: "+msg+"\n")
		ready.Close()
	}
	return err
}

// serveMount opens the image, mounts it at dir, calls ready, and serves
// until the filesystem is unmounted; then it writes everything back.
func (a *app) serveMount(o mountFlags, image, dir string, ready func()) error {
	readOnly := o.ro || a.g.readOnly
	absImage, err := filepath.Abs(image)
	if err != nil {
		return err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	s := &session{a: a, write: !readOnly}
	fsys, err := s.open(image)
	if err != nil {
		s.closeAll()
		return err
	}
	// Catch SIGINT and SIGTERM before the mount appears: a signal that
	// arrives as soon as the directory is mounted must unmount cleanly,
	// not kill the process and leave a dead mount behind. Signals that
	// come before the server exists wait in the channel.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	srv, err := fusemount.Mount(fsys, absDir, fusemount.Options{
		ReadOnly:   readOnly,
		AllowOther: o.allowOther,
		NoXattr:    o.noXattr,
		Debug:      o.debug,
		FsName:     absImage,
	})
	if err != nil {
		s.closeAll()
		return fmt.Errorf("%s: %v", dir, err)
	}

	done := make(chan struct{})
	go func() {
		tries := 0
		for {
			select {
			case <-done:
				return
			case <-sigs:
			}
			tries++
			uerr := srv.Unmount()
			if uerr == nil {
				continue
			}
			if tries == 1 {
				fmt.Fprintf(a.stderr, "mpage: mount: %s is busy, still serving (%s); signal again to detach it lazily\n", absDir, errText(uerr))
				continue
			}
			if derr := detachLazily(absDir); derr != nil {
				fmt.Fprintf(a.stderr, "mpage: mount: cannot detach %s: %s\n", absDir, errText(derr))
			} else {
				fmt.Fprintf(a.stderr, "mpage: mount: %s detached; the image is closed when its last open file is\n", absDir)
			}
		}
	}()
	ready()
	srv.Wait()
	signal.Stop(sigs)
	close(done)
	return s.closeAll()
}

// detachLazily unmounts a busy mount lazily: fusermount3 -u -z, or
// umount2(MNT_DETACH) where that is missing.
func detachLazily(dir string) error {
	out, err := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
	if err == nil {
		return nil
	}
	if uerr := syscall.Unmount(dir, syscall.MNT_DETACH); uerr == nil {
		return nil
	}
	return fmt.Errorf("fusermount3 -u -z: %v: %s", err, strings.TrimSpace(string(out)))
}

// mountBackground runs "mpage mount --foreground" as a new session and
// returns once it reports the mount ready, or with the error it reports.
func (a *app) mountBackground(o mountFlags, image, dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this program to run it in the background: %v", err)
	}
	absImage, err := filepath.Abs(image)
	if err != nil {
		return err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	argv := []string{"--cache", a.g.cache, "--atime", a.atime.String()}
	if a.g.readOnly {
		argv = append(argv, "--readonly")
	}
	if a.g.noDirAtime {
		argv = append(argv, "--nodiratime")
	}
	if a.g.sb != 0 {
		argv = append(argv, "--sb", strconv.FormatInt(a.g.sb, 10))
	}
	argv = append(argv, "--huge-pages="+strconv.FormatBool(a.g.hugePages))
	argv = append(argv, "mount", "--foreground")
	if o.ro {
		argv = append(argv, "--ro")
	}
	if o.allowOther {
		argv = append(argv, "--allow-other")
	}
	if o.noXattr {
		argv = append(argv, "--no-xattr")
	}
	if o.debug {
		argv = append(argv, "--debug")
	}
	argv = append(argv, "--", absImage, absDir)

	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(exe, argv...)
	cmd.Env = append(os.Environ(), mountReadyEnv+"=3")
	cmd.ExtraFiles = []*os.File{w} // descriptor 3
	cmd.Dir = "/"                  // hold no directory busy
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Standard input and output are /dev/null: the server outlives
	// this command and must not hold its caller's pipes open.
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("starting the mount process: %v", err)
	}
	msg, _ := io.ReadAll(r)
	reply := strings.TrimSpace(string(msg))
	if reply == "ok" {
		return cmd.Process.Release()
	}
	werr := cmd.Wait()
	if after, ok := strings.CutPrefix(reply, "error: "); ok {
		return errors.New(after)
	}
	return fmt.Errorf("the mount process stopped before the mount was ready (%v)", werr)
}
