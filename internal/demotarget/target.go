package demotarget

import (
	"os"
	"strconv"
	"strings"
)

// IsTarget reports whether this process was started as the target: whether
// [EnvVar] is set. An executable that serves as the target calls [Main]
// when it is, before anything else.
func IsTarget() bool { return os.Getenv(EnvVar) != "" }

// ParseSyscall parses the contents of /proc/PID/task/TID/syscall: the
// number of the system call the thread is blocked in and the thread's PC
// (the address after the syscall instruction). ok is false if the thread
// is running or not in a system call ("running", "-1 sp pc") or the text
// is malformed.
//
// Reference: Linux, Documentation/filesystems/proc.rst, "/proc/PID/syscall"
// (number, six arguments, stack pointer and PC, in hexadecimal but the
// number).
func ParseSyscall(s string) (nr int, pc uint64, ok bool) {
	f := strings.Fields(s)
	if len(f) != 9 {
		return 0, 0, false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 {
		return 0, 0, false
	}
	pc, err = strconv.ParseUint(f[8], 0, 64)
	if err != nil {
		return 0, 0, false
	}
	return n, pc, true
}
