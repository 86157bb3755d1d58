package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/fntable/fntable/peimage"
	"github.com/fntable/fntable/unwindinfo"
)

func newUnwindinfoCmd() *command {
	c := &command{
		name:    "unwindinfo",
		args:    "[--json] [--validate] FILE",
		summary: "list the function table and unwind information of a PE image",
		help: `
Unwindinfo lists every RUNTIME_FUNCTION of the exception directory of the
PE32+ x64 image FILE, in file order, with its decoded UNWIND_INFO: the
header, each unwind code with its operands in bytes, version 2 epilogs,
the exception handler and its data, and chained unwind information,
followed to the primary entry (up to 32 links).

Warnings about the table (unsorted or overlapping entries, entries outside
the image, a directory size that is not a multiple of 12) go to standard
error. An entry whose unwind information cannot be decoded, or whose chain
loops, is listed with the error; the exit status is then 1. With
--validate, entries that break a rule of the format that Windows tolerates
(code order, offsets beyond the prolog, reserved operation info...) are
listed as invalid, and also make the exit status 1.

With --json the output is one JSON document:
{"image_base": "0x...", "functions": [{"begin", "end", "unwind_data",
"unwind_info": {...}, "error"}...]}.`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		asJSON := fs.Bool("json", false, "print one JSON document instead of text")
		validate := fs.Bool("validate", false, "also check each UNWIND_INFO against the rules of the format")
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return c.usagef("want one FILE, have %d arguments", fs.NArg())
		}
		return unwindinfoMain(fs.Arg(0), *asJSON, *validate, stdout, stderr)
	}
	return c
}

// unwindinfoListing is the JSON document of "fntable unwindinfo --json".
type unwindinfoListing struct {
	ImageBase string                     `json:"image_base"`
	Functions []*unwindinfo.FunctionJSON `json:"functions"`
}

func unwindinfoMain(name string, asJSON, validate bool, stdout, stderr io.Writer) error {
	f, err := peimage.Open(name)
	if err != nil {
		return fileError(name, err)
	}
	defer f.Close()
	for _, w := range f.Warnings() {
		fmt.Fprintf(stderr, "fntable: %s: warning: %v\n", name, w)
	}
	fns := f.Functions()
	described := make([]*unwindinfo.Function, len(fns))
	bad := 0
	for i, rf := range fns {
		d := f.Describe(rf)
		if validate {
			validateAll(d)
		}
		if hasError(d) {
			bad++
		}
		described[i] = d
	}

	if asJSON {
		doc := unwindinfoListing{ImageBase: fmt.Sprintf("%#x", f.ImageBase()), Functions: make([]*unwindinfo.FunctionJSON, len(described))}
		for i, d := range described {
			doc.Functions[i] = d.JSON()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			return err
		}
	} else {
		rva, size := f.ExceptionDirectory()
		if _, err := fmt.Fprintf(stdout, "%s: image base %#x, exception directory %#x size %#x, %d functions\n",
			name, f.ImageBase(), rva, size, len(fns)); err != nil {
			return err
		}
		for _, d := range described {
			if err := d.WriteText(stdout); err != nil {
				return err
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%s: %d of %d functions have errors", name, bad, len(fns))
	}
	return nil
}

// validateAll records the result of Info.Validate on fn and everything it
// links to.
func validateAll(fn *unwindinfo.Function) {
	for ; fn != nil; fn = fn.Chained {
		if fn.Info != nil && fn.Err == nil {
			fn.Invalid = fn.Info.Validate()
		}
		validateAll(fn.Indirect)
	}
}

// hasError reports whether fn or anything it links to has an error or
// breaks a rule.
func hasError(fn *unwindinfo.Function) bool {
	for ; fn != nil; fn = fn.Chained {
		if fn.Err != nil || fn.Invalid != nil || hasError(fn.Indirect) {
			return true
		}
	}
	return false
}
