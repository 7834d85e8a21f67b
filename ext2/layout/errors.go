package layout

import (
	"errors"
	"fmt"
)

// Sentinel errors of package layout.
var (
	// ErrCorrupt is wrapped by every error that reports on-disk bytes
	// which cannot be right. Test for it with errors.Is.
	ErrCorrupt = errors.New("layout: corrupt structure")

	// ErrInvalid reports a caller's request that cannot be encoded, such
	// as a directory entry whose name is longer than 255 bytes.
	ErrInvalid = errors.New("layout: invalid argument")
)

// CorruptError describes one inconsistency found in an on-disk structure.
// It wraps ErrCorrupt. The ext2 package adds the image, group, inode and
// block around it by wrapping it again.
type CorruptError struct {
	// Struct names the C structure, e.g. "ext2_super_block",
	// "ext2_dir_entry_2" or "ext2_xattr_entry".
	Struct string
	// Field names the C field at fault, e.g. "s_log_block_size" or
	// "rec_len". It may be empty when no single field is to blame.
	Field string
	// Offset is the byte offset of the field: within the structure for
	// fixed-size structures (the superblock, a group descriptor, an
	// inode), and within the block for directory and xattr blocks.
	Offset int64
	// Reason says what was wrong, with the values involved.
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("layout: corrupt %s at byte %d: %s", e.Struct, e.Offset, e.Reason)
	}
	return fmt.Sprintf("layout: corrupt %s: %s at byte %d: %s", e.Struct, e.Field, e.Offset, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// corrupt builds a *CorruptError with a formatted reason.
func corrupt(strct, field string, off int, format string, args ...any) *CorruptError {
	return &CorruptError{Struct: strct, Field: field, Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
}

// shortBuffer reports a buffer too small to hold a structure.
func shortBuffer(strct string, have, need int) *CorruptError {
	return corrupt(strct, "", have, "buffer holds %d bytes, need %d", have, need)
}
