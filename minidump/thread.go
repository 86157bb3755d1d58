package minidump

import (
	"encoding/binary"
	"fmt"

	"github.com/fntable/fntable/internal/binread"
)

// MemoryDescriptor is MINIDUMP_MEMORY_DESCRIPTOR: a range of the dumped
// process's memory and where its bytes are in the file.
type MemoryDescriptor struct {
	StartOfMemoryRange uint64   // address of the first byte
	Memory             Location // the bytes in the file; DataSize is the range's size
}

// Thread is MINIDUMP_THREAD (48 bytes), one entry of the ThreadListStream,
// with its context record read from the file.
type Thread struct {
	ThreadId      uint32
	SuspendCount  uint32
	PriorityClass uint32
	Priority      uint32
	Teb           uint64           // address of the thread environment block
	Stack         MemoryDescriptor // the stack from the stack pointer up, as dumped
	ThreadContext Location         // the CONTEXT record in the file

	// Context holds the ThreadContext bytes, undecoded: a Windows CONTEXT
	// of the dump's architecture (see [ContextArch]), possibly followed
	// by an XSTATE tail. It is nil if they could not be read.
	Context []byte
}

const threadSize = 48

// Sizes and flags of CONTEXT records (winnt.h).
const (
	// ContextSizeAMD64 is the size of the x64 CONTEXT. Records with an
	// XSTATE tail (CONTEXT_EX) are longer.
	ContextSizeAMD64 = 1232
	// ContextSizeX86 is the size of the x86 CONTEXT with its 512-byte
	// ExtendedRegisters area; without it the CONTEXT is 204 bytes.
	ContextSizeX86 = 716

	CONTEXT_i386  = 0x00010000 // architecture bit of x86 ContextFlags
	CONTEXT_AMD64 = 0x00100000 // architecture bit of x64 ContextFlags
	CONTEXT_ARM   = 0x00200000
	CONTEXT_ARM64 = 0x00400000

	contextArchMask        = 0x00ff0000 // the architecture bits of ContextFlags
	contextFlagsOffAMD64   = 0x30       // ContextFlags in the x64 CONTEXT
	contextFlagsOffX86     = 0          // ContextFlags in the x86 CONTEXT
	contextSizeX86NoExtReg = 204
)

// ContextArch tells from a context record which architecture's CONTEXT it
// is: PROCESSOR_ARCHITECTURE_AMD64 for a record of at least
// ContextSizeAMD64 bytes whose ContextFlags (at offset 0x30) carry
// CONTEXT_AMD64, PROCESSOR_ARCHITECTURE_INTEL for one of at least 204
// bytes whose ContextFlags (at offset 0) carry CONTEXT_i386, and
// PROCESSOR_ARCHITECTURE_UNKNOWN otherwise. Decode an x64 record with
// unwind.Context.UnmarshalWindows only when this reports AMD64.
func ContextArch(ctx []byte) ProcessorArchitecture {
	if len(ctx) >= ContextSizeAMD64 && binary.LittleEndian.Uint32(ctx[contextFlagsOffAMD64:])&contextArchMask == CONTEXT_AMD64 {
		return PROCESSOR_ARCHITECTURE_AMD64
	}
	if len(ctx) >= contextSizeX86NoExtReg && binary.LittleEndian.Uint32(ctx[contextFlagsOffX86:])&contextArchMask == CONTEXT_i386 {
		return PROCESSOR_ARCHITECTURE_INTEL
	}
	return PROCESSOR_ARCHITECTURE_UNKNOWN
}

// Threads decodes the ThreadListStream and reads each thread's context
// record. It returns nil and no error if the dump has no thread list. A
// context that cannot be read (past the end of the file, or larger than
// MaxRecordSize) leaves that thread's Context nil; the threads are
// returned with the first such error. Of a list cut short (a count larger
// than the stream holds, or a stream that runs past the end of the file),
// the threads before the cut are returned, with the error.
func (f *File) Threads() ([]Thread, error) {
	threads, err := f.threadList()
	if threads == nil {
		return nil, err
	}
	var errs errList
	if err != nil {
		errs.add(err)
	}
	b := f.newBudget()
	for i := range threads {
		if err := b.spent("thread list", i, len(threads)); err != nil {
			errs.add(err)
			break
		}
		t := &threads[i]
		t.Context, err = f.readRecord(t.ThreadContext, b)
		if err != nil {
			errs.add(fmt.Errorf("read context of thread %d (id %#x): %w", i, t.ThreadId, err))
		}
	}
	return threads, errs.err()
}

// threadList decodes the thread list without reading the contexts. Of a
// list cut short it returns the threads it holds in full, with the error.
func (f *File) threadList() ([]Thread, error) {
	r, n, ok, err := f.listEntries(ThreadListStream, "thread list", threadSize)
	if !ok || n == 0 && err != nil {
		return nil, err
	}
	threads := make([]Thread, n)
	for i := range threads {
		t := &threads[i]
		t.ThreadId = r.U32()
		t.SuspendCount = r.U32()
		t.PriorityClass = r.U32()
		t.Priority = r.U32()
		t.Teb = r.U64()
		t.Stack = readMemoryDescriptor(&r)
		t.ThreadContext = readLocation(&r)
	}
	if err == nil {
		err = formatErr(r.Err(), "read thread list") // listCount checked the size
	}
	return threads, err
}

// errList keeps the first of a series of errors and counts the rest, so
// that a stream with many bad entries does not collect an error for each.
type errList struct {
	first error
	n     int
}

func (l *errList) add(err error) {
	if l.first == nil {
		l.first = err
	}
	l.n++
}

// err returns the first error, noting how many more there were.
func (l *errList) err() error {
	if l.n <= 1 {
		return l.first
	}
	return fmt.Errorf("%w (and %d more errors)", l.first, l.n-1)
}

func readLocation(r *binread.Reader) Location {
	return Location{DataSize: r.U32(), Rva: r.U32()}
}

func readMemoryDescriptor(r *binread.Reader) MemoryDescriptor {
	return MemoryDescriptor{StartOfMemoryRange: r.U64(), Memory: readLocation(r)}
}

// ThreadInfo is MINIDUMP_THREAD_INFO, one entry of the
// ThreadInfoListStream. Times are FILETIMEs (100 ns units; CreateTime and
// ExitTime since 1601, KernelTime and UserTime durations).
type ThreadInfo struct {
	ThreadId     uint32
	DumpFlags    uint32 // MINIDUMP_THREAD_INFO_* bits
	DumpError    uint32 // HRESULT of a failure to dump the thread
	ExitStatus   uint32
	CreateTime   uint64
	ExitTime     uint64
	KernelTime   uint64
	UserTime     uint64
	StartAddress uint64
	Affinity     uint64
}

const threadInfoSize = 64

// ThreadInfoList decodes the ThreadInfoListStream: a header {SizeOfHeader,
// SizeOfEntry, NumberOfEntries} and entries of SizeOfEntry bytes, of which
// the first 64 are decoded. It returns nil and no error if the dump has
// none.
func (f *File) ThreadInfoList() ([]ThreadInfo, error) {
	data, rva, ok, err := f.streamData(ThreadInfoListStream)
	if !ok || err != nil {
		return nil, err
	}
	r, n, err := tableHeader(data, rva, "thread info list", 12, threadInfoSize, false)
	if err != nil {
		return nil, err
	}
	list := make([]ThreadInfo, n)
	for i := range list {
		e := r.entry()
		list[i] = ThreadInfo{
			ThreadId: e.U32(), DumpFlags: e.U32(), DumpError: e.U32(), ExitStatus: e.U32(),
			CreateTime: e.U64(), ExitTime: e.U64(), KernelTime: e.U64(), UserTime: e.U64(),
			StartAddress: e.U64(), Affinity: e.U64(),
		}
	}
	return list, nil
}

// ThreadName is MINIDUMP_THREAD_NAME, one entry of the ThreadNamesStream,
// with the name read.
type ThreadName struct {
	ThreadId        uint32
	RvaOfThreadName uint64 // file offset of a MINIDUMP_STRING
	Name            string
}

const threadNameSize = 12 // #pragma pack(4): ThreadId u32, RvaOfThreadName u64

// ThreadNames decodes the ThreadNamesStream (thread descriptions set with
// SetThreadDescription). It returns nil and no error if the dump has none.
// Names that cannot be read are left empty and reported in the error; of
// a list cut short, the entries before the cut are returned with the
// error.
func (f *File) ThreadNames() ([]ThreadName, error) {
	r, n, ok, err := f.listEntries(ThreadNamesStream, "thread names", threadNameSize)
	if !ok || n == 0 && err != nil {
		return nil, err
	}
	names := make([]ThreadName, n)
	var errs errList
	if err != nil {
		errs.add(err)
	}
	b := f.newBudget()
	for i := range names {
		names[i] = ThreadName{ThreadId: r.U32(), RvaOfThreadName: r.U64()}
	}
	for i := range names {
		if err := b.spent("thread names", i, len(names)); err != nil {
			errs.add(err)
			break
		}
		tn := &names[i]
		if tn.Name, err = f.readString(tn.RvaOfThreadName, b); err != nil {
			errs.add(fmt.Errorf("read name of thread %#x: %w", tn.ThreadId, err))
		}
	}
	return names, errs.err()
}
