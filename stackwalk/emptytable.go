package stackwalk

import (
	"fmt"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/unwind"
)

// maxProviderName bounds the UTF-16 units read for the name of a callback
// table's provider library: far more than any path, little enough to read
// at once.
const maxProviderName = 1024

// emptyTable is a callback table of a dump written without entries: its
// provider gave none when the dump was written (it was not trusted, not
// found, or failed), so the dump says which code the table covers but not
// how to unwind it.
type emptyTable struct {
	min, max uint64 // the range the table covers, [min, max)
	id       uint64 // its TableIdentifier
	provider string // the provider library the table names, "" when the dump does not hold the name
}

func (t *emptyTable) String() string {
	s := fmt.Sprintf("in callback table %#x [%#x, %#x), whose entries the dump does not hold", t.id, t.min, t.max)
	if t.provider != "" {
		s += fmt.Sprintf(": its provider %s gave none when the dump was written", t.provider)
	}
	return s
}

// emptyCallbackTables lists the callback tables of a dump's function
// table stream that hold no entries.
func emptyCallbackTables(ft *minidump.FunctionTables, mem unwind.Memory) []emptyTable {
	var out []emptyTable
	for i := range ft.Tables {
		t := &ft.Tables[i]
		if !t.NativeOK || t.NativeTable.Type != functable.RF_CALLBACK || len(t.EntryData) != 0 {
			continue
		}
		d := t.Descriptor
		if d.MaximumAddress <= d.MinimumAddress {
			continue
		}
		out = append(out, emptyTable{
			min: d.MinimumAddress, max: d.MaximumAddress, id: t.NativeTable.FunctionTable,
			provider: readUTF16z(mem, t.NativeTable.OutOfProcessCallbackDll),
		})
	}
	return out
}

// emptyTableAt returns the entry-less callback table of a dump that
// covers pc, or nil.
func (s *Sources) emptyTableAt(pc uint64) *emptyTable {
	for i := range s.empty {
		if t := &s.empty[i]; t.min <= pc && pc < t.max {
			return t
		}
	}
	return nil
}

// readUTF16z reads the NUL-terminated UTF-16LE string at addr, of at most
// maxProviderName units; "" when addr is 0 or no NUL can be read.
func readUTF16z(mem unwind.Memory, addr uint64) string {
	if addr == 0 {
		return ""
	}
	var b [2 * maxProviderName]byte
	n, _ := mem.ReadMemory(b[:], addr)
	if s, ok := minidump.DecodeUTF16Z(b[:max(n, 0)]); ok {
		return s
	}
	return ""
}
