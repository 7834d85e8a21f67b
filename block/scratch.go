package block

import (
	"golang.org/x/sys/unix"

	"github.com/mpagefs/mpage/internal/scratch"
)

// The scratch lists of a device call: the buffer list a request hands its
// device (Queue.run) and the iovecs File builds from it. Each 4 MiB
// request used to allocate about 40 KiB of them.
var (
	bufScratch scratch.Pool[[]byte]
	iovScratch scratch.Pool[unix.Iovec]
)
