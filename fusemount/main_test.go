package fusemount

import (
	"os"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestMain starts the FUSE reaper (oracle.RunFUSEReaper): these tests
// serve their mounts in-process and use them from the same process, so a
// test binary that dies (a panic, go test's timeout) while one of its own
// requests is being served could never finish dying; the reaper aborts
// the mounts it leaves behind.
func TestMain(m *testing.M) {
	oracle.RunFUSEReaper()
	os.Exit(m.Run())
}
