// Package procmaps parses the lines of a /proc/PID/maps listing, which is
// also the format of a Linux minidump's maps stream (MD_LINUX_MAPS). It is
// the one parser of that format: target.ModulesFromMaps and
// functable/remote.ParseMaps both read through it.
//
// A line is
//
//	start-end perms offset dev inode [path]
//
// with start, end and offset in hex, inode in decimal, and the path
// starting after the padding that follows the inode; it may contain
// spaces, and ends in " (deleted)" when the file was unlinked after it
// was mapped.
//
// Reference: proc_pid_maps(5).
//
// # Robustness
//
// Malformed lines return an error and never panic; a line is at most
// [MaxLine] bytes.
package procmaps
