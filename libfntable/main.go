package main

import (
	"fmt"
	"os"
)

// main runs only if the package is built as a program by mistake: as a
// library (-buildmode=c-shared or c-archive) its main is never called.
func main() {
	fmt.Fprintln(os.Stderr, "libfntable is a library: build it with go build -buildmode=c-shared or -buildmode=c-archive (see README.md)")
	os.Exit(2)
}
