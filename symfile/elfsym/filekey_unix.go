//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package elfsym

import (
	"os"
	"syscall"
)

// fileKey identifies the file fi describes: its device and inode.
func fileKey(fi os.FileInfo) ([2]uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return [2]uint64{}, false
	}
	return [2]uint64{uint64(st.Dev), uint64(st.Ino)}, true
}
