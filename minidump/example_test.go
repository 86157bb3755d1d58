package minidump_test

import (
	"fmt"
	"log"

	"github.com/fntable/fntable/minidump"
)

// A JIT frame: the dump's function tables give the RUNTIME_FUNCTION and
// base for a pc in generated code, and its memory the UNWIND_INFO.
func Example() {
	f, err := minidump.Open("crash.dmp")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	e, err := f.Exception()
	if err != nil || e == nil {
		log.Fatal("no exception: ", err)
	}
	pc := e.ExceptionRecord.ExceptionAddress
	tables, err := f.FunctionTables()
	if err != nil {
		log.Fatal(err)
	}
	mem, err := f.Memory()
	if err != nil {
		log.Print(err) // some ranges are unusable; the rest are there
	}
	if tables == nil {
		return
	}
	if fn, base, ok := tables.LookupFunctionEntry(pc); ok {
		hdr := make([]byte, 4)
		if _, err := mem.ReadMemory(hdr, base+uint64(fn.UnwindData)); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("pc %#x: function %#x-%#x, unwind info % x\n", pc, base+uint64(fn.BeginAddress), base+uint64(fn.EndAddress), hdr)
	}
}
