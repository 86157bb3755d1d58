//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package elfsym

import "os"

// fileKey reports that files are not identified here: each open reads its
// copy.
func fileKey(os.FileInfo) ([2]uint64, bool) { return [2]uint64{}, false }
