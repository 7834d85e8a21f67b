package main

import (
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mpagefs/mpage/internal/oracle"
)

// treeShape describes a generated source tree. The defaults have the shape
// of the Go toolchain's src tree (go1.26: 11,478 files in 1,324
// directories, 128 MB; file sizes with median 1.8 KB and mean 11 KB).
type treeShape struct {
	files, dirs int
	// File sizes are log-normal: exp(N(mu, sigma)), at most maxSize.
	mu, sigma float64
	maxSize   int64
}

var goSrcShape = treeShape{files: 11500, dirs: 1320, mu: 7.48, sigma: 1.92, maxSize: 3 << 20}

// quickShape is a tenth of it, for -quick.
var quickShape = treeShape{files: 1150, dirs: 132, mu: 7.48, sigma: 1.92, maxSize: 3 << 20}

// generateTree writes a tree of the given shape under dir. The same shape
// gives the same tree (names, sizes, contents).
func generateTree(dir string, sh treeShape) error {
	rng := rand.New(rand.NewPCG(1, 2))
	dirs := []string{"."}
	for i := 1; i < sh.dirs; i++ {
		// A parent among the directories made so far, favouring recent
		// ones, gives a tree a few levels deep like a source tree.
		parent := dirs[len(dirs)-1-rng.IntN(min(len(dirs), 8))]
		if strings.Count(parent, "/") >= 6 {
			parent = "."
		}
		d := filepath.Join(parent, fmt.Sprintf("pkg%04d", i))
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
		dirs = append(dirs, d)
	}
	buf := make([]byte, sh.maxSize)
	crng := rand.NewChaCha8([32]byte{'t', 'r', 'e', 'e'})
	for i := range sh.files {
		size := int64(math.Exp(sh.mu + sh.sigma*rng.NormFloat64()))
		size = min(size, sh.maxSize)
		d := dirs[rng.IntN(len(dirs))]
		name := filepath.Join(dir, d, fmt.Sprintf("file%05d.go", i))
		crng.Read(buf[:size])
		if err := os.WriteFile(name, buf[:size], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// treeInfo counts a tree.
type treeInfo struct {
	files, dirs, others int64
	bytes               int64
}

func scanTreeInfo(dir string) (treeInfo, error) {
	var ti treeInfo
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			ti.dirs++
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			ti.files++
			ti.bytes += info.Size()
		default:
			ti.others++
		}
		return nil
	})
	return ti, err
}

// warmTree reads every file of a tree, bringing it into the OS page cache.
func warmTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			return readAll(p)
		}
		return nil
	})
}

// ---- workload 1: build an image from a tree ----

func (b *bench) treeWorkload() (*workload, error) {
	src, origin := b.cfg.tree, ""
	switch {
	case src != "":
		origin = "the tree given with -tree"
	case !b.cfg.quick && goroot() != "" && isDir(filepath.Join(goroot(), "src")):
		src = filepath.Join(goroot(), "src")
		origin = fmt.Sprintf("the Go toolchain's source tree (`%s`, %s)", src, b.sys.goVersion)
	default:
		sh := goSrcShape
		origin = "a generated tree of the shape of the Go toolchain's src"
		if b.cfg.quick {
			sh = quickShape
			origin = "a generated tree of a tenth of the shape of the Go toolchain's src (-quick)"
		}
		src = filepath.Join(b.work, "tree")
		logf("generating a tree of %d files in %d directories at %s", sh.files, sh.dirs, src)
		if err := generateTree(src, sh); err != nil {
			return nil, fmt.Errorf("generating the tree: %v", err)
		}
	}
	src, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	ti, err := scanTreeInfo(src)
	if err != nil {
		return nil, fmt.Errorf("reading the tree %s: %v", src, err)
	}
	logf("reading the tree %s once (%d files, %d directories, %.1f MB) into the OS cache", src, ti.files, ti.dirs, float64(ti.bytes)/1e6)
	if err := warmTree(src); err != nil {
		return nil, err
	}
	size := b.cfg.imageSize
	inodes := max(size/16384, 2*(ti.files+ti.dirs+ti.others))
	image := filepath.Join(b.work, "tree.img")
	w := &workload{
		key:   "tree",
		title: "1. Build an ext2 image from a directory tree",
		bytes: ti.bytes,
		what: fmt.Sprintf("The tree is %s: %d files, %d directories and %d other entries, %.1f MB of file data, "+
			"read once before timing so that it comes from the OS page cache. Every peer makes a %s image "+
			"with 4 KiB blocks and %d inodes from nothing: the timed part includes making the empty file system "+
			"(for the kernel and fuse2fs: `mke2fs -t ext2 -b 4096 -I 256 -N %d`), and ends with an fsync(2) of the image. "+
			"Verified after each counted run: `e2fsck -fn` clean, and the image's tree (%s) equal to the source "+
			"in names, types, modes, owners, modification times (to the second), sizes, contents (SHA-256) and symlink targets.",
			origin, ti.files, ti.dirs, ti.others, float64(ti.bytes)/1e6, humanBytes(size), inodes, inodes,
			map[bool]string{true: "read through a read-only kernel loop mount", false: "extracted with `debugfs -R 'rdump / DIR'`"}[b.root0]),
	}
	prep := func() error {
		os.Remove(image)
		syscall.Sync()
		return nil
	}
	after := func() { os.Remove(image) }
	verify := func(*meter) error {
		if err := fsck(image); err != nil {
			return err
		}
		return b.compareImageTree(image, src)
	}
	mkfsEmpty := func(m *meter) error { return mke2fs(m, image, size, inodes) }
	sizeK := fmt.Sprintf("%dk", size>>10)
	// fuseCopy is the peer that copies the tree with cp -a into an empty
	// image mounted by the FUSE daemon prog.
	fuseCopy := func(name string, need []string, command, prog string, args ...string) *peer {
		return &peer{
			name: name, need: need, check: b.needFuse, command: command,
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if err := mkfsEmpty(m); err != nil {
					return err
				}
				if err := fuseSession(m, b.mnt, func() error {
					_, err := run(m, nil, tool("cp"), "-a", src+"/.", b.mnt+"/")
					return err
				}, prog, args...); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		}
	}
	w.peers = []*peer{
		{
			name: "mpage mkfs --from", ours: true,
			command: fmt.Sprintf("mpage --cache %s --stats=json mkfs --size %s --block-size 4096 --inode-size 256 --inodes %d --from SRC IMAGE", b.cfg.cache, sizeK, inodes),
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if err := runMpage(m, nil, "--cache", b.cfg.cache, "mkfs", "--size", sizeK, "--block-size", "4096",
					"--inode-size", "256", "--inodes", fmt.Sprint(inodes), "--from", src, image); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		},
		{
			name: "mke2fs -d", need: []string{"mke2fs"},
			command: fmt.Sprintf("mke2fs -q -F -t ext2 -b 4096 -I 256 -N %d -d SRC IMAGE %s", inodes, sizeK),
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if _, err := run(m, nil, tool("mke2fs"), "-q", "-F", "-t", "ext2", "-b", "4096", "-I", "256",
					"-N", fmt.Sprint(inodes), "-d", src, image, sizeK); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		},
		{
			name: "genext2fs -d", need: []string{"genext2fs"},
			command: fmt.Sprintf("genext2fs -B 4096 -b %d -N %d -d SRC IMAGE", size/4096, inodes),
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if _, err := run(m, nil, tool("genext2fs"), "-B", "4096", "-b", fmt.Sprint(size/4096),
					"-N", fmt.Sprint(inodes), "-d", src, image); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		},
		{
			name: "kernel (loop mount)", need: []string{"mke2fs", "losetup", "mount", "umount", "cp"}, check: b.needRoot,
			command: "mke2fs (empty); losetup; mount -t ext2; cp -a SRC/. MNT/; umount; losetup -d",
			prepare: prep, verify: verify, after: after,
			timed: func(m *meter) error {
				if err := mkfsEmpty(m); err != nil {
					return err
				}
				if err := kernelSession(m, image, b.mnt, false, func() error {
					_, err := run(m, nil, tool("cp"), "-a", src+"/.", b.mnt+"/")
					return err
				}); err != nil {
					return err
				}
				return fsyncFile(image)
			},
		},
		fuseCopy("fuse2fs", []string{"mke2fs", "fuse2fs", "cp", "umount"},
			"mke2fs (empty); fuse2fs -f IMAGE MNT & cp -a SRC/. MNT/; umount MNT; wait",
			tool("fuse2fs"), "-f", image, b.mnt),
		// Our FUSE mount, against fuse2fs's: the same cp -a through the
		// kernel's FUSE, with our page cache below it.
		fuseCopy("mpage mount", []string{"mke2fs", "cp", "umount"},
			fmt.Sprintf("mke2fs (empty); mpage --cache %s mount --foreground IMAGE MNT & cp -a SRC/. MNT/; umount MNT; wait", b.cfg.cache),
			mpageBin, "--cache", b.cfg.cache, "mount", "--foreground", image, b.mnt),
	}
	w.explain = func(r *peerResult, failure string) string {
		if r.peer.name == "fuse2fs" && strings.Contains(failure, "mode -rw") {
			return "Why fuse2fs fails here: `cp -a` creates each file with mode 0600 and then preserves the source's mode by " +
				"setting a POSIX access ACL (`fsetxattr(\"system.posix_acl_access\")`, seen with strace). fuse2fs stores the ACL as an " +
				"extended attribute but leaves the inode's mode bits at 0600, so the image's files do not have the source's modes " +
				"(the kernel's ext2 updates the mode from the ACL). The image is consistent (`e2fsck` passes the check before this one); " +
				"its content differs from what was copied."
		}
		return ""
	}
	return w, nil
}

// compareImageTree compares the tree in image with src.
func (b *bench) compareImageTree(image, src string) error {
	opts := oracle.CompareOptions{Owners: true, Times: true, Ignore: []string{"lost+found"}}
	var diffs []string
	var err error
	if b.root0 {
		err = kernelSession(nil, image, b.mnt, true, func() error {
			var derr error
			diffs, derr = oracle.DiffTrees(src, b.mnt, opts)
			return derr
		})
	} else {
		out := filepath.Join(b.work, "rdump")
		os.RemoveAll(out)
		defer os.RemoveAll(out)
		if err = os.MkdirAll(out, 0o755); err == nil {
			if _, err = run(nil, nil, tool("debugfs"), "-R", "rdump / "+out, image); err == nil {
				diffs, err = oracle.DiffTrees(src, out, opts)
			}
		}
	}
	if err != nil {
		return err
	}
	if len(diffs) > 0 {
		more := ""
		if len(diffs) > 3 {
			more = fmt.Sprintf(" (and %d more)", len(diffs)-3)
			diffs = diffs[:3]
		}
		return fmt.Errorf("the image's tree differs from the source: %s%s", strings.Join(diffs, "; "), more)
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// goroot is $(go env GOROOT), or "".
func goroot() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
