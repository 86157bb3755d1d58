package minidump

import (
	"fmt"

	"github.com/fntable/fntable/internal/binread"
)

// EXCEPTION_MAXIMUM_PARAMETERS is the size of
// MINIDUMP_EXCEPTION.ExceptionInformation.
const EXCEPTION_MAXIMUM_PARAMETERS = 15

// ExceptionRecord is MINIDUMP_EXCEPTION (152 bytes), the 64-bit form of
// EXCEPTION_RECORD.
type ExceptionRecord struct {
	ExceptionCode        uint32 // NTSTATUS, e.g. 0xc0000005 (access violation)
	ExceptionFlags       uint32 // EXCEPTION_NONCONTINUABLE 1, ...
	ExceptionRecord      uint64 // address of a chained EXCEPTION_RECORD in the process, or 0
	ExceptionAddress     uint64 // where the exception occurred
	NumberParameters     uint32 // used entries of ExceptionInformation (may exceed 15 in a corrupt dump)
	ExceptionInformation [EXCEPTION_MAXIMUM_PARAMETERS]uint64
}

// Parameters returns the used entries of ExceptionInformation:
// NumberParameters of them, at most 15.
func (e *ExceptionRecord) Parameters() []uint64 {
	return e.ExceptionInformation[:min(e.NumberParameters, EXCEPTION_MAXIMUM_PARAMETERS)]
}

// Exception is MINIDUMP_EXCEPTION_STREAM (168 bytes), with the context
// record of the faulting thread read from the file.
type Exception struct {
	ThreadId        uint32 // the thread that raised the exception
	ExceptionRecord ExceptionRecord
	ThreadContext   Location // the CONTEXT at the exception, which can differ from the thread list's

	// Context holds the ThreadContext bytes, undecoded (see
	// [ContextArch]); nil if they could not be read.
	Context []byte
}

// Exception decodes the ExceptionStream. It returns nil and no error if
// the dump has none. A context that cannot be read leaves Context nil and
// is reported in the error, with the rest decoded.
func (f *File) Exception() (*Exception, error) {
	data, rva, ok, err := f.streamData(ExceptionStream)
	if !ok || err != nil {
		return nil, err
	}
	r := binread.New("exception stream", data, int64(rva))
	e := &Exception{ThreadId: r.U32()}
	r.Skip(4) // __alignment
	x := &e.ExceptionRecord
	x.ExceptionCode = r.U32()
	x.ExceptionFlags = r.U32()
	x.ExceptionRecord = r.U64()
	x.ExceptionAddress = r.U64()
	x.NumberParameters = r.U32()
	r.Skip(4) // __unusedAlignment
	for i := range x.ExceptionInformation {
		x.ExceptionInformation[i] = r.U64()
	}
	e.ThreadContext = readLocation(&r)
	if err := r.Err(); err != nil {
		return nil, formatErr(err, "read exception stream")
	}
	if e.Context, err = f.readRecord(e.ThreadContext, nil); err != nil {
		return e, fmt.Errorf("read exception context: %w", err)
	}
	return e, nil
}
