package main

import (
	"fmt"
	"io"
	"os"

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
	return listUnwindinfo(name, newBlockReader(fh), asJSON, validate, stdout, stderr)
}

// Sizes of the cache of a blockReader: 512 KiB.
const (
	readBlockSize = 64 << 10
	readBlocks    = 8
)

// blockReader reads r in aligned blocks of readBlockSize bytes and keeps
// the readBlocks it used last. The listing reads the table and the unwind
// information in small pieces, each mostly in file order: from the cache,
// an image of 200,000 entries takes a few hundred reads of the file
// instead of a million. A blockReader is not safe for concurrent use.
type blockReader struct {
	r      io.ReaderAt
	blocks [readBlocks]readBlock
	clock  uint64 // counts uses, for the choice of the block to replace
}

// readBlock is one block of a blockReader.
type readBlock struct {
	off  int64  // offset in the file of data; -1 for none
	data []byte // the bytes read: readBlockSize, fewer where the file ends; capacity readBlockSize
	err  error  // why data is short, or nil
	used uint64 // clock at the last use
}

func newBlockReader(r io.ReaderAt) *blockReader {
	c := &blockReader{r: r}
	slab := make([]byte, readBlocks*readBlockSize) // all at once: the memory used is the same for every file
	for i := range c.blocks {
		c.blocks[i].data = slab[i*readBlockSize : i*readBlockSize : (i+1)*readBlockSize]
		c.blocks[i].off = -1
	}
	return c
}

// ReadAt implements io.ReaderAt.
func (c *blockReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || len(p) >= readBlockSize {
		return c.r.ReadAt(p, off)
	}
	n := 0
	for n < len(p) {
		o := off + int64(n)
		b := c.block(o &^ (readBlockSize - 1))
		i := int(o - b.off)
		if i >= len(b.data) {
			return n, b.err
		}
		n += copy(p[n:], b.data[i:])
	}
	return n, nil
}

// block returns the block at off, reading it if it is not in the cache.
func (c *blockReader) block(off int64) *readBlock {
	c.clock++
	victim := &c.blocks[0]
	for i := range c.blocks {
		b := &c.blocks[i]
		if b.off == off {
			b.used = c.clock
			return b
		}
		if b.used < victim.used {
			victim = b
		}
	}
	n, err := c.r.ReadAt(victim.data[:readBlockSize], off)
	if n < readBlockSize && err == nil {
		err = io.ErrUnexpectedEOF // a ReaderAt that breaks its contract
	}
	victim.off, victim.data, victim.err, victim.used = off, victim.data[:max(n, 0)], err, c.clock
	return victim
}

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
