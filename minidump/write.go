package minidump

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"unicode/utf16"

	"github.com/fntable/fntable/functable/record"
	"github.com/fntable/fntable/internal/filekind"
	"github.com/fntable/fntable/unwindinfo"
)

// Content is what [Write] puts in a minidump of an x64 process. Every
// stream the reader decodes can be read back to the values given here.
type Content struct {
	SystemInfo     WriteSystemInfo      // SystemInfoStream
	Threads        []WriteThread        // ThreadListStream, and ThreadNamesStream for the named ones
	Modules        []WriteModule        // ModuleListStream
	Memory         []MemorySource       // MemoryListStream, or Memory64ListStream with WriteOptions.Full
	FunctionTables []WriteFunctionTable // FunctionTableStream (13), omitted when empty
	Exception      *WriteException      // ExceptionStream, omitted when nil

	// Streams are written as given, after the others: Breakpad's Linux
	// streams (/proc/PID/maps, status, auxv, cmdline, environ,
	// /proc/cpuinfo, /etc/lsb-release) or any other.
	Streams []RawStream

	// ProcessID, when not 0, is written in a MiscInfoStream
	// (MINIDUMP_MISC_INFO with MINIDUMP_MISC1_PROCESS_ID).
	ProcessID uint32
	// TimeDateStamp is the header's time of the dump (time_t, seconds
	// since 1970 UTC); 0 is written as 0.
	TimeDateStamp uint32
}

// WriteSystemInfo is what [Write] puts in MINIDUMP_SYSTEM_INFO. The
// processor architecture is always PROCESSOR_ARCHITECTURE_AMD64;
// ProcessorLevel and ProcessorRevision are derived from
// VersionInformation (family, and model<<8 | stepping), as Breakpad does.
type WriteSystemInfo struct {
	PlatformID                              uint32 // VER_PLATFORM_WIN32_NT (2) for Windows, or Breakpad's MD_OS_LINUX (0x8201)
	MajorVersion, MinorVersion, BuildNumber uint32
	CSDVersion                              string // service pack; Breakpad writes the uname line here on Linux
	NumberOfProcessors                      uint8

	// The X86CpuInfo member of CPU_INFORMATION (optional: zero if unknown).
	VendorID               [12]byte // CPUID 0: EBX, EDX, ECX, e.g. "GenuineIntel"
	VersionInformation     uint32   // CPUID 1: EAX
	FeatureInformation     uint32   // CPUID 1: EDX
	AMDExtendedCpuFeatures uint32   // CPUID 0x80000001: EBX
}

// Platform IDs of MINIDUMP_SYSTEM_INFO that Breakpad writes for systems
// other than Windows (Breakpad minidump_format.h, MDOSPlatform).
const (
	MD_OS_LINUX = 0x8201
)

// WriteThread is a thread for [Write].
type WriteThread struct {
	ID uint32
	// Context is the thread's CONTEXT record as Windows lays it out,
	// written as given: for x64, the 1232 bytes that
	// unwind.Context.MarshalWindows returns.
	Context []byte
	// Stack is the thread's stack memory, usually from the stack pointer
	// up. It is also put in the memory list (once, even if Memory has
	// it too), and the thread's stack descriptor points to those bytes.
	Stack MemorySource
	Name  string // "" for none
}

// WriteModule is a module for [Write].
type WriteModule struct {
	Base, Size              uint64 // Size must fit in 32 bits (SizeOfImage)
	Name                    string // full path
	TimeDateStamp, CheckSum uint32
	// CodeView is the raw CodeView record, or nil: RSDS for a PE image;
	// [ELFCodeView] gives Breakpad's form for an ELF build ID.
	CodeView []byte
}

// MemorySource is a range of the target's memory for [Write], read when
// Write reaches it.
type MemorySource struct {
	Addr, Size uint64
	// Read reads target memory at addr into p, with memory.Reader
	// semantics: fewer than len(p) bytes come with an error. Write calls
	// it on its own goroutine, for pieces of at most 1 MiB, and fails if
	// it cannot read the whole range.
	Read func(p []byte, addr uint64) (int, error)
	// Bytes, if set, returns bytes of target memory that hold addr, and
	// their address, as unwind.ByteSource does (an empty slice when addr
	// cannot be read); Write writes what it needs of them without a copy
	// of its own, and Read is not used. A page cache of the target gives
	// its pages this way.
	Bytes func(addr uint64) (start uint64, b []byte)
	// Data, if not nil, holds the range's Size bytes, already read; Write
	// writes them as they are, without a copy, and Bytes and Read are
	// not used.
	Data []byte
}

// WriteFunctionTable is a dynamic function table for [Write]'s
// FunctionTableStream.
type WriteFunctionTable struct {
	// Table is the native record, written in the Windows 7 layout
	// (record.DynamicFunctionTableSizeWin7 bytes) as given; the
	// stream's descriptor takes MinimumAddress, MaximumAddress and
	// BaseAddress from it.
	Table record.DynamicFunctionTable
	// Entries are the table's entries; for a callback table, the entries
	// its provider gave. The descriptor's EntryCount is len(Entries).
	Entries []unwindinfo.RuntimeFunction
}

// WriteException is what [Write] puts in the ExceptionStream.
type WriteException struct {
	ThreadID   uint32
	Code       uint32   // NTSTATUS, or a signal number for Breakpad's Linux dumps
	Flags      uint32   // EXCEPTION_NONCONTINUABLE ...
	Address    uint64   // where it happened
	Parameters []uint64 // at most EXCEPTION_MAXIMUM_PARAMETERS (15)
	Context    []byte   // the CONTEXT record at the exception, as for WriteThread
}

// RawStream is a stream [Write] copies as given.
type RawStream struct {
	Type StreamType
	Data []byte
}

// WriteOptions configures [Write]. The zero value works.
type WriteOptions struct {
	// Full writes the memory as a Memory64ListStream, whose bytes are one
	// contiguous run at the end of the file and whose sizes and offsets
	// are 64-bit (for large captures), instead of a MemoryListStream.
	Full bool
	// Progress, if not nil, is called on the goroutine that calls Write
	// as bytes reach the io.Writer: at least once per MiB and once at
	// the end, with written == total. total is the file's final size,
	// known before the first byte is written. It must not call Write.
	Progress func(written, total int64)
}

// MINIDUMP_TYPE flags that [Write] sets in the header (minidumpapiset.h).
const (
	MiniDumpNormal         = 0x0
	MiniDumpWithFullMemory = 0x2
)

// Sizes of what the writer lays out (minidumpapiset.h, #pragma pack(4)).
const (
	moduleNameAlign    = 4
	exceptionSize      = 168 // MINIDUMP_EXCEPTION_STREAM
	miscInfoWriteSize  = MiscInfoSize
	functionEntrySize  = unwindinfo.RuntimeFunctionSize
	writeNativeSize    = record.DynamicFunctionTableSizeWin7
	writeChunk         = 1 << 20 // bytes of target memory read at a time
	progressEvery      = 1 << 20 // Progress is called at least this often
	writeBufferSize    = 64 << 10
	maxLocation32      = math.MaxUint32
	memory64HeaderSize = 16 // MINIDUMP_MEMORY64_LIST: NumberOfMemoryRanges, BaseRva
)

// ELFCodeView returns Breakpad's CodeView record for an ELF module: the
// signature MD_CVINFOELF_SIGNATURE (0x4270454c, "BpEL" read as a big-endian
// constant: the bytes "LEpB" in the file) and then the build
// ID bytes, as Breakpad's Linux writer stores it.
func ELFCodeView(buildID []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, CV_SIGNATURE_ELF)
	return append(b, buildID...)
}

// ELFBuildID returns the build ID of Breakpad's CodeView record for ELF
// (what [ELFCodeView] writes), or nil when cv is not one. Records whose
// signature bytes spell "BpEL" (the constant written big-endian, as some
// writers do) are read as well.
func ELFBuildID(cv []byte) []byte {
	if len(cv) <= 4 {
		return nil
	}
	switch binary.LittleEndian.Uint32(cv) {
	case CV_SIGNATURE_ELF, bits.ReverseBytes32(CV_SIGNATURE_ELF):
		return bytes.Clone(cv[4:])
	}
	return nil
}

// CV_SIGNATURE_ELF is the signature of Breakpad's CodeView record for ELF
// modules, MD_CVINFOELF_SIGNATURE of minidump_format.h (its comment calls
// it 'BpEL'; written little-endian it is the bytes "LEpB", which is what
// Breakpad, rust-minidump and lldb read); the build ID follows it.
const CV_SIGNATURE_ELF = 0x4270454c

// region is a run of target memory the file holds: the union of
// overlapping sources.
type region struct {
	addr, size uint64
	srcs       []MemorySource // sorted by Addr; together they cover the region
	rva        uint64         // file offset of its first byte
	stack      bool           // holds a thread stack
}

// layout is a planned file: every byte before the memory, and where each
// region goes.
type layout struct {
	meta    []byte // header, directory, streams and records
	regions []region
	total   int64
}

// Write writes c as a minidump to w and returns the number of bytes
// written. It plans the whole file first (so the size is known before
// the first byte), then writes it front to back, reading each memory
// source when it gets there. Overlapping memory ranges (a thread's stack
// that Memory lists too) are merged and written once. A memory source
// that cannot be read fails Write with an error naming the range; a
// content that cannot be expressed (a module larger than 4 GiB, more
// than 15 exception parameters, memory beyond the 4 GiB that a
// MemoryListStream can address without Full) fails it before anything
// is written.
//
// The layout: MINIDUMP_HEADER, the stream directory, the streams and the
// records they point to (names as MINIDUMP_STRING, CodeView records,
// 1232-byte CONTEXTs), each 8-byte aligned, then the memory: with Full,
// the Memory64List's one contiguous run; otherwise each range 8-byte
// aligned. The FunctionTableStream is laid out as Windows writes it (see
// [File.FunctionTables]), with native tables in the Windows 7 layout
// (SizeOfNativeDescriptor 0x58) and each table padded to 8 bytes.
func Write(w io.Writer, c *Content, opts WriteOptions) (int64, error) {
	l, err := plan(c, opts)
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: w, total: l.total, progress: opts.Progress, next: progressEvery}
	bw := bufio.NewWriterSize(cw, writeBufferSize)
	if _, err := bw.Write(l.meta); err != nil {
		return cw.n, fmt.Errorf("write minidump: %w", err)
	}
	off := uint64(len(l.meta))
	var buf []byte // for the sources that are read, made when first needed
	for i := range l.regions {
		r := &l.regions[i]
		if pad := r.rva - off; pad > 0 {
			if _, err := bw.Write(make([]byte, pad)); err != nil {
				return cw.n, fmt.Errorf("write minidump: %w", err)
			}
		}
		if buf == nil && r.reads() {
			buf = make([]byte, min(writeChunk, maxReadRegion(l.regions)))
		}
		if err := writeRegion(bw, r, buf); err != nil {
			return cw.n, err
		}
		off = r.rva + r.size
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write minidump: %w", err)
	}
	if cw.n != l.total {
		panic(fmt.Sprintf("minidump: wrote %d bytes of a %d-byte plan", cw.n, l.total))
	}
	if cw.progress != nil && cw.reported != cw.n {
		cw.progress(cw.n, cw.total)
	}
	return cw.n, nil
}

// reads reports whether a source of r is read (has neither Data nor
// Bytes).
func (r *region) reads() bool {
	return slices.ContainsFunc(r.srcs, func(s MemorySource) bool { return s.Data == nil && s.Bytes == nil })
}

// maxReadRegion returns the size of the largest region with a source
// that is read.
func maxReadRegion(rs []region) uint64 {
	var m uint64
	for i := range rs {
		if rs[i].reads() {
			m = max(m, rs[i].size)
		}
	}
	return m
}

// writeRegion reads region r from its sources and writes it.
func writeRegion(w io.Writer, r *region, buf []byte) error {
	at := r.addr
	end := r.addr + r.size
	for _, s := range r.srcs {
		send := s.Addr + s.Size
		if s.Data != nil && at < send && at < end {
			if at < s.Addr {
				panic("minidump: memory sources do not cover their region")
			}
			if _, err := w.Write(s.Data[at-s.Addr : min(send, end)-s.Addr]); err != nil {
				return fmt.Errorf("write minidump: %w", err)
			}
			at = min(send, end)
			continue
		}
		if s.Data == nil && s.Bytes != nil {
			for at < send && at < end {
				if at < s.Addr {
					panic("minidump: memory sources do not cover their region")
				}
				start, b := s.Bytes(at)
				if at < start || at-start >= uint64(len(b)) {
					return fmt.Errorf("write minidump: read memory range %#x-%#x: no bytes at %#x: %w", s.Addr, send, at, ErrShortRead)
				}
				b = b[at-start:]
				b = b[:min(uint64(len(b)), min(send, end)-at)]
				if _, err := w.Write(b); err != nil {
					return fmt.Errorf("write minidump: %w", err)
				}
				at += uint64(len(b))
			}
			continue
		}
		for at < send && at < end {
			if at < s.Addr {
				panic("minidump: memory sources do not cover their region")
			}
			n := min(uint64(len(buf)), send-at)
			p := buf[:n]
			got, err := s.Read(p, at)
			if got > len(p) || got < 0 {
				got = 0
			}
			if got < len(p) {
				if err == nil {
					err = ErrShortRead
				}
				return fmt.Errorf("write minidump: read memory range %#x-%#x: %d bytes at %#x: %w", s.Addr, send, len(p), at+uint64(got), err)
			}
			if _, err := w.Write(p); err != nil {
				return fmt.Errorf("write minidump: %w", err)
			}
			at += n
		}
	}
	return nil
}

// countWriter counts what reaches w and reports progress.
type countWriter struct {
	w        io.Writer
	n, total int64
	next     int64 // report when n reaches it
	reported int64
	progress func(written, total int64)
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.progress == nil {
		n, err := c.w.Write(p)
		c.n += int64(n)
		return n, err
	}
	done := 0
	for done < len(p) {
		// Stop at each MiB boundary, to report it.
		k := min(int64(len(p)-done), c.next-c.n)
		n, err := c.w.Write(p[done : done+int(k)])
		done += n
		c.n += int64(n)
		if c.n >= c.next {
			c.reported = c.n
			c.progress(c.n, c.total)
			c.next += progressEvery
		}
		if err != nil {
			return done, err
		}
		if int64(n) < k {
			return done, io.ErrShortWrite
		}
	}
	return done, nil
}

// plan lays out the file.
func plan(c *Content, opts WriteOptions) (*layout, error) {
	regions, err := memoryRegions(c)
	if err != nil {
		return nil, err
	}
	if opts.Full {
		// The thread list's stack locations are 32-bit offsets: the
		// regions holding stacks go first in the run, the others after,
		// each group by address.
		slices.SortStableFunc(regions, func(a, b region) int {
			if a.stack != b.stack {
				if a.stack {
					return -1
				}
				return 1
			}
			return cmp.Compare(a.addr, b.addr)
		})
	}

	b := &builder{b: make([]byte, 0, plannedSize(c, len(regions)))}
	var dir []Directory
	nstreams := 4 // SystemInfo, ThreadList, ModuleList, Memory(64)List
	named := 0
	for _, t := range c.Threads {
		if t.Name != "" {
			named++
		}
	}
	if named > 0 {
		nstreams++
	}
	if len(c.FunctionTables) > 0 {
		nstreams++
	}
	if c.Exception != nil {
		nstreams++
	}
	if c.ProcessID != 0 {
		nstreams++
	}
	nstreams += len(c.Streams)

	flags := uint64(MiniDumpNormal)
	if opts.Full {
		flags |= MiniDumpWithFullMemory
	}
	b.u32(MINIDUMP_SIGNATURE, MINIDUMP_VERSION, uint32(nstreams), headerSize, 0, c.TimeDateStamp)
	b.u64(flags)
	b.pad(directorySize * nstreams)

	// SystemInfoStream.
	si := &c.SystemInfo
	b.align()
	at := b.off()
	family := (si.VersionInformation >> 8) & 0xf
	model := (si.VersionInformation >> 4) & 0xf
	if family == 0xf {
		family += (si.VersionInformation >> 20) & 0xff
	}
	if family == 6 || family >= 0xf {
		model |= ((si.VersionInformation >> 16) & 0xf) << 4
	}
	b.u16(uint16(PROCESSOR_ARCHITECTURE_AMD64), uint16(family), uint16(model<<8|si.VersionInformation&0xf))
	b.u8(si.NumberOfProcessors, 0)
	b.u32(si.MajorVersion, si.MinorVersion, si.BuildNumber, si.PlatformID)
	csd := b.off()
	b.u32(0)
	b.u16(0, 0)
	b.bytes(si.VendorID[:])
	b.u32(si.VersionInformation, si.FeatureInformation, si.AMDExtendedCpuFeatures)
	dir = append(dir, b.dirEntry(SystemInfoStream, at))
	b.put32(csd, b.str(si.CSDVersion))

	// MiscInfoStream.
	if c.ProcessID != 0 {
		b.align()
		at := b.off()
		b.u32(miscInfoWriteSize, MINIDUMP_MISC1_PROCESS_ID, c.ProcessID, 0, 0, 0)
		dir = append(dir, b.dirEntry(MiscInfoStream, at))
	}

	// ThreadListStream; the stack locations are patched once the memory
	// is placed.
	b.align()
	at = b.off()
	b.u32(uint32(len(c.Threads)))
	stackPos := make([]int, len(c.Threads))
	ctxPos := make([]int, len(c.Threads))
	for i, t := range c.Threads {
		b.u32(t.ID, 0, 0, 0)
		b.u64(0) // Teb
		stackPos[i] = b.off()
		b.u64(t.Stack.Addr)
		b.u32(0, 0)
		ctxPos[i] = b.off()
		b.u32(uint32(len(t.Context)), 0)
	}
	dir = append(dir, b.dirEntry(ThreadListStream, at))
	for i := range c.Threads {
		b.put32(ctxPos[i]+4, b.context(c.Threads[i].Context))
	}

	// ThreadNamesStream.
	if named > 0 {
		b.align()
		at := b.off()
		b.u32(uint32(named))
		var namePos []int
		for _, t := range c.Threads {
			if t.Name != "" {
				b.u32(t.ID)
				namePos = append(namePos, b.off())
				b.u64(0)
			}
		}
		dir = append(dir, b.dirEntry(ThreadNamesStream, at))
		k := 0
		for _, t := range c.Threads {
			if t.Name != "" {
				b.put64(namePos[k], uint64(b.str(t.Name)))
				k++
			}
		}
	}

	// ModuleListStream.
	b.align()
	at = b.off()
	b.u32(uint32(len(c.Modules)))
	modPos := make([]int, len(c.Modules))
	for i, m := range c.Modules {
		if m.Size > math.MaxUint32 {
			return nil, fmt.Errorf("write minidump: module %s at %#x: size %#x does not fit in 32 bits", m.Name, m.Base, m.Size)
		}
		b.u64(m.Base)
		b.u32(uint32(m.Size), m.CheckSum, m.TimeDateStamp)
		modPos[i] = b.off()
		b.u32(0)                          // ModuleNameRva
		b.pad(13 * 4)                     // VersionInfo
		b.u32(uint32(len(m.CodeView)), 0) // CvRecord
		b.u32(0, 0)                       // MiscRecord
		b.u64(0, 0)                       // Reserved0, Reserved1
	}
	dir = append(dir, b.dirEntry(ModuleListStream, at))
	for i, m := range c.Modules {
		b.put32(modPos[i], b.str(m.Name))
		if len(m.CodeView) > 0 {
			if len(m.CodeView) > MaxRecordSize {
				return nil, fmt.Errorf("write minidump: module %s: CodeView record of %d bytes, more than %d", m.Name, len(m.CodeView), MaxRecordSize)
			}
			b.align()
			b.put32(modPos[i]+4+13*4+4, uint32(b.off()))
			b.bytes(m.CodeView)
		}
	}

	// ExceptionStream.
	if e := c.Exception; e != nil {
		if len(e.Parameters) > EXCEPTION_MAXIMUM_PARAMETERS {
			return nil, fmt.Errorf("write minidump: exception with %d parameters, more than %d", len(e.Parameters), EXCEPTION_MAXIMUM_PARAMETERS)
		}
		b.align()
		at := b.off()
		b.u32(e.ThreadID, 0, e.Code, e.Flags)
		b.u64(0, e.Address)
		b.u32(uint32(len(e.Parameters)), 0)
		var params [EXCEPTION_MAXIMUM_PARAMETERS]uint64
		copy(params[:], e.Parameters)
		b.u64(params[:]...)
		ctx := b.off()
		b.u32(uint32(len(e.Context)), 0)
		dir = append(dir, b.dirEntry(ExceptionStream, at))
		b.put32(ctx+4, b.context(e.Context))
	}

	// FunctionTableStream.
	if len(c.FunctionTables) > 0 {
		b.align()
		at := b.off()
		b.u32(functionTableStreamSize, functionTableDescriptorSize, writeNativeSize, functionEntrySize, uint32(len(c.FunctionTables)), 0)
		for _, ft := range c.FunctionTables {
			n := len(ft.Entries)
			if n > math.MaxUint32/functionEntrySize {
				return nil, fmt.Errorf("write minidump: function table at %#x: %d entries", ft.Table.MinimumAddress, n)
			}
			pad := (8 - (writeNativeSize+functionTableDescriptorSize+n*functionEntrySize)%8) % 8
			t := &ft.Table
			b.u64(t.MinimumAddress, t.MaximumAddress, t.BaseAddress)
			b.u32(uint32(n), uint32(pad))
			b.b = t.AppendWin7(b.b)
			for _, e := range ft.Entries {
				b.u32(e.BeginAddress, e.EndAddress, e.UnwindData)
			}
			b.pad(pad)
		}
		dir = append(dir, b.dirEntry(FunctionTableStream, at))
	}

	// Other streams, as given.
	for _, s := range c.Streams {
		if uint64(len(s.Data)) > maxLocation32 {
			return nil, fmt.Errorf("write minidump: stream %v of %d bytes", s.Type, len(s.Data))
		}
		b.align()
		at := b.off()
		b.bytes(s.Data)
		dir = append(dir, b.dirEntry(s.Type, at))
	}

	// The memory list, and then the memory.
	b.align()
	at = b.off()
	var memPos int
	if opts.Full {
		b.u64(uint64(len(regions)))
		memPos = b.off()
		b.u64(0) // BaseRva
		for _, r := range regions {
			b.u64(r.addr, r.size)
		}
		dir = append(dir, b.dirEntry(Memory64ListStream, at))
	} else {
		b.u32(uint32(len(regions)))
		memPos = b.off()
		for _, r := range regions {
			b.u64(r.addr)
			b.u32(uint32(r.size), 0)
		}
		dir = append(dir, b.dirEntry(MemoryListStream, at))
	}
	b.align()
	off := uint64(b.off())
	for i := range regions {
		r := &regions[i]
		if !opts.Full {
			off = (off + 7) &^ 7
		}
		r.rva = off
		off += r.size
		if !opts.Full {
			if r.size > maxLocation32 || r.rva > maxLocation32 {
				return nil, fmt.Errorf("write minidump: memory range %#x-%#x at file offset %#x: beyond the 4 GiB a memory list addresses (write with Full)", r.addr, r.addr+r.size, r.rva)
			}
			b.put32(memPos+i*memoryDescriptorSize+8+4, uint32(r.rva))
		}
	}
	if off > math.MaxInt64 {
		return nil, fmt.Errorf("write minidump: %#x bytes", off)
	}
	if opts.Full && len(regions) > 0 {
		b.put64(memPos, regions[0].rva)
	} else if opts.Full {
		b.put64(memPos, uint64(len(b.b)))
	}
	for i, t := range c.Threads {
		if t.Stack.Size == 0 {
			continue
		}
		r := findRegion(regions, t.Stack.Addr)
		rva := r.rva + (t.Stack.Addr - r.addr)
		if t.Stack.Size > maxLocation32 || rva > maxLocation32 {
			return nil, fmt.Errorf("write minidump: stack of thread %d at %#x: %#x bytes at file offset %#x: beyond 4 GiB", t.ID, t.Stack.Addr, t.Stack.Size, rva)
		}
		b.put32(stackPos[i]+8, uint32(t.Stack.Size), uint32(rva))
	}

	// The directory.
	if len(dir) != nstreams {
		panic(fmt.Sprintf("minidump: %d streams planned, %d laid out", nstreams, len(dir)))
	}
	for i, d := range dir {
		b.put32(headerSize+i*directorySize, uint32(d.StreamType), d.Location.DataSize, d.Location.Rva)
	}
	if uint64(len(b.b)) > maxLocation32 {
		return nil, fmt.Errorf("write minidump: %d bytes of streams and records, more than 4 GiB", len(b.b))
	}
	return &layout{meta: b.b, regions: regions, total: int64(off)}, nil
}

// findRegion returns the region that holds addr, which one does.
func findRegion(rs []region, addr uint64) *region {
	for i := range rs {
		if addr-rs[i].addr < rs[i].size {
			return &rs[i]
		}
	}
	panic(fmt.Sprintf("minidump: no region holds %#x", addr))
}

// memoryRegions merges the memory sources and thread stacks into
// disjoint regions, sorted by address; adjacent sources stay apart.
func memoryRegions(c *Content) ([]region, error) {
	type src struct {
		MemorySource
		stack bool
	}
	var srcs []src
	add := func(m MemorySource, stack bool, what string) error {
		if m.Size == 0 {
			return nil
		}
		if m.Addr+m.Size < m.Addr {
			return fmt.Errorf("write minidump: %s at %#x: size %#x wraps the address space", what, m.Addr, m.Size)
		}
		switch {
		case m.Data != nil && uint64(len(m.Data)) != m.Size:
			return fmt.Errorf("write minidump: %s %#x-%#x has %d bytes of Data", what, m.Addr, m.Addr+m.Size, len(m.Data))
		case m.Data == nil && m.Bytes == nil && m.Read == nil:
			return fmt.Errorf("write minidump: %s %#x-%#x has no Read", what, m.Addr, m.Addr+m.Size)
		}
		srcs = append(srcs, src{m, stack})
		return nil
	}
	for _, m := range c.Memory {
		if err := add(m, false, "memory range"); err != nil {
			return nil, err
		}
	}
	for _, t := range c.Threads {
		if err := add(t.Stack, true, fmt.Sprintf("stack of thread %d", t.ID)); err != nil {
			return nil, err
		}
	}
	// Where sources overlap, the bytes they share are read from the one
	// that starts first (of two that start at the same address, the one
	// listed first, Memory before the stacks).
	slices.SortStableFunc(srcs, func(a, b src) int { return cmp.Compare(a.Addr, b.Addr) })
	var out []region
	for _, s := range srcs {
		if n := len(out); n > 0 && s.Addr < out[n-1].addr+out[n-1].size {
			r := &out[n-1]
			if end := s.Addr + s.Size; end > r.addr+r.size {
				r.size = end - r.addr
			}
			r.srcs = append(r.srcs, s.MemorySource)
			r.stack = r.stack || s.stack
			continue
		}
		out = append(out, region{addr: s.Addr, size: s.Size, srcs: []MemorySource{s.MemorySource}, stack: s.stack})
	}
	return out, nil
}

// builder appends little-endian structures.
type builder struct{ b []byte }

// plannedSize is about what plan builds for c, with regions memory
// ranges (their descriptors, not their bytes), so that the builder is
// allocated once: growing it by doubling touches twice the memory, a
// page fault for each new page in a new process.
func plannedSize(c *Content, regions int) int {
	n := 4096 + 16*regions // header, directory, system and misc info
	for _, t := range c.Threads {
		n += 48 + ContextSizeAMD64 + 16 + 2*len(t.Name) + 8
	}
	for _, m := range c.Modules {
		n += 108 + len(m.CodeView) + 2*len(m.Name) + 16
	}
	for _, t := range c.FunctionTables {
		n += 64 + record.DynamicFunctionTableSizeWin7 + 12*len(t.Entries)
	}
	for _, s := range c.Streams {
		n += len(s.Data) + 8
	}
	return n
}

func (b *builder) off() int { return len(b.b) }

// align pads to a multiple of 8 bytes.
func (b *builder) align() { b.pad((8 - len(b.b)%8) % 8) }

func (b *builder) pad(n int) { b.b = append(b.b, make([]byte, n)...) }

func (b *builder) bytes(p []byte) { b.b = append(b.b, p...) }

func (b *builder) u8(v ...uint8) { b.b = append(b.b, v...) }

func (b *builder) u16(v ...uint16) {
	for _, x := range v {
		b.b = binary.LittleEndian.AppendUint16(b.b, x)
	}
}

func (b *builder) u32(v ...uint32) {
	for _, x := range v {
		b.b = binary.LittleEndian.AppendUint32(b.b, x)
	}
}

func (b *builder) u64(v ...uint64) {
	for _, x := range v {
		b.b = binary.LittleEndian.AppendUint64(b.b, x)
	}
}

// put32 writes v at off and after.
func (b *builder) put32(off int, v ...uint32) {
	for i, x := range v {
		binary.LittleEndian.PutUint32(b.b[off+4*i:], x)
	}
}

func (b *builder) put64(off int, v uint64) { binary.LittleEndian.PutUint64(b.b[off:], v) }

// dirEntry returns the directory entry of the stream from at to here.
func (b *builder) dirEntry(t StreamType, at int) Directory {
	return Directory{StreamType: t, Location: Location{DataSize: uint32(len(b.b) - at), Rva: uint32(at)}}
}

// str appends s as a MINIDUMP_STRING (UTF-16LE, length in bytes without
// the terminating NUL, which follows) and returns its offset.
func (b *builder) str(s string) uint32 {
	b.pad((moduleNameAlign - len(b.b)%moduleNameAlign) % moduleNameAlign)
	at := len(b.b)
	u := utf16.Encode([]rune(s))
	b.u32(uint32(2 * len(u)))
	b.u16(u...)
	b.u16(0)
	return uint32(at)
}

// context appends ctx as a Windows x64 CONTEXT, 16-byte aligned as in
// memory, and returns its offset.
func (b *builder) context(ctx []byte) uint32 {
	b.pad((16 - len(b.b)%16) % 16)
	at := len(b.b)
	b.b = append(b.b, ctx...)
	return uint32(at)
}

// WriteFile writes c as a minidump to the file name, atomically: it
// writes a temporary file in the same directory, syncs it and renames it
// to name. The file is readable by its owner only (mode 0600), since a
// dump holds the process's memory. On any error there is no new file
// under name (an existing one is left as it was) and no temporary file.
//
// On Linux the temporary file has no name until it is complete: it is
// opened with O_TMPFILE, then linked as name, or, to replace an existing
// file, linked under a temporary name and renamed to name. A writer that
// is killed, even by SIGKILL, leaves nothing behind either (unless it dies
// between that link and the rename). Where the file system or a missing
// /proc cannot do that, the temporary file is a hidden file
// (".NAME.tmp…") removed on error.
func WriteFile(name string, c *Content, opts WriteOptions) error {
	w, err := CreateFile(name)
	if err != nil {
		return err
	}
	return w.Write(c, opts)
}

// A FileWriter writes one minidump to a file, as [WriteFile] does, in two
// steps: [CreateFile] checks the destination and creates the temporary
// file, so that a program finds a destination it cannot write before it
// gathers the contents (a capture stops a process for them); Write
// writes them and gives the file its name. Call Write or Discard once.
type FileWriter struct {
	name, dir string
	f         *tempFile
}

// CreateFile prepares the writing of a minidump to the file name. It
// fails when the directory cannot be written, and when name exists and is
// not a regular file (a directory, a device, a named pipe, a symbolic
// link): a dump replaces a regular file only. Its errors name name, not
// the temporary file.
func CreateFile(name string) (*FileWriter, error) {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return nil, fmt.Errorf("write minidump %s: %w", name, errNoFileName)
	}
	if fi, err := os.Lstat(name); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("write minidump %s: it is %s, not a regular file: a dump replaces a regular file only", name, filekind.Of(fi.Mode()))
	}
	f, err := createTemp(dir, base)
	if err != nil {
		return nil, destError(name, err)
	}
	return &FileWriter{name: name, dir: dir, f: f}, nil
}

var errNoFileName = errors.New("no file name")

// Write writes c to the file, syncs it and gives it its name, replacing a
// regular file of that name atomically. On error there is no new file
// under the name and no temporary file.
func (w *FileWriter) Write(c *Content, opts WriteOptions) (err error) {
	f := w.f
	w.f = nil
	if f == nil {
		return fmt.Errorf("write minidump %s: written or discarded already", w.name)
	}
	defer func() {
		if err != nil {
			f.discard()
		}
	}()
	if _, err := Write(f, c, opts); err != nil {
		return destError(w.name, err)
	}
	if err := f.Sync(); err != nil {
		return destError(w.name, err)
	}
	if err := f.publish(w.name); err != nil {
		return destError(w.name, err)
	}
	// Make the rename durable where directories can be synced.
	if d, err := os.Open(w.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Discard abandons the file: nothing is left of it. It does nothing after
// Write.
func (w *FileWriter) Discard() {
	if w.f != nil {
		w.f.discard()
		w.f = nil
	}
}

// destError reports err, met while writing the dump name, under name: the
// temporary file's own name, which the error would give, never exists for
// the user.
func destError(name string, err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &le):
		err = le.Err
	}
	if dir := filepath.Dir(name); errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			return fmt.Errorf("write minidump %s: no such directory %s", name, dir)
		}
	}
	return fmt.Errorf("write minidump %s: %w", name, err)
}
