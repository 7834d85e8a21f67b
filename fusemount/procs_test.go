package fusemount

import (
	"runtime"
	"testing"
)

// TestRaiseProcs: each served mount adds Ps for the readers its server
// may have blocked in read(2), mounts nest, and the value from before
// the first comes back after the last, whatever the order they end in;
// an explicit GOMAXPROCS in the environment is left alone.
func TestRaiseProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })

	t.Run("nested mounts", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "")
		runtime.GOMAXPROCS(2)
		lower1 := raiseProcs() // a server made with 2 Ps: 2 readers + 1
		if got := runtime.GOMAXPROCS(0); got != 5 {
			t.Fatalf("GOMAXPROCS with one mount: got %d, want 5", got)
		}
		lower2 := raiseProcs() // made with 5 Ps: 5 readers + 1
		if got := runtime.GOMAXPROCS(0); got != 11 {
			t.Fatalf("GOMAXPROCS with two mounts: got %d, want 11", got)
		}
		lower1()
		lower1() // a second call gives nothing back twice
		if got := runtime.GOMAXPROCS(0); got != 8 {
			t.Errorf("GOMAXPROCS after the first mount ended: got %d, want 8", got)
		}
		lower2()
		if got := runtime.GOMAXPROCS(0); got != 2 {
			t.Errorf("GOMAXPROCS after both ended: got %d, want 2", got)
		}
	})
	t.Run("GOMAXPROCS set by the user", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "3")
		runtime.GOMAXPROCS(3)
		lower := raiseProcs()
		if got := runtime.GOMAXPROCS(0); got != 3 {
			t.Errorf("GOMAXPROCS=3 in the environment: got %d Ps while mounted, want 3", got)
		}
		lower()
		if got := runtime.GOMAXPROCS(0); got != 3 {
			t.Errorf("after the mount: got %d, want 3", got)
		}
	})
	t.Run("many CPUs: at most 17 readers a mount", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "")
		runtime.GOMAXPROCS(64)
		lower := raiseProcs()
		if got := runtime.GOMAXPROCS(0); got != 64+17 {
			t.Errorf("GOMAXPROCS with 64 CPUs: got %d, want %d", got, 64+17)
		}
		lower()
		if got := runtime.GOMAXPROCS(0); got != 64 {
			t.Errorf("after the mount: got %d, want 64", got)
		}
	})
}
