// Package mountinfo reads /proc/self/mountinfo: which device and which
// filesystem type are mounted at a directory. The test oracles and the
// benchmark suite both need it to find the loop device behind a mount.
package mountinfo

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Lookup returns the source (device) and filesystem type of the mount at
// dir, the topmost one if several are stacked there.
func Lookup(dir string) (source, fstype string, ok bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", false
	}
	defer f.Close()
	return parse(f, filepath.Clean(dir))
}

// parse scans mountinfo lines ("36 35 98:0 /mnt1 /mnt2 rw,noatime
// master:1 - ext3 /dev/root rw,errors=continue") for mount point dir.
func parse(r io.Reader, dir string) (source, fstype string, ok bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		pre, post, found := strings.Cut(sc.Text(), " - ")
		if !found {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 2 {
			continue
		}
		if Unescape(a[4]) == dir {
			// The last matching line is the one on top.
			source, fstype, ok = Unescape(b[1]), b[0], true
		}
	}
	return source, fstype, ok
}

// Unescape undoes the octal escapes of mountinfo fields (\040 for a
// space, \134 for a backslash).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
