package mountinfo

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const info = `22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 7:0 / /tmp/a\040b rw,relatime shared:2 - ext2 /dev/loop0 rw
41 40 0:50 / /tmp/a\040b rw,nosuid - fuse.mpage /img\134x.img rw,user_id=0
`
	tests := []struct {
		dir          string
		source, kind string
		ok           bool
	}{
		{dir: "/", source: "/dev/vda", kind: "ext4", ok: true},
		{dir: "/tmp/a b", source: `/img\x.img`, kind: "fuse.mpage", ok: true}, // the top of two stacked mounts
		{dir: "/tmp/none"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			source, kind, ok := parse(strings.NewReader(info), tt.dir)
			if source != tt.source || kind != tt.kind || ok != tt.ok {
				t.Errorf("parse(%q) = %q, %q, %v; want %q, %q, %v", tt.dir, source, kind, ok, tt.source, tt.kind, tt.ok)
			}
		})
	}
}

func TestLookupRoot(t *testing.T) {
	if _, kind, ok := Lookup("/"); !ok || kind == "" {
		t.Errorf("Lookup(/) = %q, %v; want the root filesystem's type", kind, ok)
	}
}
