package minidump

import (
	"fmt"

	"github.com/fntable/fntable/internal/binread"
)

// Memory protection, state and type values of MINIDUMP_MEMORY_INFO
// (winnt.h PAGE_*, MEM_*).
const (
	PAGE_NOACCESS          = 0x01
	PAGE_READONLY          = 0x02
	PAGE_READWRITE         = 0x04
	PAGE_WRITECOPY         = 0x08
	PAGE_EXECUTE           = 0x10
	PAGE_EXECUTE_READ      = 0x20
	PAGE_EXECUTE_READWRITE = 0x40
	PAGE_EXECUTE_WRITECOPY = 0x80
	PAGE_GUARD             = 0x100
	PAGE_NOCACHE           = 0x200
	PAGE_WRITECOMBINE      = 0x400
	PAGE_TARGETS_INVALID   = 0x40000000

	MEM_COMMIT  = 0x1000
	MEM_RESERVE = 0x2000
	MEM_FREE    = 0x10000

	MEM_PRIVATE = 0x20000
	MEM_MAPPED  = 0x40000
	MEM_IMAGE   = 0x1000000
)

// MemoryInfo is MINIDUMP_MEMORY_INFO, one region of the dumped process's
// address space as VirtualQueryEx described it.
type MemoryInfo struct {
	BaseAddress       uint64
	AllocationBase    uint64
	AllocationProtect uint32 // PAGE_* of the allocation
	RegionSize        uint64
	State             uint32 // MEM_COMMIT, MEM_RESERVE or MEM_FREE
	Protect           uint32 // PAGE_* of the region
	Type              uint32 // MEM_PRIVATE, MEM_MAPPED or MEM_IMAGE
}

// Executable reports whether the region is committed and its protection
// allows execution.
func (m *MemoryInfo) Executable() bool {
	return m.State == MEM_COMMIT && m.Protect&(PAGE_EXECUTE|PAGE_EXECUTE_READ|PAGE_EXECUTE_READWRITE|PAGE_EXECUTE_WRITECOPY) != 0
}

const memoryInfoSize = 48

// MemoryInfoList decodes the MemoryInfoListStream: a header {SizeOfHeader,
// SizeOfEntry, NumberOfEntries (64-bit)} and entries of SizeOfEntry bytes,
// of which the first 48 are decoded. It returns nil and no error if the
// dump has none.
func (f *File) MemoryInfoList() ([]MemoryInfo, error) {
	data, rva, ok, err := f.streamData(MemoryInfoListStream)
	if !ok || err != nil {
		return nil, err
	}
	r, n, err := tableHeader(data, rva, "memory info list", 16, memoryInfoSize, true)
	if err != nil {
		return nil, err
	}
	list := make([]MemoryInfo, n)
	for i := range list {
		e := r.entry()
		m := &list[i]
		m.BaseAddress = e.U64()
		m.AllocationBase = e.U64()
		m.AllocationProtect = e.U32()
		e.Skip(4) // __alignment1
		m.RegionSize = e.U64()
		m.State = e.U32()
		m.Protect = e.U32()
		m.Type = e.U32()
	}
	return list, nil
}

// UnloadedModule is MINIDUMP_UNLOADED_MODULE, a module the process had
// unloaded before the dump, with its name read.
type UnloadedModule struct {
	BaseOfImage   uint64
	SizeOfImage   uint32
	CheckSum      uint32
	TimeDateStamp uint32
	ModuleNameRva uint32
	Name          string
}

const unloadedModuleSize = 24

// UnloadedModules decodes the UnloadedModuleListStream: a header
// {SizeOfHeader, SizeOfEntry, NumberOfEntries} and entries of SizeOfEntry
// bytes, of which the first 24 are decoded. It returns nil and no error if
// the dump has none. Names that cannot be read are left empty; the modules
// are returned with the first such error.
func (f *File) UnloadedModules() ([]UnloadedModule, error) {
	data, rva, ok, err := f.streamData(UnloadedModuleListStream)
	if !ok || err != nil {
		return nil, err
	}
	r, n, err := tableHeader(data, rva, "unloaded module list", 12, unloadedModuleSize, false)
	if err != nil {
		return nil, err
	}
	mods := make([]UnloadedModule, n)
	for i := range mods {
		e := r.entry()
		mods[i] = UnloadedModule{BaseOfImage: e.U64(), SizeOfImage: e.U32(), CheckSum: e.U32(), TimeDateStamp: e.U32(), ModuleNameRva: e.U32()}
	}
	var errs errList
	b := f.newBudget()
	for i := range mods {
		if err := b.spent("unloaded module list", i, len(mods)); err != nil {
			errs.add(err)
			break
		}
		if mods[i].Name, err = f.readString(uint64(mods[i].ModuleNameRva), b); err != nil {
			errs.add(fmt.Errorf("read name of unloaded module %d: %w", i, err))
		}
	}
	return mods, errs.err()
}

// tableReader walks the entries of a stream with a {SizeOfHeader,
// SizeOfEntry, NumberOfEntries} header, as the newer list streams have.
type tableReader struct {
	r         binread.Reader
	entrySize int
	rva       int64
}

// entry returns a reader over the next entry.
func (t *tableReader) entry() binread.Reader {
	off := t.rva + int64(t.r.Off())
	return binread.New("entry", t.r.Bytes(t.entrySize), off)
}

// tableHeader reads such a header (NumberOfEntries is 64-bit when wide),
// checks the sizes against the minimum header size hdrMin and entry size
// entryMin and the count against the data, and returns a reader at the
// first entry.
func tableHeader(data []byte, rva uint32, what string, hdrMin, entryMin int, wide bool) (*tableReader, int, error) {
	r := binread.New(what, data, int64(rva))
	hdrSize, entrySize := r.U32(), r.U32()
	var n uint64
	if wide {
		n = r.U64()
	} else {
		n = uint64(r.U32())
	}
	if err := r.Err(); err != nil {
		return nil, 0, formatErr(err, "read "+what)
	}
	if hdrSize < uint32(hdrMin) || hdrSize > uint32(len(data)) || entrySize < uint32(entryMin) || entrySize > MaxRecordSize {
		return nil, 0, &FormatError{Off: int64(rva), Msg: fmt.Sprintf("read %s: header of %d bytes or entries of %d bytes", what, hdrSize, entrySize)}
	}
	if n > uint64(len(data)-int(hdrSize))/uint64(entrySize) {
		return nil, 0, &FormatError{Off: int64(rva), Msg: fmt.Sprintf("read %s: %d entries of %d bytes in %d bytes", what, n, entrySize, len(data)), Val: n, Err: ErrTruncated}
	}
	r.Skip(int(hdrSize) - r.Off())
	return &tableReader{r: r, entrySize: int(entrySize), rva: int64(rva)}, int(n), nil
}
