package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2fs"
	"github.com/spf13/cobra"
)

// spec is an IMAGE:PATH argument.
type spec struct {
	image string // the image file as given
	path  string // absolute, cleaned path inside the image ("/" for the root)
}

func (s spec) String() string { return s.image + ":" + s.path }

// isImageFile reports whether name is an existing regular file or block
// device: something that can hold an image.
func isImageFile(name string) bool {
	st, err := os.Stat(name)
	if err != nil {
		return false
	}
	return st.Mode().IsRegular() || st.Mode()&fs.ModeDevice != 0 && st.Mode()&fs.ModeCharDevice == 0
}

// splitSpec splits an IMAGE:PATH argument at the first colon whose prefix
// is an existing image file (so that image names may hold colons too), or,
// failing that, at the first colon. ok is false without a colon.
func splitSpec(arg string) (s spec, ok bool) {
	first := -1
	for i := 0; i < len(arg); i++ {
		if arg[i] != ':' {
			continue
		}
		if first < 0 {
			first = i
		}
		if isImageFile(arg[:i]) {
			return spec{image: arg[:i], path: cleanImagePath(arg[i+1:])}, true
		}
	}
	if first <= 0 {
		return spec{}, false
	}
	return spec{image: arg[:first], path: cleanImagePath(arg[first+1:])}, true
}

// hostOrSpec tells a host path from an IMAGE:PATH in cp: an argument is
// an image path when it has a colon after an existing image file name.
func hostOrSpec(arg string) (s spec, isImage bool) {
	for i := 0; i < len(arg); i++ {
		if arg[i] == ':' && i > 0 && isImageFile(arg[:i]) {
			return spec{image: arg[:i], path: cleanImagePath(arg[i+1:])}, true
		}
	}
	return spec{}, false
}

// parseSpec reads an argument that must name a path in an image; a bare
// IMAGE is its root.
func parseSpec(arg string) (spec, error) {
	if s, ok := hostOrSpec(arg); ok {
		return s, nil
	}
	if isImageFile(arg) {
		return spec{image: arg, path: "/"}, nil
	}
	if s, ok := splitSpec(arg); ok {
		return s, nil
	}
	if arg == "" {
		return spec{}, usagef("empty argument: want IMAGE:PATH")
	}
	return spec{image: arg, path: "/"}, nil
}

func cleanImagePath(p string) string { return path.Clean("/" + p) }

// ioPath turns an absolute image path into an io/fs name ("." for the
// root).
func ioPath(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// session holds the images one command opened, each opened once, and
// closes them all at the end whatever happened.
type session struct {
	a      *app
	images map[string]*ext2fs.FS // by absolute file name
	order  []string
	write  bool // the command changes images
}

// open returns the filesystem in image, opening it on first use: read-only
// unless the command writes. A writing command refuses --readonly.
func (s *session) open(image string) (*ext2fs.FS, error) {
	key, err := filepath.Abs(image)
	if err != nil {
		key = image
	}
	if f, ok := s.images[key]; ok {
		return f, nil
	}
	if s.write && s.a.g.readOnly {
		return nil, fmt.Errorf("%s: --readonly given, and %s changes the image", image, s.a.command)
	}
	if _, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("%s: %s", image, errnoText(err))
	}
	f, err := ext2fs.Open(image, ext2fs.Options{
		ReadOnly: !s.write, CacheLimit: s.a.cache,
		Atime: s.a.atime, NoDirAtime: s.a.g.noDirAtime,
		SuperblockAt: s.a.g.sb,
		Mount:        ext2.Options{HugePages: s.a.g.hugePages},
	})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		// The filesystem's own message already names the image.
		msg := strings.TrimPrefix(errnoText(err), image+": ")
		return nil, fmt.Errorf("%s: cannot open as ext2: %s", image, msg)
	}
	if s.images == nil {
		s.images = map[string]*ext2fs.FS{}
	}
	s.images[key] = f
	s.order = append(s.order, key)
	return f, nil
}

// closeAll closes every image, adding its counters to the run's, and
// returns the first error.
func (s *session) closeAll() error {
	var first error
	for _, key := range s.order {
		f := s.images[key]
		err := f.Close()
		s.a.stats.add(f.Stats())
		if err != nil && first == nil {
			first = fmt.Errorf("%s: closing: %s", key, errText(err))
		}
	}
	s.images, s.order = nil, nil
	return first
}

// runner wraps a command body: it gets a session that is closed at the
// end, on success and on error alike.
func (a *app) runner(write bool, body func(s *session, args []string) error) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		s := &session{a: a, write: write}
		err := body(s, args)
		if cerr := s.closeAll(); err == nil {
			err = cerr
		}
		return err
	}
}

// errText is the message of err for the user: the path it concerns and
// the errno's own words, or the whole chain where there is no errno
// (corruption, bad options).
func errText(err error) string {
	if err == nil {
		return ""
	}
	var se *specError
	if errors.As(err, &se) {
		return se.Error()
	}
	var pe *fs.PathError
	var le *os.LinkError
	var errno syscall.Errno
	hasErrno := errors.As(err, &errno) && !errors.Is(err, ext2.ErrCorrupt)
	switch {
	case errors.As(err, &pe) && hasErrno:
		return fmt.Sprintf("%s: %s", pe.Path, errno.Error())
	case errors.As(err, &le) && hasErrno:
		return fmt.Sprintf("%s %s %s: %s", le.Op, le.Old, le.New, errno.Error())
	case errors.As(err, &pe):
		return fmt.Sprintf("%s: %s", pe.Path, pe.Err.Error())
	}
	return err.Error()
}

// pathError is an error about a path in an image, printed IMAGE:PATH:
// what.
func pathError(s spec, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) && !errors.Is(err, ext2.ErrCorrupt) {
		return &specError{s: s, msg: errno.Error(), err: err}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &specError{s: s, msg: pe.Err.Error(), err: err}
	}
	return &specError{s: s, msg: err.Error(), err: err}
}

type specError struct {
	s   spec
	msg string
	err error
}

func (e *specError) Error() string { return e.s.String() + ": " + e.msg }
func (e *specError) Unwrap() error { return e.err }
