package block

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// DropCache asks the kernel to drop its page cache of the file
// (posix_fadvise(POSIX_FADV_DONTNEED) over the whole file), so that the
// next reads come from the disk. Only clean kernel pages are dropped: call
// Flush first. For benchmarks of cold reads.
func (f *File) DropCache() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return fmt.Errorf("block: drop cache %s: %w", f.path, ErrClosed)
	}
	if err := unix.Fadvise(f.fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("block: drop cache %s: fadvise: %w", f.path, err)
	}
	return nil
}
