package demotarget

import (
	"fmt"
	"strconv"
)

// EnvVar is the environment variable that makes an executable run as the
// target: [IsTarget] reports whether it is set.
const EnvVar = "FNTABLE_DEMO_TARGET"

// The JIT metadata block that the callback table's Context points to (see
// "The JIT metadata block" in the package documentation).
const (
	MetadataMagic      = "FNTDEMO1" // the block's first 8 bytes
	MetadataVersion    = 1          // the layout described here
	MetadataHeaderSize = 24         // bytes before the entries
	// MaxMetadataEntries bounds Count; readers reject larger counts.
	MaxMetadataEntries = 1 << 16
)

// System call numbers (x86-64) that parked threads are blocked in.
const (
	SysRead  = 0  // the ordinary thread
	SysPause = 34 // every JIT thread
)

// Addr is an address in the target. It is written in JSON as a
// hexadecimal string ("0x7f2a6c001000").
type Addr uint64

// MarshalText writes a as 0x-prefixed hexadecimal.
func (a Addr) MarshalText() ([]byte, error) {
	return strconv.AppendUint([]byte("0x"), uint64(a), 16), nil
}

// UnmarshalText reads a number in any base strconv.ParseUint accepts with
// base 0 (0x-prefixed hexadecimal, or decimal).
func (a *Addr) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 0, 64)
	if err != nil {
		return fmt.Errorf("parse address %q: %w", b, err)
	}
	*a = Addr(v)
	return nil
}

// RVA is an address relative to a table's base. It is written in JSON as
// a hexadecimal string.
type RVA uint32

// MarshalText writes r as 0x-prefixed hexadecimal.
func (r RVA) MarshalText() ([]byte, error) {
	return strconv.AppendUint([]byte("0x"), uint64(r), 16), nil
}

// UnmarshalText reads a number as [Addr.UnmarshalText] does.
func (r *RVA) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 0, 32)
	if err != nil {
		return fmt.Errorf("parse rva %q: %w", b, err)
	}
	*r = RVA(v)
	return nil
}

// TableKind says which kind of function table covers code.
type TableKind string

// Table kinds. TableNone marks JIT code that no table covers: the
// callback part when the target runs without a provider library.
const (
	TableStatic   TableKind = "static"   // AddFunctionTable
	TableCallback TableKind = "callback" // InstallFunctionTableCallback
	TableGrowable TableKind = "growable" // AddGrowableFunctionTable
	TableNone     TableKind = ""
)

// ThreadKind says what a parked thread runs.
type ThreadKind string

// Thread kinds (see "Threads" in the package documentation).
const (
	ThreadStatic   ThreadKind = "static"   // a chain in the static table
	ThreadMixed    ThreadKind = "mixed"    // static → callback → growable
	ThreadCallback ThreadKind = "callback" // a chain in the callback table
	ThreadGrown    ThreadKind = "grown"    // a chain added to the growable table while running
	ThreadOrdinary ThreadKind = "ordinary" // Go code blocked in read(2), no JIT frames
)

// Report is what the target prints, as one JSON line, once every thread
// is parked.
type Report struct {
	Pid         int      `json:"pid"`         // the target's process ID
	Seed        uint64   `json:"seed"`        // the jitgen seed the code was generated from
	Provider    string   `json:"provider"`    // the provider library of the callback table, or "" (then there is no callback table)
	PerfMap     string   `json:"perf_map"`    // the perf map naming every JIT function
	Churn       bool     `json:"churn"`       // tables are being added and deleted in the churn part
	Reservation Range    `json:"reservation"` // the address space holding all JIT code
	Metadata    Addr     `json:"metadata"`    // the JIT metadata block (the callback table's Context)
	NumGC       uint32   `json:"num_gc"`      // garbage collections completed when the report was written
	Notes       []string `json:"notes,omitempty"`
	Tables      []Table  `json:"tables"`  // the parked threads' tables (churn tables are not listed)
	Threads     []Thread `json:"threads"` // in the order they were started
}

// Range is an address range [Start, End).
type Range struct {
	Start Addr `json:"start"`
	End   Addr `json:"end"`
}

// Contains reports whether a is in r.
func (r Range) Contains(a Addr) bool { return r.Start <= a && a < r.End }

// Table is a function table of the target as it was registered.
type Table struct {
	Kind       TableKind `json:"kind"`
	Min        Addr      `json:"min"`        // the range covered: [Min, Max)
	Max        Addr      `json:"max"`        // end of the range (exclusive)
	Base       Addr      `json:"base"`       // the entries' RVAs are relative to it
	Identifier Addr      `json:"identifier"` // the callback table's TableIdentifier (Base|3), else 0
	Context    Addr      `json:"context"`    // the callback table's published Context (the metadata block), else 0
	Record     Addr      `json:"record"`     // its DYNAMIC_FUNCTION_TABLE record in the published list, 0 if not found
	EntryCount int       `json:"entry_count"`
	// MaximumEntryCount is the growable table's maximum, else EntryCount.
	MaximumEntryCount int     `json:"maximum_entry_count"`
	Entries           []Entry `json:"entries"` // the valid entries, sorted (for the callback table: what its callback answers)
}

// Entry is a RUNTIME_FUNCTION: RVAs from its table's Base.
type Entry struct {
	BeginAddress RVA `json:"begin"`
	EndAddress   RVA `json:"end"`
	UnwindData   RVA `json:"unwind_data"`
}

// Thread is a parked thread.
type Thread struct {
	Tid     int        `json:"tid"`
	Name    string     `json:"name"` // its name in /proc/PID/task/TID/comm
	Kind    ThreadKind `json:"kind"`
	Syscall int        `json:"syscall"` // the system call it is blocked in: SysPause, or SysRead for the ordinary thread
	// Frames are the JIT frames a walk must find, innermost first: the
	// chain's functions, ending with the entry thunk. Below the thunk are
	// the frames of the Go runtime's C-call path. Empty for the ordinary
	// thread.
	Frames []Frame `json:"frames"`
}

// Frame is a JIT function on a parked thread's stack.
type Frame struct {
	Function string    `json:"function"` // its name in the perf map
	Begin    Addr      `json:"begin"`    // its code: [Begin, End)
	End      Addr      `json:"end"`
	Table    TableKind `json:"table"` // the table that covers it
}

// Table returns the report's table of kind k, or nil.
func (r *Report) Table(k TableKind) *Table {
	for i := range r.Tables {
		if r.Tables[i].Kind == k {
			return &r.Tables[i]
		}
	}
	return nil
}

// Thread returns the report's thread of kind k, or nil.
func (r *Report) Thread(k ThreadKind) *Thread {
	for i := range r.Threads {
		if r.Threads[i].Kind == k {
			return &r.Threads[i]
		}
	}
	return nil
}

// Status is what the target prints, as one JSON line, for the "status"
// command.
type Status struct {
	NumGC       uint32 `json:"num_gc"`       // garbage collections completed
	ChurnCycles uint64 `json:"churn_cycles"` // complete churn cycles (add, grow and delete every churn table)
	ChurnErr    string `json:"churn_err"`    // the error that stopped the churn, or ""
}
