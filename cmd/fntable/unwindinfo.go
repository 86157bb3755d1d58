package main

import (
	"fmt"
	"io"
	"os"

	"github.com/fntable/fntable/internal/blockcache"
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
loops, is listed with the error; the exit status is then 1. A table that
ends before the last entry its directory announces (a truncated file) is
listed as far as it goes, and the exit status is 1 too. With --validate,
entries that break a rule of the format that Windows tolerates (code
order, offsets beyond the prolog, reserved operation info...) are listed
as invalid, and also make the exit status 1.

The listing is written as the entries are read: its memory does not grow
with the size of the table, except that the overlaps of an unsorted table
(which linkers do not write) are checked in address order, at 24 bytes
an entry.

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

// unwindinfoMain lists the image file name.
func unwindinfoMain(name string, asJSON, validate bool, stdout, stderr io.Writer) error {
	fh, err := os.Open(name)
	if err != nil {
		return err
	}
	defer fh.Close()
	return listUnwindinfo(name, blockcache.New(fh, readBlockSize, readBlocks), asJSON, validate, stdout, stderr)
}

// The cache the listing reads the image through: 8 blocks of 64 KiB. The
// listing reads the table and the unwind information in small pieces,
// each mostly in file order: from the cache, an image of 200,000 entries
// takes a few hundred reads of the file instead of a million.
const (
	readBlockSize = 64 << 10
	readBlocks    = 8
)

// listFlushSize is how many bytes of the listing are gathered before they
// are written.
const listFlushSize = 64 << 10

// listUnwindinfo lists the image file r, named name. It reads the function
// table twice, entry by entry, and keeps none of it: first for the
// warnings and the count, which come before the listing, then to list
// each entry as it is described. Memory does not grow with the table but
// for an unsorted one, whose overlaps are checked in address order.
//
// The JSON document is the one encoding/json writes, with an indent of
// two spaces, for
//
//	struct {
//		ImageBase string                     `json:"image_base"`
//		Functions []*unwindinfo.FunctionJSON `json:"functions"`
//	}
//
// written one function at a time with unwindinfo.Function.AppendJSON.
func listUnwindinfo(name string, r io.ReaderAt, asJSON, validate bool, stdout, stderr io.Writer) error {
	f, err := peimage.NewFileLazy(r)
	if err != nil {
		return fileError(name, err)
	}
	sc := f.ScanTable()
	warnings := sc.Warnings()
	count, short := sc.Count(), sc.Err()
	for _, w := range warnings {
		if short != nil && w.Kind == peimage.WarnTableTruncated {
			continue // the error at the end says it
		}
		fmt.Fprintf(stderr, "fntable: %s: warning: %v\n", name, w)
	}

	buf := make([]byte, 0, 2*listFlushSize)
	flush := func() error {
		_, err := stdout.Write(buf)
		buf = buf[:0]
		return err
	}
	if asJSON {
		buf = fmt.Appendf(buf, "{\n  \"image_base\": \"%#x\",\n  \"functions\": [", f.ImageBase())
	} else {
		rva, size := f.ExceptionDirectory()
		buf = fmt.Appendf(buf, "%s: image base %#x, exception directory %#x size %#x, %d functions\n",
			name, f.ImageBase(), rva, size, count)
	}
	bad := 0
	sc = f.ScanTable()
	for sc.Next() {
		d := f.Describe(sc.Function())
		if validate {
			validateAll(d)
		}
		if hasError(d) {
			bad++
		}
		if asJSON {
			if sc.Count() > 1 {
				buf = append(buf, ',')
			}
			buf = append(buf, "\n    "...)
			buf = d.AppendJSON(buf, "    ", "  ")
		} else {
			buf = d.AppendText(buf)
		}
		if len(buf) >= listFlushSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if asJSON {
		if sc.Count() > 0 {
			buf = append(buf, "\n  "...)
		}
		buf = append(buf, "]\n}\n"...)
	}
	if err := flush(); err != nil {
		return err
	}

	if sc.Count() != count || (sc.Err() == nil) != (short == nil) {
		return fmt.Errorf("%s: the function table changed while it was read: %d entries, then %d", name, count, sc.Count())
	}
	switch {
	case short != nil && bad > 0:
		return fmt.Errorf("%s: %w; %d of %d functions have errors", name, short, bad, count)
	case short != nil:
		return fmt.Errorf("%s: %w", name, short)
	case bad > 0:
		return fmt.Errorf("%s: %d of %d functions have errors", name, bad, count)
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
