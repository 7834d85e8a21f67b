package ext2fs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// usage is Statfs or a fatal error.
func usage(t *testing.T, fsys *FS) Usage {
	t.Helper()
	u, err := fsys.Statfs()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestOpenTmpfile writes a file with no name, names it with LinkTo and
// closes it: the named file has the data, the mode, the owner and one
// link (debugfs), e2fsck is clean. A second one closed without a name
// gives back its inode and blocks.
func TestOpenTmpfile(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, BlockSize: 1024})
	fsys := mustOpen(t, image, Options{Owner: &Owner{UID: 1001, GID: 1002}})
	if err := fsys.Mkdir("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("anonymous until linked\n"), 3000)

	f, err := fsys.OpenTmpfile("/d", 0o640)
	if err != nil {
		t.Fatalf("OpenTmpfile: %v", err)
	}
	if n, err := f.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write: got %d, %v; want %d, nil", n, err, len(data))
	}
	if ents, err := fsys.ReadDir("d"); err != nil || len(ents) != 0 {
		t.Errorf("ReadDir(d) before LinkTo: got %d entries, %v; want none", len(ents), err)
	}
	if err := f.LinkTo("/d/final"); err != nil {
		t.Fatalf("LinkTo: %v", err)
	}
	err = f.LinkTo("d/final")
	var le *os.LinkError
	if !errors.As(err, &le) || !errors.Is(err, fs.ErrExist) || le.New != "d/final" {
		t.Errorf("LinkTo onto an existing name: got %#v, want an *os.LinkError for d/final wrapping fs.ErrExist", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.LinkTo("/d/late"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("LinkTo after Close: got %v, want fs.ErrClosed", err)
	}
	if got, err := fsys.ReadFile("d/final"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadFile(d/final): got %d bytes, %v; want the %d written", len(got), err, len(data))
	}

	before := usage(t, fsys)
	g, err := fsys.OpenTmpfile("d", 0o600)
	if err != nil {
		t.Fatalf("OpenTmpfile: %v", err)
	}
	if _, err := g.WriteAt(data, 0); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	if u := usage(t, fsys); u.FreeInodes != before.FreeInodes-1 || u.FreeBlocks >= before.FreeBlocks {
		t.Errorf("with a tmpfile open: free inodes %d, blocks %d; want %d and fewer than %d", u.FreeInodes, u.FreeBlocks, before.FreeInodes-1, before.FreeBlocks)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if u := usage(t, fsys); u.FreeInodes != before.FreeInodes || u.FreeBlocks != before.FreeBlocks {
		t.Errorf("after closing the unnamed tmpfile: free inodes %d, blocks %d; want %d, %d", u.FreeInodes, u.FreeBlocks, before.FreeInodes, before.FreeBlocks)
	}
	closeAndCheck(t, fsys, image)

	st := oracle.DebugfsStat(t, image, "/d/final")
	if st.Type != "regular" || st.Mode != 0o640 || st.Links != 1 || st.UID != 1001 || st.GID != 1002 || st.Size != uint64(len(data)) {
		t.Errorf("debugfs stat /d/final: got %s %#o links %d owner %d:%d size %d; want regular 0640 links 1 owner 1001:1002 size %d",
			st.Type, st.Mode, st.Links, st.UID, st.GID, st.Size, len(data))
	}
	again := mustOpen(t, image, Options{ReadOnly: true})
	ents, err := again.ReadDir("d")
	if err != nil || len(ents) != 1 || ents[0].Name() != "final" {
		t.Errorf("ReadDir(d) after reopening: got %v, %v; want final alone", ents, err)
	}
}

// TestOpenTmpfileErrors checks the errors of OpenTmpfile and LinkTo.
func TestOpenTmpfileErrors(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, BlockSize: 1024})
	fsys := mustOpen(t, image, Options{})
	if f, err := fsys.Create("/file"); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	for _, c := range []struct {
		name, dir string
		want      error
	}{
		{"missing directory", "/nope", fs.ErrNotExist},
		{"not a directory", "/file", syscall.ENOTDIR},
		{"empty name", "", fs.ErrNotExist},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := fsys.OpenTmpfile(c.dir, 0o600)
			if err == nil {
				f.Close()
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != c.dir || !errors.Is(err, c.want) {
				t.Errorf("OpenTmpfile(%q): got %v, want an *fs.PathError for %q wrapping %v", c.dir, err, c.dir, c.want)
			}
		})
	}

	t.Run("unlinked while open", func(t *testing.T) {
		f, err := fsys.OpenFile("/victim", os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := fsys.Remove("/victim"); err != nil {
			t.Fatal(err)
		}
		if err := f.LinkTo("/again"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LinkTo of a removed file: got %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("tmpfile named then removed", func(t *testing.T) {
		f, err := fsys.OpenTmpfile("/", 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.LinkTo("/named"); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Remove("/named"); err != nil {
			t.Fatal(err)
		}
		if err := f.LinkTo("/again"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LinkTo after its name was removed: got %v, want fs.ErrNotExist", err)
		}
	})
	closeAndCheck(t, fsys, image)

	ro := mustOpen(t, image, Options{ReadOnly: true})
	f, err := ro.OpenTmpfile("/", 0o600)
	if err == nil {
		f.Close()
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || !errors.Is(err, syscall.EROFS) {
		t.Errorf("OpenTmpfile on a read-only filesystem: got %v, want an *fs.PathError wrapping EROFS", err)
	}
}
