package ext2

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/internal/oracle"
)

// roomOf returns the room the name cache records for dir's blocks, nil if
// none.
func roomOf(fs *FS, dir *Inode) []int32 {
	dc := &fs.dcache
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if d := dc.dirs[dir.ino]; d != nil {
		return slices.Clone(d.room)
	}
	return nil
}

// walkedRoom computes the room of each block of dir by reading it.
func walkedRoom(t *testing.T, fs *FS, dir *Inode) []int32 {
	t.Helper()
	dir.mu.RLock()
	defer dir.mu.RUnlock()
	n := fs.dirBlockCount(dir)
	room := make([]int32, n)
	for ib := range n {
		bh, _, err := fs.checkedDirBlockLocked(dir, ib)
		if err != nil {
			t.Fatalf("directory block %d: %v", ib, err)
		}
		bh.Lock()
		room[ib] = fs.blockRoom(bh.Data)
		bh.Unlock()
		fs.bc.Release(bh)
	}
	return room
}

// TestAddLinkRoomMatchesWalk runs one random sequence of creates,
// unlinks and renames with names of many lengths in a large directory on
// two filesystems: on the first, adds use the room the name cache
// records for each block (and now and then that record is overstated on
// purpose, so that adds find it wrong and walk); on the second the
// record is forgotten before every change, so each add walks the whole
// directory as ext2_add_link does. Every entry must end at the same
// position in both, the recorded room must equal each block's room on
// disk, both images must be e2fsck-clean, and debugfs must list the
// model's names and inodes.
func TestAddLinkRoomMatchesWalk(t *testing.T) {
	type side struct {
		f   *nsFixture
		dir *Inode
	}
	var sides [2]side
	for i := range sides {
		f := newFixture(t, oracle.MkfsOptions{SizeBytes: 16 << 20, BlockSize: 1024})
		d, err := f.fs.Mkdir(f.root, "big", 0o755, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		sides[i] = side{f, d}
	}
	hinted, walked := sides[0], sides[1]
	forget := func(s side) {
		s.dir.mu.Lock()
		s.f.fs.dcacheForgetRoomLocked(s.dir)
		s.dir.mu.Unlock()
	}
	overstate := func(s side) {
		dc := &s.f.fs.dcache
		dc.mu.Lock()
		if d := dc.dirs[s.dir.ino]; d != nil {
			for i := range d.room {
				d.room[i] = int32(s.f.fs.blockSize)
			}
		}
		dc.mu.Unlock()
	}

	rng := rand.New(rand.NewPCG(7, 11))
	model := map[string]uint32{} // name → inode number, of the hinted side
	var names []string           // the model's names, in no order
	drop := func(n string) {
		i := slices.Index(names, n)
		names[i] = names[len(names)-1]
		names = names[:len(names)-1]
		delete(model, n)
	}
	const steps = 2500
	for step := range steps {
		newName := fmt.Sprintf("%s%d", strings.Repeat("n", rng.IntN(60)), step)
		op := rng.IntN(100)
		if len(names) < 20 {
			op = 0
		}
		if step%97 == 0 {
			overstate(hinted)
		}
		forget(walked)
		switch {
		case op < 60: // create
			var ino uint32
			for i, s := range sides {
				got, err := s.f.fs.Create(s.dir, newName, 0o644, 0, 0)
				if err != nil {
					t.Fatalf("step %d: side %d: Create(%q): %v", step, i, newName, err)
				}
				if i == 0 {
					ino = got.ino
				}
				s.f.fs.Iput(got)
			}
			model[newName] = ino
			names = append(names, newName)
		case op < 85: // unlink
			n := names[rng.IntN(len(names))]
			for i, s := range sides {
				if err := s.f.fs.Unlink(s.dir, n); err != nil {
					t.Fatalf("step %d: side %d: Unlink(%q): %v", step, i, n, err)
				}
			}
			drop(n)
		case op < 95: // rename to a new name
			n := names[rng.IntN(len(names))]
			for i, s := range sides {
				if err := s.f.fs.Rename(s.dir, n, s.dir, newName, 0); err != nil {
					t.Fatalf("step %d: side %d: Rename(%q, %q): %v", step, i, n, newName, err)
				}
			}
			ino := model[n]
			drop(n)
			model[newName] = ino
			names = append(names, newName)
		default: // rename over an existing name
			from, to := names[rng.IntN(len(names))], names[rng.IntN(len(names))]
			if from == to {
				continue
			}
			for i, s := range sides {
				if err := s.f.fs.Rename(s.dir, from, s.dir, to, 0); err != nil {
					t.Fatalf("step %d: side %d: Rename(%q, %q): %v", step, i, from, to, err)
				}
			}
			ino := model[from]
			drop(from)
			model[to] = ino
		}
	}

	// The same entries at the same positions.
	pos := func(s side) map[string]int64 {
		m := map[string]int64{}
		for _, e := range readDirAll(t, s.f.fs, s.dir, 0) {
			m[e.Name] = e.Off
		}
		return m
	}
	if got, want := pos(hinted), pos(walked); !maps.Equal(got, want) {
		for n, off := range want {
			if got[n] != off {
				t.Errorf("entry %q: at byte %d with recorded room, want byte %d as placed by a walk", n, got[n], off)
			}
		}
		t.Fatalf("directories differ: %d and %d entries", len(got), len(want))
	}
	// The recorded room is the room on disk.
	room := roomOf(hinted.f.fs, hinted.dir)
	if room == nil {
		t.Fatalf("no room recorded for the large directory (%d bytes)", hinted.dir.disk.Size())
	}
	if want := walkedRoom(t, hinted.f.fs, hinted.dir); !slices.Equal(room, want) {
		t.Errorf("recorded room of the directory's blocks: got %v, want %v", room, want)
	}

	for _, s := range sides {
		s.f.fs.Iput(s.dir)
		s.f.closeClean()
	}
	var want []lsEntry
	for n, ino := range model {
		want = append(want, lsEntry{Ino: ino, Mode: 0o100644, Name: n})
	}
	slices.SortFunc(want, func(a, b lsEntry) int { return strings.Compare(a.Name, b.Name) })
	var got []lsEntry
	for _, e := range debugfsLs(t, hinted.f.img, "/big") {
		if e.Name != "." && e.Name != ".." {
			got = append(got, e)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("debugfs ls /big: got %d entries, want the model's %d\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
}

// BenchmarkCreateBigDirectory creates 6,000 files with names of 33 bytes
// in one directory of a 4 KiB-block filesystem: each create looks for
// room for its entry.
func BenchmarkCreateBigDirectory(b *testing.B) {
	for range b.N {
		b.StopTimer()
		img := oracle.MkfsImage(b, oracle.MkfsOptions{SizeBytes: 64 << 20})
		dev, err := block.OpenFile(img, false)
		if err != nil {
			b.Fatal(err)
		}
		fs, err := Mount(dev, Options{})
		if err != nil {
			b.Fatal(err)
		}
		root, err := fs.Root()
		if err != nil {
			b.Fatal(err)
		}
		dir, err := fs.Mkdir(root, "big", 0o755, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := range 6000 {
			ino, err := fs.Create(dir, fmt.Sprintf("file-with-a-longish-name-%05d.txt", i), 0o644, 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			fs.Iput(ino)
		}
		b.StopTimer()
		fs.Iput(dir)
		fs.Iput(root)
		if err := fs.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
