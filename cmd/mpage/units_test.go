package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestParseChmod(t *testing.T) {
	tests := []struct {
		spec  string
		cur   fs.FileMode
		isDir bool
		want  fs.FileMode
		bad   bool
	}{
		{spec: "755", cur: 0o600, want: 0o755},
		{spec: "4755", cur: 0, want: 0o755 | fs.ModeSetuid},
		{spec: "1777", cur: 0, want: 0o777 | fs.ModeSticky},
		{spec: "u+x", cur: 0o644, want: 0o744},
		{spec: "go-rwx", cur: 0o755, want: 0o700},
		{spec: "a=r", cur: 0o755, want: 0o444},
		{spec: "+x", cur: 0o600, want: 0o711},
		{spec: "a+X", cur: 0o600, isDir: true, want: 0o711},
		{spec: "a+X", cur: 0o600, want: 0o600},
		{spec: "u+s,+t", cur: 0o755, want: 0o755 | fs.ModeSetuid | fs.ModeSticky},
		{spec: "g=rw,o=", cur: 0o777, want: 0o760},
		{spec: "999", bad: true},
		{spec: "u", bad: true},
		{spec: "u*x", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := parseChmod(tt.spec, tt.cur, tt.isDir)
			if (err != nil) != tt.bad {
				t.Fatalf("parseChmod(%q) error %v, want error %v", tt.spec, err, tt.bad)
			}
			if !tt.bad && got != tt.want {
				t.Errorf("parseChmod(%q, %v) = %v, want %v", tt.spec, tt.cur, got, tt.want)
			}
		})
	}
}

func TestParseOwner(t *testing.T) {
	tests := []struct {
		in       string
		uid, gid int
		bad      bool
	}{
		{in: "0", uid: 0, gid: -1},
		{in: "1000:100", uid: 1000, gid: 100},
		{in: ":50", uid: -1, gid: 50},
		{in: "7:", uid: 7, gid: -1},
		{in: "root", bad: true},
		{in: ":", bad: true},
		{in: "", bad: true},
		{in: "-1", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			uid, gid, err := parseOwner(tt.in)
			if (err != nil) != tt.bad {
				t.Fatalf("parseOwner(%q) error %v, want error %v", tt.in, err, tt.bad)
			}
			if !tt.bad && (uid != tt.uid || gid != tt.gid) {
				t.Errorf("parseOwner(%q) = %d, %d, want %d, %d", tt.in, uid, gid, tt.uid, tt.gid)
			}
		})
	}
}

func TestModeString(t *testing.T) {
	tests := []struct {
		m    fs.FileMode
		want string
	}{
		{0o644, "-rw-r--r--"},
		{fs.ModeDir | 0o755, "drwxr-xr-x"},
		{fs.ModeSymlink | 0o777, "lrwxrwxrwx"},
		{fs.ModeSetuid | 0o755, "-rwsr-xr-x"},
		{fs.ModeSetgid | 0o640, "-rw-r-S---"},
		{fs.ModeDir | fs.ModeSticky | 0o777, "drwxrwxrwt"},
		{fs.ModeDevice | fs.ModeCharDevice | 0o666, "crw-rw-rw-"},
		{fs.ModeDevice | 0o660, "brw-rw----"},
		{fs.ModeNamedPipe | 0o620, "prw--w----"},
	}
	for _, tt := range tests {
		if got := modeString(tt.m); got != tt.want {
			t.Errorf("modeString(%v) = %q, want %q", tt.m, got, tt.want)
		}
	}
}

func TestSplitSpec(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a:b.img") // an image name with a colon
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		arg     string
		image   string
		path    string
		isImage bool // hostOrSpec's answer
	}{
		{arg: img + ":/etc/x", image: img, path: "/etc/x", isImage: true},
		{arg: img + ":etc/../x", image: img, path: "/x", isImage: true},
		{arg: img + ":", image: img, path: "/", isImage: true},
		{arg: "missing.img:/x", image: "missing.img", path: "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			s, err := parseSpec(tt.arg)
			if err != nil || s.image != tt.image || s.path != tt.path {
				t.Errorf("parseSpec(%q) = %+v, %v; want image %q path %q", tt.arg, s, err, tt.image, tt.path)
			}
			if _, ok := hostOrSpec(tt.arg); ok != tt.isImage {
				t.Errorf("hostOrSpec(%q) says image %v, want %v", tt.arg, ok, tt.isImage)
			}
		})
	}
	if s, err := parseSpec(img); err != nil || s.image != img || s.path != "/" {
		t.Errorf("parseSpec(bare image) = %+v, %v; want its root", s, err)
	}
}

func TestFitSizeGrowsWithTheTree(t *testing.T) {
	small := treeUsage{files: 10, dirs: 2, dataBytes: 10 << 10, blocksByFile: make([]int64, 10)}
	for i := range small.blocksByFile {
		small.blocksByFile[i] = 1 << 10
	}
	big := small
	big.blocksByFile = append([]int64{100 << 20}, small.blocksByFile...)
	big.dataBytes += 100 << 20
	s1, _ := fitSize(small, ext2FormatDefaults(), 1)
	s2, o2 := fitSize(big, ext2FormatDefaults(), 1)
	if s2 < 120<<20 {
		t.Errorf("fitSize of 100 MiB of data = %d, want at least 120 MiB (20%% spare)", s2)
	}
	if s1 >= s2 || s1 < 256<<10 {
		t.Errorf("fitSize: small tree %d, large tree %d; want small < large, small >= 256 KiB", s1, s2)
	}
	if s2%int64(o2.BlockSize) != 0 {
		t.Errorf("size %d is not a multiple of the block size %d", s2, o2.BlockSize)
	}
	if g, _ := fitSize(big, ext2FormatDefaults(), 1.5); g <= s2 {
		t.Errorf("fitSize grown by 1.5 = %d, want more than %d", g, s2)
	}
}
