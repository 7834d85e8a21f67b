package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/ext2fs"
	"github.com/spf13/cobra"
)

func newDemoCmd(a *app) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build an image from this repository's source tree and read it all back",
		Long: `Build an ext2 image in a temporary folder from the source tree of this
repository (found by walking up from the working directory to go.mod; a
generated tree if there is none), list its root, show df and the I/O
counters, then read every file back through the page cache and compare it
byte for byte with the source. Needs nothing but this program.`,
		Args: args(cobra.NoArgs),
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the image and print its path")
	cmd.RunE = func(*cobra.Command, []string) error { return a.demo(keep) }
	return cmd
}

// moduleRoot walks up from the working directory to the folder holding
// go.mod.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && st.Mode().IsRegular() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// ignoredDirs returns the folders, relative to root, that root's
// .gitignore names as anchored directories ("/bench/results/"): build
// output and benchmark scratch space, not source.
func ignoredDirs(root string) map[string]bool {
	out := map[string]bool{}
	data, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "/") && strings.HasSuffix(line, "/") && !strings.ContainsAny(line, "*?[!") {
			out[strings.Trim(line, "/")] = true
		}
	}
	return out
}

// deviceOf returns the device number of the filesystem holding p, so the
// demo's walk can stay on one filesystem (like find -xdev).
func deviceOf(p string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return 0, false
	}
	return uint64(st.Dev), true
}

// demoLimit bounds the bytes of source copied, to keep the demo quick.
const demoLimit = 48 << 20

// demoSource makes, in tmp, the tree the demo copies: a copy of the
// module's regular files and directories (hidden ones, files over 4 MiB,
// the folders the module's .gitignore names, such as benchmark results, and
// anything mounted inside the tree left out), or a generated tree.
func demoSource(tmp string) (dir, from string, err error) {
	dir = filepath.Join(tmp, "src")
	if root := moduleRoot(); root != "" {
		var total int64
		ignored := ignoredDirs(root)
		rootDev, _ := deviceOf(root)
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable: leave it out
			}
			rel, _ := filepath.Rel(root, p)
			if rel != "." && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() && rel != "." {
				if dev, ok := deviceOf(p); ignored[filepath.ToSlash(rel)] || !ok || dev != rootDev {
					return filepath.SkipDir
				}
			}
			dst := filepath.Join(dir, rel)
			switch {
			case d.IsDir():
				return os.MkdirAll(dst, 0o755)
			case d.Type().IsRegular():
				fi, err := d.Info()
				if err != nil || fi.Size() > 4<<20 || total+fi.Size() > demoLimit {
					return nil
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return nil
				}
				total += int64(len(data))
				if err := os.WriteFile(dst, data, 0o644); err != nil {
					return err
				}
				return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
			}
			return nil
		})
		return dir, root, err
	}
	// No module: a generated tree of text and random data.
	r := rand.New(rand.NewPCG(1, 2))
	for d := 0; d < 8; d++ {
		sub := filepath.Join(dir, fmt.Sprintf("dir%d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return "", "", err
		}
		for f := 0; f < 16; f++ {
			data := make([]byte, r.IntN(200_000))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%02d.bin", f)), data, 0o644); err != nil {
				return "", "", err
			}
		}
	}
	return dir, "a generated tree", nil
}

func (a *app) demo(keep bool) error {
	if a.g.readOnly {
		return fmt.Errorf("--readonly given, and demo writes an image")
	}
	start := time.Now()
	tmp, err := os.MkdirTemp("", "mpage-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(tmp)
	}
	src, from, err := demoSource(tmp)
	if err != nil {
		return fmt.Errorf("preparing the source tree: %s", errText(err))
	}
	image := filepath.Join(tmp, "demo.img")
	w := a.stdout
	fmt.Fprintf(w, "demo: making %s from %s\n", image, from)
	if err := a.mkfs(image, mkfsFlags{from: src, inodeSize: 256, label: "mpage-demo"}); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n$ mpage ls -l %s:/\n", filepath.Base(image))
	s := &session{a: a}
	err = a.demoCheck(s, image, src)
	if cerr := s.closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n")
	writeStatsText(w, a.stats.report("demo", time.Since(start)))
	if keep {
		fmt.Fprintf(w, "demo: image kept at %s\n", image)
	}
	return nil
}

// demoCheck lists the image, prints df, and reads every file back,
// comparing it with the source.
func (a *app) demoCheck(s *session, image, src string) error {
	w := a.stdout
	if err := a.ls(s, spec{image: image, path: "/"}, true, false, false); err != nil {
		return err
	}
	fsys, err := s.open(image)
	if err != nil {
		return err
	}
	u, err := fsys.Statfs()
	if err != nil {
		return err
	}
	used := u.Blocks - u.FreeBlocks
	fmt.Fprintf(w, "\n$ mpage df %s\n", filepath.Base(image))
	fmt.Fprintf(w, "%d blocks of %d bytes: %d used, %d available (%s); %d inodes: %d used, %d free (%s)\n",
		u.Blocks, u.BlockSize, used, u.AvailBlocks, percent(used, used+u.AvailBlocks),
		u.Inodes, u.Inodes-u.FreeInodes, u.FreeInodes, percent(u.Inodes-u.FreeInodes, u.Inodes))
	var files, nbytes int64
	buf := make([]byte, 1<<20)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := fsys.Open(path.Clean(filepath.ToSlash(rel)))
		if err != nil {
			return fmt.Errorf("reading back %s: %s", rel, errText(err))
		}
		defer f.Close()
		var got bytes.Buffer
		if _, err := io.CopyBuffer(&got, f, buf); err != nil {
			return fmt.Errorf("reading back %s: %s", rel, errText(err))
		}
		if !bytes.Equal(got.Bytes(), want) {
			return fmt.Errorf("%s: the image holds %d bytes that differ from the source's %d", rel, got.Len(), len(want))
		}
		files++
		nbytes += int64(len(want))
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\ndemo: %d files, %d bytes verified\n", files, nbytes)
	return nil
}

var _ = ext2fs.SeekData
