package provider

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/fntable/fntable/internal/binread"
	"github.com/fntable/fntable/unwindinfo"
)

// HelperEnv is the environment variable that makes a program the helper
// process of an isolated call: [Resolver] sets it, to the request, when
// it runs [Resolver.Executable], and that program's main calls
// [HelperMain] when [IsHelper] reports it set.
const HelperEnv = "FNTABLE_PROVIDER_HELPER"

// IsHelper reports whether this process was started as the helper of an
// isolated provider call.
func IsHelper() bool { return os.Getenv(HelperEnv) != "" }

// helperRequest is what the parent asks the helper, as JSON in HelperEnv.
type helperRequest struct {
	Library    string   `json:"library"`     // the checked real path
	Pid        int      `json:"pid"`         // Process
	Table      uint64   `json:"table"`       // TableAddress
	TrustFile  string   `json:"trust_file"`  // the parent's TrustOptions, to check again
	TrustExtra []string `json:"trust_extra"` // (the same list)
}

// The helper's answer, on its standard output: the magic, then records,
// each a tag byte and its fields (little-endian):
//
//	'L'                                     the library is loaded and its export found
//	'A' status u32, count u32, null u8,     the call returned: status, *Entries, *Functions == NULL,
//	    n u32, n × RUNTIME_FUNCTION (12)    and the array (n is 0 when it was not copied)
//	'E' kind u8, len u16, message           the helper failed before the call returned
//
// The stream ends after an 'A' or 'E' record. The parent reads it as
// untrusted input, like a provider's answer.
const (
	helperMagic      = "FNTPRV01"
	tagLoaded        = 'L'
	tagAnswer        = 'A'
	tagError         = 'E'
	maxHelperMessage = 1024 // bytes of an 'E' message
	// maxHelperAnswer bounds the bytes the parent reads.
	maxHelperAnswer = len(helperMagic) + 1 + 1 + 14 + MaxEntries*unwindinfo.RuntimeFunctionSize
)

// helperErrorKinds are the error kinds of an 'E' record, by number.
var helperErrorKinds = []error{1: ErrUntrusted, 2: ErrLoad, 3: ErrBadResult, 4: ErrCrashed}

// appendAnswer appends an 'A' record.
func appendAnswer(b []byte, a answer) []byte {
	b = append(b, tagAnswer)
	b = binary.LittleEndian.AppendUint32(b, a.status)
	b = binary.LittleEndian.AppendUint32(b, a.count)
	null := byte(0)
	if a.null {
		null = 1
	}
	b = append(b, null)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(a.entries)))
	for _, e := range a.entries {
		b = binary.LittleEndian.AppendUint32(b, e.BeginAddress)
		b = binary.LittleEndian.AppendUint32(b, e.EndAddress)
		b = binary.LittleEndian.AppendUint32(b, e.UnwindData)
	}
	return b
}

// appendError appends an 'E' record for err.
func appendError(b []byte, err error) []byte {
	kind := byte(4)
	for i, k := range helperErrorKinds {
		if k != nil && errors.Is(err, k) {
			kind = byte(i)
			break
		}
	}
	msg := err.Error()
	if len(msg) > maxHelperMessage {
		msg = msg[:maxHelperMessage]
	}
	b = append(b, tagError, kind)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}

// helperResult is a decoded helper answer.
type helperResult struct {
	loaded bool   // an 'L' record came
	done   bool   // an 'A' or 'E' record came
	answer answer // from 'A'
	err    error  // from 'E'
}

// decodeHelperAnswer decodes what a helper wrote. A stream cut short
// gives what arrived (done false) and no error; err is set when the
// stream is malformed.
func decodeHelperAnswer(b []byte) (helperResult, error) {
	var h helperResult
	if len(b) < len(helperMagic) {
		if !bytes.HasPrefix([]byte(helperMagic), b) {
			return h, errors.New("bad magic")
		}
		return h, nil
	}
	if string(b[:len(helperMagic)]) != helperMagic {
		return h, errors.New("bad magic")
	}
	r := binread.New("helper answer", b, 0)
	r.Skip(len(helperMagic))
	for r.Len() > 0 && !h.done {
		switch tag := r.U8(); tag {
		case tagLoaded:
			h.loaded = true
		case tagAnswer:
			if r.Len() < 13 {
				return h, nil // cut short
			}
			var a answer
			a.status = r.U32()
			a.count = r.U32()
			switch r.U8() {
			case 0:
			case 1:
				a.null = true
			default:
				return h, errors.New("bad null flag")
			}
			n := r.U32()
			if n > MaxEntries || n > a.count {
				return h, fmt.Errorf("%d entries sent for a count of %d", n, a.count)
			}
			size := int(n) * unwindinfo.RuntimeFunctionSize
			if r.Len() < size {
				return h, nil // cut short
			}
			entries, err := decodeEntries(r.Bytes(size))
			if err != nil {
				return h, err
			}
			if n > 0 {
				a.entries = entries
			}
			h.answer, h.done = a, true
		case tagError:
			if r.Len() < 3 {
				return h, nil
			}
			kind, n := int(r.U8()), int(r.U16())
			if kind >= len(helperErrorKinds) || helperErrorKinds[kind] == nil {
				return h, fmt.Errorf("bad error kind %d", kind)
			}
			if n > maxHelperMessage {
				return h, fmt.Errorf("error message of %d bytes", n)
			}
			if r.Len() < n {
				return h, nil
			}
			h.err = errorf(helperErrorKinds[kind], "%s", sanitize(r.Bytes(n)))
			h.done = true
		default:
			return h, fmt.Errorf("bad record tag %#x", tag)
		}
	}
	if r.Err() != nil {
		return h, r.Err()
	}
	if r.Len() > 0 {
		return h, fmt.Errorf("%d bytes after the answer", r.Len())
	}
	return h, nil
}

// sanitize returns b as text, with what is not printable ASCII escaped.
func sanitize(b []byte) string {
	var s []byte
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			s = append(s, c)
		} else {
			s = fmt.Appendf(s, `\x%02x`, c)
		}
	}
	return string(s)
}

// parseHelperRequest reads the request from HelperEnv.
func parseHelperRequest() (helperRequest, error) {
	var req helperRequest
	v := os.Getenv(HelperEnv)
	if err := json.Unmarshal([]byte(v), &req); err != nil {
		return req, fmt.Errorf("%s: %v", HelperEnv, err)
	}
	if req.Library == "" || req.Pid <= 0 {
		return req, fmt.Errorf("%s: no library or pid", HelperEnv)
	}
	return req, nil
}
