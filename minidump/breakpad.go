package minidump

import "github.com/fntable/fntable/internal/binread"

// Validity bits of MDRawBreakpadInfo (Breakpad minidump_format.h).
const (
	MD_BREAKPAD_INFO_VALID_DUMP_THREAD_ID       = 1 << 0
	MD_BREAKPAD_INFO_VALID_REQUESTING_THREAD_ID = 1 << 1
)

// BreakpadInfo is MDRawBreakpadInfo, the BreakpadInfoStream (12 bytes):
// which thread wrote the dump, to be left out of stack walks, and which
// thread asked for it, the crashing one when there is no exception
// stream.
type BreakpadInfo struct {
	Validity           uint32 // MD_BREAKPAD_INFO_VALID_* bits: which of the ids are set
	DumpThreadId       uint32 // the thread that wrote the dump
	RequestingThreadId uint32 // the thread that requested it
}

// BreakpadInfo decodes the BreakpadInfoStream. It returns nil and no error
// if the dump has none.
func (f *File) BreakpadInfo() (*BreakpadInfo, error) {
	data, rva, ok, err := f.streamData(BreakpadInfoStream)
	if !ok || err != nil {
		return nil, err
	}
	r := binread.New("breakpad info", data, int64(rva))
	b := &BreakpadInfo{Validity: r.U32(), DumpThreadId: r.U32(), RequestingThreadId: r.U32()}
	if err := r.Err(); err != nil {
		return nil, formatErr(err, "read breakpad info")
	}
	return b, nil
}
