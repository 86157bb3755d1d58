//go:build !linux

package minidump

import (
	"errors"
	"os"
)

// openUnnamed returns nil: unnamed files are a Linux feature.
func openUnnamed(dir, base string) *os.File { return nil }

// linkAs is never called here (openUnnamed makes no unnamed file).
func linkAs(f *os.File, name string) error {
	return errors.New("unnamed files are not supported")
}
