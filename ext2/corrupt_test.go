package ext2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// patchImage writes b at byte off of the image.
func patchImage(t *testing.T, img string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// fileLoc mounts img read-only to find where file name's inode lives and
// its indirect block, then unmounts.
func fileLoc(t *testing.T, img, name string) (ino uint32, inodeOff int64, ind int64) {
	t.Helper()
	dev := openDev(t, img, true)
	fs, err := Mount(dev, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	in, err := fs.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(in)
	loc := fs.inodeLoc(in.Ino())
	d := in.Disk()
	return in.Ino(), loc.block*int64(fs.blockSize) + int64(loc.offset), int64(d.Block[layout.IndBlock]) * int64(fs.blockSize)
}

func TestCorruptInode(t *testing.T) {
	tests := []struct {
		name  string
		field int64  // byte offset in the inode, or -1 for the indirect block
		value []byte // bytes written there
		want  string // in the error text
	}{
		{"bad mode", 0, []byte{0x00, 0xF0}, "bogus i_mode"},
		{"block pointer outside", 40, le32(0xFFFFFF00), "i_block[0]"},
		{"huge size", 108, le32(0x7FFFFFFF), "i_size"},
		{"indirect pointer outside", -1, le32(0x7FFFFFF0), "block pointer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			writeFile(t, filepath.Join(src, "f"), pattern(1, 100*1024))
			img := makeImage(t, 1024, 128, 4<<20, src)
			n, inodeOff, indOff := fileLoc(t, img, "f")
			off := inodeOff + tc.field
			if tc.field < 0 {
				off = indOff
			}
			patchImage(t, img, off, tc.value)

			fs := mountImage(t, img, Options{ReadOnly: true})
			var err error
			if tc.field < 0 {
				// The inode is fine; reading past the direct blocks is not.
				var f *File
				ino, lerr := fs.Lookup("f")
				if lerr != nil {
					t.Fatal(lerr)
				}
				f, err = fs.Open(ino, false)
				fs.Iput(ino)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 4096)
				_, err = f.ReadAt(buf, 12*1024)
				f.Close()
			} else {
				var ino *Inode
				ino, err = fs.Lookup("f")
				if err == nil {
					fs.Iput(ino)
				}
			}
			if err == nil {
				t.Fatalf("reading a corrupt inode: no error")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CorruptError", err)
			}
			if ce.Inode != n || !strings.Contains(err.Error(), fmt.Sprintf("inode %d", n)) {
				t.Errorf("error %q names inode %d, want %d", err, ce.Inode, n)
			}
			if ce.Offset != off {
				t.Errorf("error %q: byte offset %d, want %d", err, ce.Offset, off)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if !fs.HasErrors() {
				t.Errorf("HasErrors() = false after finding corruption")
			}
		})
	}
}

func TestCorruptGroupDescriptor(t *testing.T) {
	img := makeImage(t, 1024, 128, 16<<20, "")
	// Group 1's block bitmap pointing into group 0: descriptor 1 is at
	// byte 2048+32 (block 2 with 1 KiB blocks).
	patchImage(t, img, 2048+32, le32(100))
	_, err := Mount(openDev(t, img, true), Options{ReadOnly: true})
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Group != 1 || !strings.Contains(err.Error(), "group 1") || !strings.Contains(err.Error(), "block bitmap") {
		t.Fatalf("Mount: got %v, want a corruption error naming group 1's block bitmap", err)
	}
}

// TestErrorBehaviour finds corruption on read-write mounts: with
// remount-ro the filesystem stops taking changes, and either way the
// superblock says it has errors after unmount.
func TestErrorBehaviour(t *testing.T) {
	for _, eb := range []ErrorBehavior{ErrorsContinue, ErrorsRemountRO} {
		t.Run(eb.String(), func(t *testing.T) {
			src := t.TempDir()
			writeFile(t, filepath.Join(src, "f"), pattern(1, 1000))
			writeFile(t, filepath.Join(src, "g"), nil)
			img := makeImage(t, 1024, 128, 4<<20, src)
			_, inodeOff, _ := fileLoc(t, img, "f")
			patchImage(t, img, inodeOff, []byte{0, 0xF0})
			fs := mountImage(t, img, Options{Errors: eb})
			if _, err := fs.Lookup("f"); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Lookup(f) = %v, want ErrCorrupt", err)
			}
			if got, want := fs.ReadOnly(), eb == ErrorsRemountRO; got != want {
				t.Errorf("ReadOnly() = %v, want %v", got, want)
			}
			ino, err := fs.Lookup("g")
			if err != nil {
				t.Fatal(err)
			}
			_, err = fs.Open(ino, true)
			fs.Iput(ino)
			if eb == ErrorsRemountRO && !errors.Is(err, ErrReadOnly) {
				t.Errorf("Open for writing after remount-ro: %v, want ErrReadOnly", err)
			}
			if eb == ErrorsContinue && err != nil {
				t.Errorf("Open for writing with errors=continue: %v", err)
			}
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			sup := oracle.DumpSuper(t, img)
			if st := sup["Filesystem state"]; !strings.Contains(st, "with errors") {
				t.Errorf("Filesystem state %q, want it to say \"with errors\"", st)
			}
		})
	}
}
