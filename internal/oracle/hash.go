package oracle

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
)

// HashFile returns the SHA-256 of the contents of the file at path,
// read in 1 MiB pieces (files of any size, without holding them).
func HashFile(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return sum, fmt.Errorf("reading %s: %w", path, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
