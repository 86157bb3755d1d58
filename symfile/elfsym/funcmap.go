package elfsym

import (
	"debug/elf"
	"os"
	"sort"

	"github.com/fntable/fntable/symfile"
)

// FunctionMap is the map from addresses to function names that
// llvm-symbolizer 14 builds from an ELF file's symbol table and uses to
// name the outermost frame of an address that has DWARF (LLVM's
// SymbolizableObjectFile: create, addSymbol, getNameFromSymbolTable). It
// is built from the file's own symbol table, which for an image with a
// separate debug file is the image's, not the debug file's:
//
//   - the symbols are those of .symtab, or of .dynsym when .symtab is
//     absent or empty (llvm::object::computeSymbolSizes);
//   - a symbol counts when it is defined in a section (not undefined,
//     absolute or common) and is STT_FUNC, STT_GNU_IFUNC or STT_NOTYPE
//     (STT_OBJECT goes to LLVM's data map, which code lookups do not
//     use); names are kept as the table stores them (a .symtab name keeps
//     an ELF version spelt into it, as LLVM prints it);
//   - the symbols are sorted by address, then size, keeping the table's
//     order among equal ones, and of the symbols at one address the last
//     is kept: the largest, and among equal sizes the last in the table
//     (msgsnd, not __libc_msgsnd; glob, not glob64, where .dynsym lists
//     glob64 first). The order among equal symbols is not in LLVM's
//     source (its comparator looks at address and size only); it was
//     measured: on the 514 addresses of libc 2.36's .dynsym with several
//     functions of one size, llvm-symbolizer 14 names every one after the
//     last of them in the table.
//
// A FunctionMap is safe for concurrent use.
type FunctionMap struct {
	syms []symfile.Symbol // one per address, sorted by Addr
}

// FunctionMap returns the file's function map, built on first use.
func (f *File) FunctionMap() *FunctionMap {
	f.fmOnce.Do(func() {
		f.fm = newFunctionMap(f.f, f.file)
	})
	return f.fm
}

// Lookup returns the symbol that names addr (getNameFromSymbolTable): the
// last symbol starting at or before addr, unless it has a size and ends
// at or before addr. A symbol without a size covers every address up to
// the next one, and the last one every address after it.
func (m *FunctionMap) Lookup(addr uint64) (symfile.Symbol, bool) {
	if m == nil {
		return symfile.Symbol{}, false
	}
	i := sort.Search(len(m.syms), func(i int) bool { return m.syms[i].Addr > addr })
	if i == 0 {
		return symfile.Symbol{}, false
	}
	s := m.syms[i-1]
	if s.Size != 0 && s.Addr+s.Size <= addr {
		return symfile.Symbol{}, false
	}
	return s, true
}

// Len returns the number of addresses the map names.
func (m *FunctionMap) Len() int {
	if m == nil {
		return 0
	}
	return len(m.syms)
}

// newFunctionMap builds the map of ef, whose entries are mapped from file
// when it is not nil, as Symbols maps them (no heap copy of the table:
// 73 KB for libc's .dynsym); an unreadable symbol table, or a file
// truncated while its mapped entries are decoded, gives an empty map.
func newFunctionMap(ef *elf.File, file *os.File) (m *FunctionMap) {
	m = &FunctionMap{}
	defer func() {
		if recover() != nil {
			m = &FunctionMap{}
		}
	}()
	tab, _ := symbolTable(ef, file)
	defer tab.release()
	fs := make([]symfile.Symbol, 0, tab.len())
	tab.each(func(s rawSym) {
		if s.Section == elf.SHN_UNDEF || s.Section >= elf.SHN_LORESERVE || int(s.Section) >= len(ef.Sections) {
			return
		}
		switch elf.ST_TYPE(s.Info) {
		case elf.STT_FUNC, elf.STT_GNU_IFUNC, elf.STT_NOTYPE:
			fs = append(fs, symfile.Symbol{Name: s.Name, Addr: s.Value, Size: s.Size, Kind: symfile.KindFunction})
		}
	})
	symfile.SortByAddr(fs, false)
	// Keep the last symbol of each address.
	j := 0
	for i := range fs {
		if i+1 < len(fs) && fs[i+1].Addr == fs[i].Addr {
			continue
		}
		fs[j] = fs[i]
		j++
	}
	m.syms = fs[:j:j]
	return m
}
