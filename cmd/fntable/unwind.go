package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/fntable/fntable/peimage"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

func newUnwindCmd() *command {
	c := &command{
		name:    "unwind",
		args:    "[--image FILE] [--handler-type none|ehandler|uhandler]",
		summary: "unwind one frame for each register state read from standard input (JSON lines)",
		help: `
Unwind performs one RtlVirtualUnwind step for each JSON object read from
standard input, one per line, and writes one JSON line per input line, in
order (a blank line is skipped). It answers "what would Windows do with this frame?" for JIT and
compiler authors, and is the contract for harnesses in other languages.

Input line:
  {"context": {"rax": "0x...", ..., "r15": "0x...", "rip": "0x...",
               "xmm0": "<up to 32 hex digits>", ...},
   "memory": [{"address": "0x...", "bytes": "<hex>"}, ...],
   "image_base": "0x...",                                   (optional)
   "function": {"begin": "0x...", "end": "0x...", "unwind_data": "0x..."} | null}
                                                            (optional)

With --image, code and unwind information come from the PE32+ image FILE
loaded at its preferred image base, and the function entry is looked up
for the context's rip in its exception directory; "memory" supplies the
stack (and may override image bytes). Without --image, each line gives
"image_base" and "function" itself (RVAs relative to image_base; null for
a leaf function) and "memory" supplies code, unwind information and stack.

Output line:
  {"ok": true,
   "function": {"begin": "0x...", "end": "0x...", "unwind_data": "0x..."} | null,
   "context": {...the same keys, after one unwind step...},
   "establisher_frame": "0x...", "handler": "0x..." | null,
   "handler_data": "0x..." | null, "in_epilog": bool, "machine_frame": bool,
   "context_pointers": {"rbx": "0x...", "xmm6": "0x...", ...}}
or {"ok": false, "error": "..."} when the line is malformed or the unwind
fails. "function" values are RVAs; every other value is a virtual
address. context_pointers lists only registers restored from memory, with
the address each was read from. XMM values are 128-bit numbers, most
significant digit first. The exit status is 1 if any line failed.`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		image := fs.String("image", "", "PE32+ x64 image that holds the code and unwind information")
		ht := fs.String("handler-type", "ehandler", "which handler to report: none, ehandler or uhandler")
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return c.usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
		}
		var handler unwind.HandlerType
		switch *ht {
		case "none":
			handler = unwind.HandlerNone
		case "ehandler":
			handler = unwind.HandlerException
		case "uhandler":
			handler = unwind.HandlerUnwind
		default:
			return c.usagef("--handler-type %q: want none, ehandler or uhandler", *ht)
		}
		var img *loadedImage
		if *image != "" {
			var err error
			if img, err = loadImage(*image); err != nil {
				return err
			}
			for _, w := range img.warnings {
				fmt.Fprintf(stderr, "fntable: %s: warning: %v\n", *image, w)
			}
		}
		return unwindMain(os.Stdin, stdout, img, handler)
	}
	return c
}

// loadedImage is a PE image mapped at its preferred base.
type loadedImage struct {
	base     uint64
	bytes    []byte
	table    *unwind.SortedTable
	warnings []peimage.Warning
}

// maxImageSize bounds the image the unwind command maps into memory.
const maxImageSize = 1 << 30

func loadImage(name string) (*loadedImage, error) {
	f, err := peimage.Open(name)
	if err != nil {
		return nil, fileError(name, err)
	}
	defer f.Close()
	if f.SizeOfImage() > maxImageSize {
		return nil, fmt.Errorf("%s: image of %d bytes is too large to map", name, f.SizeOfImage())
	}
	img := &loadedImage{base: f.ImageBase(), bytes: make([]byte, f.SizeOfImage()), warnings: f.Warnings()}
	// Map page by page; pages no section covers stay zero.
	const page = 0x1000
	for rva := uint32(0); rva < f.SizeOfImage(); rva += page {
		end := min(rva+page, f.SizeOfImage())
		f.ReadRVA(img.bytes[rva:end], rva)
	}
	img.table = unwind.NewSortedTable(img.base, f.Functions())
	return img, nil
}

// unwindRequest is one input line of the unwind command.
type unwindRequest struct {
	Context   *unwind.Context `json:"context"`
	Memory    []memoryRegion  `json:"memory"`
	ImageBase *hexUint        `json:"image_base"`
	Function  json.RawMessage `json:"function"`
}

type memoryRegion struct {
	Address hexUint `json:"address"`
	Bytes   string  `json:"bytes"`
}

// functionJSON is a RUNTIME_FUNCTION with RVAs as hex strings.
type functionJSON struct {
	Begin      hexUint `json:"begin"`
	End        hexUint `json:"end"`
	UnwindData hexUint `json:"unwind_data"`
}

// unwindResponse is one output line of the unwind command.
type unwindResponse struct {
	OK               bool                    `json:"ok"`
	Error            string                  `json:"error,omitempty"`
	Function         *functionJSON           `json:"function"`
	Context          *unwind.Context         `json:"context,omitempty"`
	EstablisherFrame *hexUint                `json:"establisher_frame,omitempty"`
	Handler          *hexUint                `json:"handler"`
	HandlerData      *hexUint                `json:"handler_data"`
	InEpilog         bool                    `json:"in_epilog"`
	MachineFrame     bool                    `json:"machine_frame"`
	ContextPointers  *unwind.ContextPointers `json:"context_pointers,omitempty"`
}

// failure is the output line of a line that failed.
type failure struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// hexUint is a uint64 written as a "0x..." string; it also reads decimal
// strings and JSON numbers.
type hexUint uint64

func (h hexUint) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf(`"%#x"`, uint64(h))), nil }

func (h *hexUint) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		s = string(b)
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return fmt.Errorf("bad number %s", b)
	}
	*h = hexUint(v)
	return nil
}

// maxLine bounds one input line (its memory regions are inline).
const maxLine = 64 << 20

func unwindMain(in io.Reader, out io.Writer, img *loadedImage, ht unwind.HandlerType) error {
	lr := newLineReader(in, maxLine)
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	failed, lines := 0, 0
	for {
		b, tooLong, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
		line := strings.TrimSpace(string(b))
		if line == "" && !tooLong {
			continue
		}
		lines++
		var resp *unwindResponse
		if tooLong {
			err = fmt.Errorf("decode request: the line is longer than %d MiB", maxLine>>20)
		} else {
			resp, err = unwindLine(line, img, ht)
		}
		if err != nil {
			failed++
			err = enc.Encode(failure{Error: err.Error()})
		} else {
			err = enc.Encode(resp)
		}
		if err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d lines failed", failed, lines)
	}
	return nil
}

func unwindLine(line string, img *loadedImage, ht unwind.HandlerType) (*unwindResponse, error) {
	var req unwindRequest
	if err := decodeJSONLine(line, &req); err != nil {
		return nil, fmt.Errorf("decode request: %v", requestError(err))
	}
	if req.Context == nil {
		return nil, errors.New("decode request: no context")
	}
	var mem unwind.SplicedMemory
	var table unwind.FunctionTable
	base := uint64(0)
	if img != nil {
		mem.Add(img.base, img.bytes)
		table, base = img.table, img.base
	}
	for i, r := range req.Memory {
		b, err := hex.DecodeString(r.Bytes)
		if err != nil {
			return nil, fmt.Errorf("decode request: memory[%d]: bytes: want hex digits, two per byte", i)
		}
		mem.Add(uint64(r.Address), b)
	}
	if req.ImageBase != nil {
		base = uint64(*req.ImageBase)
	}
	ctx := *req.Context
	pc := ctx.Rip
	var fn *unwindinfo.RuntimeFunction
	switch {
	case req.Function != nil:
		if string(req.Function) != "null" {
			var f functionJSON
			if err := json.Unmarshal(req.Function, &f); err != nil {
				return nil, fmt.Errorf("decode request: function: %v", requestError(err))
			}
			if f.Begin > 0xffffffff || f.End > 0xffffffff || f.UnwindData > 0xffffffff {
				return nil, errors.New("decode request: function: RVAs must fit 32 bits")
			}
			fn = &unwindinfo.RuntimeFunction{BeginAddress: uint32(f.Begin), EndAddress: uint32(f.End), UnwindData: uint32(f.UnwindData)}
		}
	case table != nil:
		found, fbase, ok, err := unwind.Lookup(table, &mem, pc)
		if err != nil {
			return nil, err
		}
		if ok {
			fn, base = &found, fbase
		}
	default:
		return nil, errors.New("decode request: without --image, give \"function\" (null for a leaf function) and \"image_base\"")
	}
	u := unwind.Unwinder{Memory: &mem, Functions: table}
	var ptrs unwind.ContextPointers
	res, err := u.VirtualUnwind(ht, base, pc, fn, &ctx, &ptrs)
	if err != nil {
		return nil, err
	}
	resp := &unwindResponse{OK: true, Context: &ctx, InEpilog: res.InEpilog(), MachineFrame: res.MachineFrame(),
		ContextPointers: &ptrs}
	if fn != nil {
		resp.Function = &functionJSON{Begin: hexUint(fn.BeginAddress), End: hexUint(fn.EndAddress), UnwindData: hexUint(fn.UnwindData)}
	}
	ef := hexUint(res.EstablisherFrame)
	resp.EstablisherFrame = &ef
	if res.HandlerRoutine != 0 {
		h, d := hexUint(res.HandlerRoutine), hexUint(res.HandlerData)
		resp.Handler, resp.HandlerData = &h, &d
	}
	return resp, nil
}

// requestError restates an error of encoding/json about a request in the
// terms of the request, without Go type names.
func requestError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		have, _, _ := strings.Cut(te.Value, " ") // "number 3" is a number
		if have == "bool" {
			have = "true or false"
		} else {
			have = map[bool]string{true: "an ", false: "a "}[have == "array" || have == "object"] + have
		}
		if te.Field == "" {
			return fmt.Errorf("want %s, have %s", jsonKind(te.Type), have)
		}
		return fmt.Errorf("%s: want %s, have %s", te.Field, jsonKind(te.Type), have)
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the line ends inside its JSON object (each request is one line)")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names the JSON value that decodes into t.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	}
	return "a number"
}
