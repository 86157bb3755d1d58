package minidump

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// testNoUnnamed makes openUnnamed fail and testNoLink makes linkAs
// fail, so that tests can take the fallbacks.
var testNoUnnamed, testNoLink bool

// openUnnamed opens an unnamed file in dir (O_TMPFILE), or returns nil
// when the file system cannot make one.
func openUnnamed(dir, base string) *os.File {
	if testNoUnnamed {
		return nil
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil
	}
	// linkUnnamed will need /proc (or a capability): without it, a named
	// file from the start, rather than a copy at the end, which would
	// need the space twice.
	var st unix.Stat_t
	if unix.Stat(procFD(fd), &st) != nil && !canLinkEmptyPath() {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "."+base+".tmp (unnamed)"))
}

// linkAs links the unnamed file f into the file system as name, which must
// not exist (unix.EEXIST if it does). Linking a file by its descriptor
// needs /proc (or CAP_DAC_READ_SEARCH, for AT_EMPTY_PATH).
func linkAs(f *os.File, name string) error {
	if testNoLink {
		return errors.New("link refused (test)")
	}
	err := unix.Linkat(unix.AT_FDCWD, procFD(int(f.Fd())), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.ENOENT) {
		err = unix.Linkat(int(f.Fd()), "", unix.AT_FDCWD, name, unix.AT_EMPTY_PATH)
	}
	return err
}

// procFD is the path of file descriptor fd in /proc.
func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// canLinkEmptyPath reports whether this process may link a file by its
// descriptor alone (linkat with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH).
func canLinkEmptyPath() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	const c = unix.CAP_DAC_READ_SEARCH
	return data[c/32].Effective&(1<<(c%32)) != 0
}
