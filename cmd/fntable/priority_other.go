//go:build !linux

package main

// lowerPriority does nothing here: the live targets it serves are Linux
// processes.
func lowerPriority() {}
