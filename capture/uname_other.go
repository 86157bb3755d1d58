//go:build !linux

package capture

// uname returns nothing: captures are of Linux processes.
func uname() (sysname, release, version, machine string) { return "", "", "", "" }
