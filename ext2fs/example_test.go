package ext2fs_test

import (
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2fs"
)

// newImage formats an 8 MiB image in a temporary folder.
func newImage() (image string, cleanup func()) {
	dir, err := os.MkdirTemp("", "ext2fs-example-")
	if err != nil {
		log.Fatal(err)
	}
	image = filepath.Join(dir, "disk.img")
	if err := ext2fs.Format(image, 8<<20, ext2.FormatOptions{}); err != nil {
		log.Fatal(err)
	}
	return image, func() { os.RemoveAll(dir) }
}

// List every name in an image with fs.WalkDir.
func Example_list() {
	image, cleanup := newImage()
	defer cleanup()
	fsys, err := ext2fs.Open(image, ext2fs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()
	if err := fsys.MkdirAll("/etc/ssh", 0o755); err != nil {
		log.Fatal(err)
	}
	if err := fsys.Symlink("ssh", "/etc/ssh2"); err != nil {
		log.Fatal(err)
	}

	err = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Println(info.Mode(), name)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// drwxr-xr-x .
	// drwxr-xr-x etc
	// drwxr-xr-x etc/ssh
	// Lrwxrwxrwx etc/ssh2
	// drwx------ lost+found
}

// Extract one file from an image, and a whole tree with CopyOut.
func Example_extract() {
	image, cleanup := newImage()
	defer cleanup()
	fsys, err := ext2fs.Open(image, ext2fs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	f, err := fsys.Create("/hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(f, "hello, ext2")
	f.Close()
	fsys.Close()

	fsys, err = ext2fs.Open(image, ext2fs.Options{ReadOnly: true})
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()
	data, err := fs.ReadFile(fsys, "hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(data))

	out := filepath.Join(filepath.Dir(image), "out")
	if err := ext2fs.CopyOut(fsys, "/", out, ext2fs.CopyOptions{}); err != nil {
		log.Fatal(err)
	}
	data, err = os.ReadFile(filepath.Join(out, "hello.txt"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(data))
	// Output:
	// hello, ext2
	// hello, ext2
}

// Build an image from a directory of the host, as mke2fs -d does.
func Example_buildFromDirectory() {
	image, cleanup := newImage()
	defer cleanup()
	src := filepath.Join(filepath.Dir(image), "src")
	os.MkdirAll(filepath.Join(src, "docs"), 0o755)
	os.WriteFile(filepath.Join(src, "docs", "readme"), []byte("read me\n"), 0o644)
	os.Symlink("docs/readme", filepath.Join(src, "README"))

	fsys, err := ext2fs.Open(image, ext2fs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := ext2fs.CopyIn(fsys, src, "/", ext2fs.CopyOptions{}); err != nil {
		log.Fatal(err)
	}
	data, err := fsys.ReadFile("README") // follows the link
	if err != nil {
		log.Fatal(err)
	}
	target, _ := fsys.Readlink("/README")
	fmt.Printf("README -> %s: %s", target, data)
	if err := fsys.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// README -> docs/readme: read me
}

// Append to a file: each write lands whole at the end, even from several
// handles at once.
func Example_append() {
	image, cleanup := newImage()
	defer cleanup()
	fsys, err := ext2fs.Open(image, ext2fs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()
	for _, line := range []string{"first\n", "second\n", "third\n"} {
		f, err := fsys.OpenFile("/var.log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := f.WriteString(line); err != nil {
			log.Fatal(err)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
	data, err := fsys.ReadFile("var.log")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(data))
	// Output:
	// first
	// second
	// third
}
