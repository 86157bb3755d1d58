package unwindinfo

import (
	"encoding/json"
	"strconv"
)

// AppendJSON appends the JSON form of f (see [FunctionJSON]) to b and
// returns the extended buffer. The bytes are those of
//
//	json.MarshalIndent(f.JSON(), prefix, indent)
//
// but written directly, without making the intermediate values, so that
// tools can write a listing of any length one function at a time: the
// first line has no prefix, every following line starts with prefix and
// one indent for each level of nesting, as [json.MarshalIndent] and
// [json.Encoder.SetIndent] lay them out (with their HTML-safe escaping of
// strings).
func (f *Function) AppendJSON(b []byte, prefix, indent string) []byte {
	w := jsonWriter{b: b, prefix: prefix, indent: indent, spaces: isSpaces(prefix) && isSpaces(indent)}
	w.function(f)
	return w.b
}

// jsonWriter appends indented JSON the way encoding/json's Indent lays it
// out: one member or element a line, "key": value, and empty objects and
// arrays on one line ("[]").
type jsonWriter struct {
	b              []byte
	prefix, indent string
	depth          int  // open objects and arrays
	empty          bool // the innermost open object or array has no member yet
	spaces         bool // prefix and indent are spaces only
}

func (w *jsonWriter) newline() {
	w.b = append(w.b, '\n')
	if n := len(w.prefix) + w.depth*len(w.indent); w.spaces && n <= len(jsonSpaces) {
		w.b = append(w.b, jsonSpaces[:n]...) // the usual layout, at once
		return
	}
	w.b = append(w.b, w.prefix...)
	for range w.depth {
		w.b = append(w.b, w.indent...)
	}
}

// jsonSpaces is the indentation of the lines of the usual layouts.
const jsonSpaces = "                                                                "

// isSpaces reports whether s is made of spaces only.
func isSpaces(s string) bool { return len(s) <= len(jsonSpaces) && s == jsonSpaces[:len(s)] }

// open starts an object ('{') or array ('[').
func (w *jsonWriter) open(c byte) {
	w.b = append(w.b, c)
	w.depth++
	w.empty = true
}

// close ends the innermost object ('}') or array (']').
func (w *jsonWriter) close(c byte) {
	w.depth--
	if !w.empty {
		w.newline()
	}
	w.b = append(w.b, c)
	w.empty = false
}

// elem starts a member of the innermost array.
func (w *jsonWriter) elem() {
	if !w.empty {
		w.b = append(w.b, ',')
	}
	w.newline()
	w.empty = false
}

// key starts the member named k of the innermost object; k needs no
// escaping.
func (w *jsonWriter) key(k string) {
	w.elem()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, `": `...)
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

func (w *jsonWriter) hex(k string, v uint32) {
	w.key(k)
	w.b = append(w.b, `"0x`...)
	w.b = strconv.AppendUint(w.b, uint64(v), 16)
	w.b = append(w.b, '"')
}

func (w *jsonWriter) uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *jsonWriter) bool(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it by default.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s) // rare: error messages with special characters
			if err != nil {
				panic("unwindinfo: json.Marshal of a string: " + err.Error())
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// function writes f as Function.JSON and NewFunctionJSON render it.
func (w *jsonWriter) function(f *Function) {
	w.entry(f.Entry)
	if info := f.Info; info != nil {
		w.key("unwind_info")
		w.info(info, f.Entry.UnwindData, func() {
			if f.Chained != nil {
				w.function(f.Chained)
			} else {
				w.entry(info.Chained)
				w.close('}')
			}
		})
	}
	if f.Err != nil {
		w.omitEmpty("error", f.Err.Error())
	}
	if f.Invalid != nil {
		w.omitEmpty("invalid", f.Invalid.Error())
	}
	if f.Indirect != nil {
		w.key("indirect")
		w.function(f.Indirect)
	}
	w.close('}')
}

// entry opens an object with the members of rf.
func (w *jsonWriter) entry(rf RuntimeFunction) {
	w.open('{')
	w.hex("begin", rf.BeginAddress)
	w.hex("end", rf.EndAddress)
	w.hex("unwind_data", rf.UnwindData)
}

// info writes info, read at RVA unwindData, as NewInfoJSON renders it;
// chained writes the parent entry of chained information.
func (w *jsonWriter) info(info *Info, unwindData uint32, chained func()) {
	h := info.Header()
	w.open('{')
	w.uint("version", uint64(info.Version))
	w.uint("flags", uint64(info.Flags))
	w.uint("prolog_size", uint64(info.SizeOfProlog))
	w.key("frame_register")
	if info.FrameRegister != 0 {
		w.b = appendJSONString(w.b, info.FrameRegister.String())
	} else {
		w.b = append(w.b, "null"...)
	}
	w.uint("frame_offset", uint64(uint32(h.FrameOffsetBytes())))
	w.uint("code_slots", uint64(h.CountOfCodes))
	w.key("codes")
	w.open('[')
	for i := range info.Codes {
		w.elem()
		w.code(info, i)
	}
	w.close(']')
	if e, ok := info.Epilogs(); ok {
		w.key("epilogs")
		w.open('{')
		w.uint("length", uint64(e.Length))
		w.bool("at_end", e.AtEnd)
		w.key("offsets")
		w.open('[')
		for _, off := range e.Offsets {
			w.elem()
			w.b = append(w.b, `"0x`...)
			w.b = strconv.AppendUint(w.b, uint64(off), 16)
			w.b = append(w.b, '"')
		}
		w.close(']')
		w.close('}')
	}
	if info.Flags.HasHandler() {
		w.hex("handler", info.Handler)
		w.hex("handler_data", unwindData+uint32(h.TrailerOffset())+4)
	}
	if info.Flags&UNW_FLAG_CHAININFO != 0 {
		w.key("chained")
		chained()
	}
	w.close('}')
}

// code writes code i of info as NewCodeJSON renders it.
func (w *jsonWriter) code(info *Info, i int) {
	c := info.Codes[i]
	w.open('{')
	epilog := c.Op == UWOP_EPILOG && !firstEpilog(info, i)
	if !epilog {
		w.uint("offset", uint64(c.Offset))
	}
	w.str("op", c.Op.Name())
	switch c.Op {
	case UWOP_PUSH_NONVOL:
		w.register(c.Register())
	case UWOP_ALLOC_SMALL, UWOP_ALLOC_LARGE:
		w.uint("size", uint64(c.AllocSize()))
	case UWOP_SAVE_NONVOL, UWOP_SAVE_NONVOL_FAR:
		w.register(c.Register())
		w.uint("stack_offset", uint64(c.StackOffset()))
	case UWOP_SAVE_XMM128, UWOP_SAVE_XMM128_FAR:
		w.key("xmm")
		w.b = strconv.AppendInt(w.b, int64(c.XMM()), 10)
		w.uint("stack_offset", uint64(c.StackOffset()))
	case UWOP_PUSH_MACHFRAME:
		w.bool("error_code", c.MachineFrameErrorCode())
	case UWOP_EPILOG:
		if !epilog {
			w.bool("at_end", c.OpInfo&1 != 0)
			w.uint("length", uint64(c.Offset))
		} else {
			w.hex("epilog_offset", c.EpilogOffset())
			if c.EpilogOffset() == 0 {
				w.bool("padding", true)
			}
		}
	}
	w.close('}')
}

// register writes the "register" member.
func (w *jsonWriter) register(r Register) { w.omitEmpty("register", r.String()) }

// omitEmpty writes the member k unless v is empty, as the omitempty
// option of its field does.
func (w *jsonWriter) omitEmpty(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}
