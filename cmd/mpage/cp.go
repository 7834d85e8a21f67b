package main

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/mpagefs/mpage/ext2fs"
	"github.com/spf13/cobra"
)

func newCpCmd(a *app) *cobra.Command {
	var recurse, archive bool
	cmd := &cobra.Command{
		Use:   "cp [-r] [-a] SRC... DST",
		Short: "Copy files into, out of and within images",
		Long: `Copy files between the host and images, as cp does, with IMAGE:PATH naming
a path inside an image on either side: host to image (copy in), image to
host (copy out) and image to image. With several SRC, DST must be a
directory. Holes of sparse files are kept.

  -r  copy directories recursively (symbolic links and special files are
      copied as themselves)
  -a  archive: -r, and keep modes, owners, times and hard links

Copying out never writes outside DST, whatever names or symbolic links
the image holds.`,
		Example: `  mpage cp -a ./etc disk.img:/
  mpage cp disk.img:/etc/hostname .
  mpage cp -r disk.img:/var/log disk.img:/backup`,
		Args: args(cobra.MinimumNArgs(2)),
	}
	f := cmd.Flags()
	f.BoolVarP(&recurse, "recursive", "r", false, "copy directories recursively")
	f.BoolVarP(&archive, "archive", "a", false, "recursive, keeping modes, owners, times and hard links")
	cmd.RunE = func(c *cobra.Command, argv []string) error {
		dstArg := argv[len(argv)-1]
		_, dstImage := hostOrSpec(dstArg)
		s := &session{a: a, write: dstImage}
		err := a.cp(s, argv[:len(argv)-1], dstArg, recurse || archive, archive)
		if cerr := s.closeAll(); err == nil {
			err = cerr
		}
		return err
	}
	return cmd
}

// baseOf is the name a copy of p gets inside a destination directory;
// "" for a root or "." (whose contents are copied into the directory).
func baseOf(p string, image bool) string {
	var b string
	if image {
		b = path.Base(p)
	} else {
		if strings.HasSuffix(p, "/.") || p == "." {
			return ""
		}
		b = filepath.Base(filepath.Clean(p))
	}
	if b == "/" || b == "." {
		return ""
	}
	return b
}

func (a *app) cp(s *session, srcs []string, dstArg string, recurse, preserve bool) error {
	dsp, dstImage := hostOrSpec(dstArg)
	// Where DST is, and whether it is a directory to copy into.
	var dstDir bool
	if dstImage {
		fsys, err := s.open(dsp.image)
		if err != nil {
			return err
		}
		if fi, err := fsys.Stat(dsp.path); err == nil && fi.IsDir() {
			dstDir = true
		}
	} else if fi, err := os.Stat(dstArg); err == nil && fi.IsDir() {
		dstDir = true
	}
	if len(srcs) > 1 && !dstDir {
		return fmt.Errorf("target %s is not a directory", dstArg)
	}
	opts := ext2fs.CopyOptions{Replace: true, Source: ext2fs.SourceLinkCopy}
	if !recurse {
		opts.Source = ext2fs.SourceLinkFollow
	}
	if !preserve {
		opts.NoOwners, opts.NoTimes, opts.NoHardLinks, opts.NoSpecialBits = true, true, true, true
	}
	var total int64 = -1
	if a.wantProgress() {
		total = 0
		for _, src := range srcs {
			if u, err := a.measureSrc(s, src); err == nil {
				total += u.DataBytes
			}
		}
	}
	prog := a.newProgress(total, "cp")
	defer prog.done()
	if prog != nil {
		opts.Progress = prog.add
	}
	for _, src := range srcs {
		srcFS, srcImage, err := a.openSrc(s, src)
		if err != nil {
			return err
		}
		ssp, _ := hostOrSpec(src)
		if !srcImage && !dstImage {
			return usagef("neither %s nor %s is in an image (write IMAGE:PATH)", src, dstArg)
		}
		base := baseOf(src, srcImage)
		if srcImage {
			base = baseOf(ssp.path, true)
		}
		if !recurse {
			var fi fs.FileInfo
			if srcImage {
				fi, err = srcFS.Stat(ioPath(ssp.path))
			} else {
				fi, err = os.Stat(filepath.Clean(src))
			}
			if err != nil {
				return fmt.Errorf("%s: %s", src, errText(err))
			}
			if fi.IsDir() {
				return fmt.Errorf("-r not given; omitting directory %s", src)
			}
		}
		if dstImage {
			fsys, _ := s.open(dsp.image)
			to := dsp.path
			if dstDir {
				to = path.Join(dsp.path, base)
			}
			if srcImage && sameFile(ssp.image, dsp.image) {
				if to == ssp.path {
					return fmt.Errorf("%s and %s are the same file", src, dstArg)
				}
				if strings.HasPrefix(to, strings.TrimSuffix(ssp.path, "/")+"/") {
					return fmt.Errorf("cannot copy %s into itself, %s", src, dsp.image+":"+to)
				}
			}
			if srcImage {
				err = ext2fs.CopyBetween(srcFS, ssp.path, fsys, to, opts)
			} else {
				err = ext2fs.CopyIn(fsys, filepath.Clean(src), to, opts)
			}
		} else {
			rootDir, name := dstArg, base
			if !dstDir {
				rootDir, name = filepath.Dir(filepath.Clean(dstArg)), filepath.Base(filepath.Clean(dstArg))
			}
			if name == "" {
				name = "."
			}
			root, rerr := os.OpenRoot(rootDir)
			if rerr != nil {
				return fmt.Errorf("%s", errText(rerr))
			}
			defer root.Close()
			err = ext2fs.CopyOutRoot(srcFS, ssp.path, root, name, opts)
		}
		if err != nil {
			return fmt.Errorf("%s: %s", src, errText(err))
		}
	}
	return nil
}

// openSrc checks that a cp source exists, and opens its image if it is
// in one.
func (a *app) openSrc(s *session, src string) (*ext2fs.FS, bool, error) {
	if sp, ok := hostOrSpec(src); ok {
		fsys, err := s.open(sp.image)
		if err != nil {
			return nil, true, err
		}
		if _, err := fsys.Lstat(sp.path); err != nil {
			return nil, true, pathError(sp, err)
		}
		return fsys, true, nil
	}
	if _, err := os.Lstat(src); err != nil {
		if strings.Contains(src, ":") {
			return nil, false, fmt.Errorf("%s: no such file, nor IMAGE:PATH with an existing image", src)
		}
		return nil, false, fmt.Errorf("%s", errText(err))
	}
	return nil, false, nil
}

// measureSrc counts what a cp source holds, for the progress bar.
func (a *app) measureSrc(s *session, src string) (ext2fs.TreeSize, error) {
	fsys, srcImage, err := a.openSrc(s, src)
	if err != nil {
		return ext2fs.TreeSize{}, err
	}
	if srcImage {
		sp, _ := hostOrSpec(src)
		return ext2fs.MeasureImage(fsys, sp.path)
	}
	return ext2fs.MeasureTree(filepath.Clean(src))
}

// sameFile reports whether two image names are the same file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return os.SameFile(fa, fb)
}
