// Package live is a [target.Target] over a running Linux process: its
// memory is read with process_vm_readv(2) (or /proc/PID/mem) without
// stopping it, and its modules come from /proc/PID/maps.
//
// Module files are opened as the process sees them, through
// /proc/PID/map_files or /proc/PID/root, so a process in a container or
// one whose file was deleted or replaced after it was mapped is still
// symbolized from the right bytes.
package live
