package fusemount

import (
	"os"
	"slices"
	"testing"
)

// TestReaddirLeavesOutNamesFUSECannotCarry lists, through the mount, a
// directory in which one entry's name holds a '/' and another's a NUL, as
// a damaged directory can (e2fsprogs' f_baddir has "foo/bar"). The
// kernel's FUSE refuses a whole READDIR reply with such a name (EIO), at
// every retry, so before, a listing stopped there: now both entries are
// left out and every other name is listed, with no error.
func TestReaddirLeavesOutNamesFUSECannotCarry(t *testing.T) {
	requireFuse(t)
	image, ents, recAt := dirImage(t, []string{"aa-1", "bb-2", "cc-3", "dd-4", "ee-5"})
	// Where the names of bb-2 and dd-4 are in the image.
	patch := map[string]byte{"bb-2": '/', "dd-4": 0}
	at := map[string]int64{}
	for i, e := range ents {
		if _, ok := patch[e.Name]; ok {
			at[e.Name] = recAt[i] + 8 + 2 // the '-' of the name
		}
	}
	if len(at) != len(patch) {
		t.Fatalf("found %v of the entries to damage, want %d", at, len(patch))
	}
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, off := range at {
		if _, err := f.WriteAt([]byte{patch[name]}, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	m := mountImage(t, image, Options{ReadOnly: true})
	list, err := os.ReadDir(m.path("d"))
	if err != nil {
		t.Errorf("ReadDir through the mount: %v, want no error", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Name())
	}
	want := []string{"aa-1", "cc-3", "ee-5"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
	if b, err := os.ReadFile(m.path("d/ee-5")); err != nil || string(b) != "ee-5" {
		t.Errorf("read d/ee-5: %q, %v", b, err)
	}
	m.unmount(t)
}
