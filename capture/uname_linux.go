package capture

import "golang.org/x/sys/unix"

// uname returns the fields of uname(2).
func uname() (sysname, release, version, machine string) {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "", "", "", ""
	}
	return unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Release[:]),
		unix.ByteSliceToString(u.Version[:]), unix.ByteSliceToString(u.Machine[:])
}
