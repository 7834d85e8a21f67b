package fusemount

import (
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/ext2"
)

func TestMayOpen(t *testing.T) {
	file := func(mode uint16, uid, gid uint32) ext2.Stat {
		return ext2.Stat{Mode: syscall.S_IFREG | mode, UID: uid, GID: gid}
	}
	tests := []struct {
		name     string
		st       ext2.Stat
		uid, gid uint32
		flags    uint32
		want     bool
	}{
		{"root writes anything", file(0o000, 5, 5), 0, 0, syscall.O_RDWR, true},
		{"owner reads 0600", file(0o600, 7, 7), 7, 9, syscall.O_RDONLY, true},
		{"owner writes 0400", file(0o400, 7, 7), 7, 7, syscall.O_WRONLY, false},
		{"owner bits win over other bits", file(0o007, 7, 7), 7, 9, syscall.O_RDONLY, false},
		{"group reads 0640", file(0o640, 1, 9), 7, 9, syscall.O_RDONLY, true},
		{"group writes 0640", file(0o640, 1, 9), 7, 9, syscall.O_WRONLY, false},
		{"other reads 0644", file(0o644, 1, 1), 7, 9, syscall.O_RDONLY, true},
		{"other read-write 0644", file(0o644, 1, 1), 7, 9, syscall.O_RDWR, false},
		{"O_TRUNC needs write", file(0o644, 1, 1), 7, 9, syscall.O_RDONLY | syscall.O_TRUNC, false},
		{"other read-write 0666", file(0o666, 1, 1), 7, 9, syscall.O_RDWR, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mayOpen(tt.st, tt.uid, tt.gid, tt.flags); got != tt.want {
				t.Errorf("mayOpen(mode %#o owner %d:%d, caller %d:%d, flags %#x) = %v, want %v",
					tt.st.Mode, tt.st.UID, tt.st.GID, tt.uid, tt.gid, tt.flags, got, tt.want)
			}
		})
	}
}
