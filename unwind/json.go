package unwind

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fntable/fntable/unwindinfo"
)

// MarshalJSON encodes the registers as a JSON object with lowercase
// register names: "rax" … "r15" and "rip" as hex strings ("0x1f"), and
// "xmm0" … "xmm15" as 32 hex digits of the 128-bit value, most
// significant first. Other fields appear only when nonzero:
// "context_flags", "mxcsr", "eflags", "cs", "ds", "es", "fs", "gs", "ss".
func (c Context) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	field := func(name, val string) {
		if b.Len() > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: %q", name, val)
	}
	for r := unwindinfo.Register(0); r < 16; r++ {
		field(r.String(), fmt.Sprintf("%#x", c.Reg(r)))
	}
	field("rip", fmt.Sprintf("%#x", c.Rip))
	for i := range c.Xmm {
		field(fmt.Sprintf("xmm%d", i), xmmHex(c.Xmm[i]))
	}
	for _, o := range c.others() {
		if *o.p32 != 0 {
			field(o.name, fmt.Sprintf("%#x", *o.p32))
		} else if o.p16 != nil && *o.p16 != 0 {
			field(o.name, fmt.Sprintf("%#x", *o.p16))
		}
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

type otherField struct {
	name string
	p32  *uint32
	p16  *uint16
}

func (c *Context) others() []otherField {
	var zero uint32
	return []otherField{
		{"context_flags", &c.ContextFlags, nil}, {"mxcsr", &c.MxCsr, nil}, {"eflags", &c.EFlags, nil},
		{"cs", &zero, &c.SegCs}, {"ds", &zero, &c.SegDs}, {"es", &zero, &c.SegEs},
		{"fs", &zero, &c.SegFs}, {"gs", &zero, &c.SegGs}, {"ss", &zero, &c.SegSs},
	}
}

func xmmHex(v [16]byte) string {
	var r [16]byte
	for i := range v {
		r[15-i] = v[i]
	}
	return hex.EncodeToString(r[:])
}

// UnmarshalJSON decodes the form MarshalJSON writes. Registers left out
// are zero; unknown keys are an error. Values may be hex strings ("0x…")
// or JSON numbers; XMM values are up to 32 hex digits, with or without 0x.
func (c *Context) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return errors.New("decode context: want an object of registers")
	}
	*c = Context{}
	others := c.others()
	for k, raw := range m {
		if strings.HasPrefix(k, "xmm") {
			n, err := strconv.Atoi(k[3:])
			if err != nil || n < 0 || n > 15 {
				return fmt.Errorf("decode context: unknown register %q", k)
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("decode context: %s: want a hex string", k)
			}
			s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
			if len(s) > 32 {
				return fmt.Errorf("decode context: %s: more than 128 bits", k)
			}
			b, err := hex.DecodeString(strings.Repeat("0", 32-len(s)) + s)
			if err != nil {
				return fmt.Errorf("decode context: %s: %q is not hex digits", k, s)
			}
			for i := range b {
				c.Xmm[n][15-i] = b[i]
			}
			continue
		}
		v, err := parseJSONUint(raw)
		if err != nil {
			return fmt.Errorf("decode context: %s: %v", k, err)
		}
		if r, ok := unwindinfo.ParseRegister(k); ok {
			c.SetReg(r, v)
			continue
		}
		if k == "rip" {
			c.Rip = v
			continue
		}
		found := false
		for _, o := range others {
			if o.name != k {
				continue
			}
			found = true
			if o.p16 != nil {
				if v > 0xffff {
					return fmt.Errorf("decode context: %s: %#x does not fit 16 bits", k, v)
				}
				*o.p16 = uint16(v)
			} else {
				if v > 0xffffffff {
					return fmt.Errorf("decode context: %s: %#x does not fit 32 bits", k, v)
				}
				*o.p32 = uint32(v)
			}
		}
		if !found {
			return fmt.Errorf("decode context: unknown register %q", k)
		}
	}
	return nil
}

// parseJSONUint accepts "0x…" or decimal strings and JSON numbers.
func parseJSONUint(raw json.RawMessage) (uint64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return 0, fmt.Errorf("want a hex string or a number, got %s", raw)
		}
		s = n.String()
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", s)
	}
	return v, nil
}

// MarshalJSON encodes the restored registers only: {"rbx": "0x…",
// "xmm6": "0x…"} with the stack address each was read from.
func (p ContextPointers) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	field := func(name string, v uint64) {
		if b.Len() > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: \"%#x\"", name, v)
	}
	for r, v := range p.Integer {
		if v != 0 {
			field(unwindinfo.Register(r).String(), v)
		}
	}
	for i, v := range p.Floating {
		if v != 0 {
			field(fmt.Sprintf("xmm%d", i), v)
		}
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}
