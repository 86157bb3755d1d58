package unwindinfo

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Function is a RuntimeFunction together with what is known about its
// unwind information: the value the text and JSON renderers print. Tools
// fill it in; the renderers never read memory.
type Function struct {
	Entry RuntimeFunction // the entry as found in the table
	Info  *Info           // decoded UNWIND_INFO; nil if not even its header decoded
	// Err is the error met while reading or decoding the unwind
	// information of Entry or following its chain. Info holds whatever
	// decoded before it.
	Err error
	// Invalid is the rule Info.Validate found broken, when the caller
	// validated (nil otherwise).
	Invalid error
	// Chained is the parent entry when Info has UNW_FLAG_CHAININFO. Its
	// Info is nil when the chain was not (or could not be) followed.
	Chained *Function
	// Indirect is set for an indirect entry (RUNTIME_FUNCTION_INDIRECT):
	// the RuntimeFunction that Entry.UnwindData&^1 points to, with its
	// unwind information. Info is then nil.
	Indirect *Function
}

// FunctionJSON is the JSON form of a [Function]. Its field names and
// shapes are a stable contract of the fntable command line:
//
//	{"begin": "0x1000", "end": "0x1035", "unwind_data": "0x2000",
//	 "unwind_info": {...}, "error": "..."}
//
// RVAs are lowercase hexadecimal strings with a 0x prefix.
type FunctionJSON struct {
	Begin      string    `json:"begin"`                 // BeginAddress
	End        string    `json:"end"`                   // EndAddress
	UnwindData string    `json:"unwind_data"`           // UnwindData, as stored (bit 0 marks an indirect entry)
	UnwindInfo *InfoJSON `json:"unwind_info,omitempty"` // decoded UNWIND_INFO, possibly partial
	// Error describes why the unwind information could not be decoded
	// completely or its chain not followed; empty when all went well.
	Error string `json:"error,omitempty"`
	// Invalid is the first rule of the format the unwind information
	// breaks, when validation was asked for.
	Invalid string `json:"invalid,omitempty"`
	// Indirect is the entry an indirect entry points to.
	Indirect *FunctionJSON `json:"indirect,omitempty"`
}

// InfoJSON is the JSON form of an [Info].
type InfoJSON struct {
	Version    uint8 `json:"version"`     // 1 or 2
	Flags      uint8 `json:"flags"`       // UNW_FLAG_* bits
	PrologSize uint8 `json:"prolog_size"` // SizeOfProlog in bytes
	// FrameRegister is the frame register name ("rbp"), or nil when the
	// function establishes none.
	FrameRegister *string      `json:"frame_register"`
	FrameOffset   uint32       `json:"frame_offset"` // frame register offset in bytes (16*FrameOffset)
	CodeSlots     int          `json:"code_slots"`   // CountOfCodes: 16-bit slots used by the codes
	Codes         []CodeJSON   `json:"codes"`
	Epilogs       *EpilogsJSON `json:"epilogs,omitempty"` // version 2 epilog descriptors
	// Handler is the RVA of the language-specific handler, present only
	// when the flags name one.
	Handler string `json:"handler,omitempty"`
	// HandlerData is the RVA of the handler's data (unwind data RVA plus
	// the offset past the handler RVA), present with Handler.
	HandlerData string `json:"handler_data,omitempty"`
	// Chained is the parent entry of chained unwind information, present
	// only with UNW_FLAG_CHAININFO.
	Chained *FunctionJSON `json:"chained,omitempty"`
}

// CodeJSON is the JSON form of one [Code]. Only the operands of its
// operation are present; pointer fields are nil otherwise.
type CodeJSON struct {
	// Offset is CodeOffset, the prolog offset after the instruction. For
	// the first UWOP_EPILOG of version 2 it is the epilog length; it is
	// absent for the other UWOP_EPILOG codes.
	Offset   *uint8 `json:"offset,omitempty"`
	Op       string `json:"op"`                 // operation name without UWOP_ ("PUSH_NONVOL")
	Register string `json:"register,omitempty"` // PUSH_NONVOL, SAVE_NONVOL(_FAR): register name
	XMM      *int   `json:"xmm,omitempty"`      // SAVE_XMM128(_FAR): XMM register number
	// Size is the number of bytes ALLOC_SMALL and ALLOC_LARGE allocate.
	Size *uint32 `json:"size,omitempty"`
	// StackOffset is the byte offset from the frame base of a SAVE_* slot.
	StackOffset *uint32 `json:"stack_offset,omitempty"`
	// ErrorCode tells whether a PUSH_MACHFRAME frame has an error code.
	ErrorCode *bool `json:"error_code,omitempty"`
	// AtEnd and Length describe the first UWOP_EPILOG code: whether one
	// epilog ends at the function's end, and the length of every epilog.
	AtEnd  *bool  `json:"at_end,omitempty"`
	Length *uint8 `json:"length,omitempty"`
	// EpilogOffset is, for the other UWOP_EPILOG codes, the distance back
	// from the function's end to the epilog's start; "0x0" with Padding
	// set marks an unused padding code.
	EpilogOffset string `json:"epilog_offset,omitempty"`
	Padding      bool   `json:"padding,omitempty"`
}

// EpilogsJSON is the JSON form of [Epilogs].
type EpilogsJSON struct {
	Length  uint8    `json:"length"`  // epilog length in bytes
	AtEnd   bool     `json:"at_end"`  // one epilog ends at EndAddress
	Offsets []string `json:"offsets"` // other epilog starts, as distances back from EndAddress
}

func hex32(v uint32) string { return "0x" + strconv.FormatUint(uint64(v), 16) }

// NewFunctionJSON returns the JSON form of rf with its decoded unwind
// information info (nil if none decoded) and, for chained information,
// the JSON form of the parent entry (nil if it was not followed; the
// parent is then rendered from info.Chained without unwind information).
// rf must be the entry the information was read for, not an indirect one:
// the handler data RVA is computed from rf.UnwindData. The caller sets
// Error when decoding failed.
func NewFunctionJSON(rf RuntimeFunction, info *Info, chained *FunctionJSON) *FunctionJSON {
	j := &FunctionJSON{Begin: hex32(rf.BeginAddress), End: hex32(rf.EndAddress), UnwindData: hex32(rf.UnwindData)}
	if info == nil {
		return j
	}
	j.UnwindInfo = NewInfoJSON(info, rf.UnwindData)
	if info.Flags&UNW_FLAG_CHAININFO != 0 {
		if chained == nil {
			chained = NewFunctionJSON(info.Chained, nil, nil)
		}
		j.UnwindInfo.Chained = chained
	}
	return j
}

// NewInfoJSON returns the JSON form of info, read at RVA unwindData, with
// no chained entry.
func NewInfoJSON(info *Info, unwindData uint32) *InfoJSON {
	h := info.Header()
	j := &InfoJSON{
		Version:     info.Version,
		Flags:       uint8(info.Flags),
		PrologSize:  info.SizeOfProlog,
		FrameOffset: uint32(h.FrameOffsetBytes()),
		CodeSlots:   int(h.CountOfCodes),
		Codes:       make([]CodeJSON, len(info.Codes)),
	}
	if info.FrameRegister != 0 {
		s := info.FrameRegister.String()
		j.FrameRegister = &s
	}
	for i := range info.Codes {
		j.Codes[i] = NewCodeJSON(info, i)
	}
	if e, ok := info.Epilogs(); ok {
		ej := &EpilogsJSON{Length: e.Length, AtEnd: e.AtEnd, Offsets: make([]string, len(e.Offsets))}
		for i, off := range e.Offsets {
			ej.Offsets[i] = hex32(off)
		}
		j.Epilogs = ej
	}
	if info.Flags.HasHandler() {
		j.Handler = hex32(info.Handler)
		j.HandlerData = hex32(unwindData + uint32(h.TrailerOffset()) + 4)
	}
	return j
}

// firstEpilog reports whether code i of info is the epilog header of
// version 2: the first code, a UWOP_EPILOG.
func firstEpilog(info *Info, i int) bool {
	return i == 0 && info.Version >= 2 && len(info.Codes) > 0 && info.Codes[0].Op == UWOP_EPILOG
}

// NewCodeJSON returns the JSON form of code i of info. The header of info
// gives the context some codes need (the version for UWOP_EPILOG).
func NewCodeJSON(info *Info, i int) CodeJSON {
	c := info.Codes[i]
	off := c.Offset
	j := CodeJSON{Offset: &off, Op: c.Op.Name()}
	u32 := func(v uint32) *uint32 { return &v }
	switch c.Op {
	case UWOP_PUSH_NONVOL:
		j.Register = c.Register().String()
	case UWOP_ALLOC_SMALL, UWOP_ALLOC_LARGE:
		j.Size = u32(c.AllocSize())
	case UWOP_SAVE_NONVOL, UWOP_SAVE_NONVOL_FAR:
		j.Register = c.Register().String()
		j.StackOffset = u32(c.StackOffset())
	case UWOP_SAVE_XMM128, UWOP_SAVE_XMM128_FAR:
		x := c.XMM()
		j.XMM = &x
		j.StackOffset = u32(c.StackOffset())
	case UWOP_PUSH_MACHFRAME:
		e := c.MachineFrameErrorCode()
		j.ErrorCode = &e
	case UWOP_EPILOG:
		if firstEpilog(info, i) {
			atEnd := c.OpInfo&1 != 0
			j.AtEnd = &atEnd
			j.Length = &off
		} else {
			j.Offset = nil
			j.EpilogOffset = hex32(c.EpilogOffset())
			j.Padding = c.EpilogOffset() == 0
		}
	}
	return j
}

// JSON returns the JSON form of f, its chain and its indirect target.
func (f *Function) JSON() *FunctionJSON {
	var chained *FunctionJSON
	if f.Chained != nil {
		chained = f.Chained.JSON()
	}
	j := NewFunctionJSON(f.Entry, f.Info, chained)
	if f.Err != nil {
		j.Error = f.Err.Error()
	}
	if f.Invalid != nil {
		j.Invalid = f.Invalid.Error()
	}
	if f.Indirect != nil {
		j.Indirect = f.Indirect.JSON()
	}
	return j
}

// appendHex appends v as %#x formats it ("0x1a", "0x0").
func appendHex(b []byte, v uint64) []byte {
	return strconv.AppendUint(append(b, "0x"...), v, 16)
}

// appendFlagNames appends the UNW_FLAG_* bits without the prefix, joined
// by "|" ("EHANDLER|UHANDLER"), or "0".
func appendFlagNames(b []byte, f Flags) []byte {
	if f == 0 {
		return append(b, '0')
	}
	n := len(b)
	for _, bit := range []struct {
		bit  Flags
		name string
	}{{UNW_FLAG_EHANDLER, "EHANDLER"}, {UNW_FLAG_UHANDLER, "UHANDLER"}, {UNW_FLAG_CHAININFO, "CHAININFO"}} {
		if f&bit.bit != 0 {
			if len(b) > n {
				b = append(b, '|')
			}
			b = append(b, bit.name...)
			f &^= bit.bit
		}
	}
	if f != 0 {
		if len(b) > n {
			b = append(b, '|')
		}
		b = appendHex(b, uint64(f))
	}
	return b
}

// appendFrameText appends the frame register and offset ("rbp+0x30",
// "none").
func appendFrameText(b []byte, info *Info) []byte {
	if info.FrameRegister == 0 && info.FrameOffset == 0 {
		return append(b, "none"...)
	}
	if info.FrameRegister != 0 {
		b = append(b, info.FrameRegister.String()...)
	} else {
		b = append(b, "none"...)
	}
	return appendHex(append(b, '+'), 16*uint64(info.FrameOffset))
}

// headerText returns the one-line summary of the header of info.
func headerText(info *Info) string { return string(appendHeaderText(nil, info)) }

// appendHeaderText appends the one-line summary of the header of info:
// "v1 flags=EHANDLER prolog=0x4 frame=none codes=1".
func appendHeaderText(b []byte, info *Info) []byte {
	b = strconv.AppendUint(append(b, 'v'), uint64(info.Version), 10)
	b = appendFlagNames(append(b, " flags="...), info.Flags)
	b = appendHex(append(b, " prolog="...), uint64(info.SizeOfProlog))
	b = appendFrameText(append(b, " frame="...), info)
	return strconv.AppendInt(append(b, " codes="...), int64(info.CountOfCodes()), 10)
}

// codeText returns the text of code i of info (see appendCodeText).
func codeText(info *Info, i int) string { return string(appendCodeText(nil, info, i)) }

// appendCodeText appends the text of code i of info: the code offset
// (omitted for UWOP_EPILOG, whose offset field means something else), the
// operation and its operands in bytes ("0x04 ALLOC_SMALL 0x38").
func appendCodeText(b []byte, info *Info, i int) []byte {
	c := info.Codes[i]
	if c.Op == UWOP_EPILOG {
		if firstEpilog(info, i) {
			b = appendHex(append(b, "EPILOG length="...), uint64(c.Offset))
			if c.OpInfo&1 != 0 {
				b = append(b, " at_end"...)
			}
			if c.OpInfo > 1 {
				b = strconv.AppendUint(append(b, " info="...), uint64(c.OpInfo), 10)
			}
			return b
		}
		if c.EpilogOffset() == 0 {
			return append(b, "EPILOG padding"...)
		}
		return appendHex(append(b, "EPILOG offset="...), uint64(c.EpilogOffset()))
	}
	const digits = "0123456789abcdef"
	b = append(b, '0', 'x', digits[c.Offset>>4], digits[c.Offset&0xf], ' ')
	b = append(b, c.Op.Name()...)
	info4 := func(b []byte) []byte { return strconv.AppendUint(append(b, " info="...), uint64(c.OpInfo), 10) }
	switch c.Op {
	case UWOP_PUSH_NONVOL:
		b = append(append(b, ' '), c.Register().String()...)
	case UWOP_ALLOC_SMALL, UWOP_ALLOC_LARGE:
		b = appendHex(append(b, ' '), uint64(c.AllocSize()))
		if c.Op == UWOP_ALLOC_LARGE && c.OpInfo > 1 {
			b = info4(b)
		}
	case UWOP_SET_FPREG:
		b = appendFrameText(append(b, ' '), info)
		if c.OpInfo != 0 {
			b = info4(b)
		}
	case UWOP_SAVE_NONVOL, UWOP_SAVE_NONVOL_FAR:
		b = append(append(b, ' '), c.Register().String()...)
		b = append(appendHex(append(b, " [frame+"...), uint64(c.StackOffset())), ']')
	case UWOP_SAVE_XMM128, UWOP_SAVE_XMM128_FAR:
		b = strconv.AppendInt(append(b, " xmm"...), int64(c.XMM()), 10)
		b = append(appendHex(append(b, " [frame+"...), uint64(c.StackOffset())), ']')
	case UWOP_PUSH_MACHFRAME:
		if c.MachineFrameErrorCode() {
			b = append(b, " error_code"...)
		}
		if c.OpInfo > 1 {
			b = info4(b)
		}
	default:
		b = strconv.AppendUint(append(b, " info="...), uint64(c.OpInfo), 10)
		b = appendHex(append(b, " operand="...), uint64(c.Operand))
	}
	return b
}

// String returns a one-line rendering of info: the header, each code and
// the trailer, separated by "; ", e.g.
//
//	v1 flags=EHANDLER prolog=0x4 frame=none codes=1: 0x04 ALLOC_SMALL 0x38; handler 0x1070
//
// It is the form of the test vectors in testdata/decode.txt.
func (info *Info) String() string {
	var b strings.Builder
	b.WriteString(headerText(info))
	for i := range info.Codes {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(codeText(info, i))
	}
	for _, t := range trailerText(info) {
		b.WriteString("; ")
		b.WriteString(t)
	}
	return b.String()
}

// trailerText returns the lines that describe what follows the codes,
// without the handler data RVA.
func trailerText(info *Info) []string {
	var t []string
	if info.Pad != 0 {
		t = append(t, fmt.Sprintf("pad %#x", info.Pad))
	}
	if info.Flags.HasHandler() {
		t = append(t, fmt.Sprintf("handler %#x", info.Handler))
	}
	if info.Flags&UNW_FLAG_CHAININFO != 0 {
		t = append(t, "chained "+entryText(info.Chained))
	}
	return t
}

func entryText(rf RuntimeFunction) string { return string(appendEntryText(nil, rf)) }

// appendEntryText appends rf as "0x1000-0x1035 unwind 0x2000".
func appendEntryText(b []byte, rf RuntimeFunction) []byte {
	b = append(appendHex(b, uint64(rf.BeginAddress)), '-')
	b = append(appendHex(b, uint64(rf.EndAddress)), " unwind "...)
	return appendHex(b, uint64(rf.UnwindData))
}

// String returns the text form of f (see [Function.WriteText]).
func (f *Function) String() string { return string(f.appendText(nil, "", "")) }

// WriteText writes the text form of f: a line with the entry and the
// header of its unwind information, then one indented line per code and
// lines for the epilogs (version 2, as RVAs), the handler and its data,
// the chained parent (recursively, indented further) and any error:
//
//	0x1000-0x1035 unwind 0x2000: v1 flags=EHANDLER prolog=0x1d frame=rbp+0x30 codes=9
//	  0x1d SET_FPREG rbp+0x30
//	  0x0f SAVE_NONVOL rsi [frame+0xf8]
//	  handler 0x200 data 0x2030
//
// The form is stable: tools and golden files depend on it.
func (f *Function) WriteText(w io.Writer) error {
	_, err := w.Write(f.appendText(nil, "", ""))
	return err
}

// AppendText appends the text form of f (see [Function.WriteText]) to b
// and returns the extended buffer.
func (f *Function) AppendText(b []byte) []byte { return f.appendText(b, "", "") }

func (f *Function) appendText(b []byte, indent, prefix string) []byte {
	b = append(b, indent...)
	b = append(b, prefix...)
	b = appendEntryText(b, f.Entry)
	in := indent + "  "
	switch {
	case f.Indirect != nil:
		b = append(b, ": indirect\n"...)
		b = f.Indirect.appendText(b, in, "target ")
	case f.Info != nil:
		info := f.Info
		b = append(b, ": "...)
		b = appendHeaderText(b, info)
		b = append(b, '\n')
		for i := range info.Codes {
			b = append(b, in...)
			b = appendCodeText(b, info, i)
			b = append(b, '\n')
		}
		if e, ok := info.Epilogs(); ok {
			b = append(b, in...)
			b = append(appendHex(append(b, "epilogs length="...), uint64(e.Length)), ':')
			if e.AtEnd {
				b = append(appendHex(append(b, ' '), uint64(f.Entry.EndAddress-uint32(e.Length))), "(end)"...)
			}
			for _, off := range e.Offsets {
				b = appendHex(append(b, ' '), uint64(f.Entry.EndAddress-off))
			}
			b = append(b, '\n')
		}
		if info.Pad != 0 {
			b = append(b, in...)
			b = append(appendHex(append(b, "pad "...), uint64(info.Pad)), '\n')
		}
		if info.Flags.HasHandler() {
			data := f.Entry.UnwindData + uint32(info.Header().TrailerOffset()) + 4
			b = append(b, in...)
			b = appendHex(append(b, "handler "...), uint64(info.Handler))
			b = append(appendHex(append(b, " data "...), uint64(data)), '\n')
		}
		if info.Flags&UNW_FLAG_CHAININFO != 0 {
			if f.Chained != nil {
				b = f.Chained.appendText(b, in, "chained ")
			} else {
				b = append(b, in...)
				b = append(appendEntryText(append(b, "chained "...), info.Chained), '\n')
			}
		}
	default:
		b = append(b, '\n')
	}
	if f.Err != nil {
		b = append(b, in...)
		b = append(append(append(b, "error: "...), f.Err.Error()...), '\n')
	}
	if f.Invalid != nil {
		b = append(b, in...)
		b = append(append(append(b, "invalid: "...), f.Invalid.Error()...), '\n')
	}
	return b
}
