package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// fileError names the file name in err when err does not already: the
// decoders' errors say what is wrong ("read pe headers: not a pe image")
// but not in which file, and a command line may name several.
func fileError(name string, err error) error {
	var pe *fs.PathError
	if err == nil || errors.As(err, &pe) || strings.Contains(err.Error(), name) {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}
