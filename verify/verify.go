package verify

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// Kind names a kind of problem. The values are stable: tools and scripts
// match them.
type Kind string

// Problem kinds.
const (
	// KindUnwindInfo: the unwind information (or a chained parent's)
	// cannot be read or decoded.
	KindUnwindInfo Kind = "unwind-info"
	// KindInstruction: a prolog instruction cannot be decoded.
	KindInstruction Kind = "instruction"
	// KindCodeMismatch: the instruction ending at a code's offset does
	// something else than the code says (register, size, offset, frame).
	KindCodeMismatch Kind = "code-mismatch"
	// KindCodeOffset: no instruction ends at a code's offset.
	KindCodeOffset Kind = "code-offset"
	// KindMissingCode: a prolog instruction pushes, allocates, sets the
	// frame register or saves a nonvolatile register, and no code says so.
	KindMissingCode Kind = "missing-code"
	// KindExtraCode: a code describes an instruction that has no unwind
	// effect, or one already described by another code.
	KindExtraCode Kind = "extra-code"
	// KindCodeOrder: the codes are not in descending offset order.
	KindCodeOrder Kind = "code-order"
	// KindPrologSize: SizeOfProlog is not an instruction boundary, or a
	// code lies past it.
	KindPrologSize Kind = "prolog-size"
	// KindEpilog: an exit (ret, or a jump leaving the function) is not an
	// epilog the Windows unwinder recognizes.
	KindEpilog Kind = "epilog"
	// KindEpilogRestore: an exit leaves the stack pointer elsewhere than
	// at the return address, or a saved register not restored.
	KindEpilogRestore Kind = "epilog-restore"
	// KindFragmentEpilog: an epilog in a chained entry without unwind
	// codes of its own, in which the unwinder looks for no epilog, so
	// that it unwinds the epilog's instructions as the body.
	KindFragmentEpilog Kind = "fragment-epilog"
	// KindPrologEpilog: an epilog inside the prolog's range (SizeOfProlog),
	// where the unwinder looks for no version 1 epilog (MSVC defers saves
	// past an early return and counts the return in the prolog).
	KindPrologEpilog Kind = "prolog-epilog"
	// KindTailJump: an indirect jmp without REX.W (other than jmp
	// [rip+x]) leaves the function with its frame taken down, as a tail
	// call, but the unwinder does not take it for one and unwinds it as
	// the body (Wine's delay-load thunks end so; MSVC marks such a jump
	// with REX.W).
	KindTailJump Kind = "tail-jump"
	// KindSplitJump: a jmp with the frame on the stack continues the
	// function in another entry whose unwind information describes that
	// frame, but the two are not chained, so the unwinder takes the jump
	// for a tail call (GCC's .cold parts and the jumps into and out of
	// them). Only the jmp instruction itself is unwound wrongly.
	KindSplitJump Kind = "split-jump"
	// KindV2Epilog: a version 2 UWOP_EPILOG code describes no epilog.
	KindV2Epilog Kind = "v2-epilog"
	// KindUnwindMismatch: at an instruction boundary the unwinder's result
	// differs from the symbolic execution's, or the unwinder fails.
	KindUnwindMismatch Kind = "unwind-mismatch"
	// KindTableOrder: table entries are not sorted by BeginAddress.
	KindTableOrder Kind = "table-order"
	// KindTableOverlap: table entries overlap.
	KindTableOverlap Kind = "table-overlap"
	// KindTableRange: an entry is empty or lies outside the code range.
	KindTableRange Kind = "table-range"
	// KindChain: chained unwind information names an entry that is not in
	// the table, or its chain does not end.
	KindChain Kind = "chain"
	// KindHandler: a language-specific handler lies outside executable
	// memory.
	KindHandler Kind = "handler"
)

// Problem is one disagreement between unwind information and code.
type Problem struct {
	Function uint64 // address of the entry's first byte (base+BeginAddress)
	Offset   uint32 // offset of the instruction or boundary in the entry
	Kind     Kind
	Message  string // what is wrong, with the instruction and both sides
}

// String returns the text form of p:
//
//	0x180001000 fn+0x5: SAVE_NONVOL rbx at 0x30, but the instruction is mov [rsp+0x38], rbx
func (p Problem) String() string {
	return fmt.Sprintf("%#x fn+%#x: %s", p.Function, p.Offset, p.Message)
}

// MarshalJSON encodes p as {"function":"0x...","offset":N,"kind":"...","message":"..."}.
func (p Problem) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Function string `json:"function"`
		Offset   uint32 `json:"offset"`
		Kind     Kind   `json:"kind"`
		Message  string `json:"message"`
	}{fmt.Sprintf("%#x", p.Function), p.Offset, p.Kind, p.Message})
}

// Report is the result of a check.
type Report struct {
	Functions    int       `json:"functions"`    // entries checked
	Instructions int       `json:"instructions"` // instructions decoded and checked
	Problems     []Problem `json:"problems"`     // in the order found; never nil after a check
	// Truncated reports that more problems were found than
	// Checker.MaxProblems allowed to keep.
	Truncated bool `json:"truncated,omitempty"`
}

// Add adds the counts and problems of o to r.
func (r *Report) Add(o Report) {
	r.Functions += o.Functions
	r.Instructions += o.Instructions
	r.Problems = append(r.Problems, o.Problems...)
	r.Truncated = r.Truncated || o.Truncated
}

// WriteText writes one line per problem (see [Problem.String]).
func (r *Report) WriteText(w io.Writer) error {
	for _, p := range r.Problems {
		if _, err := fmt.Fprintln(w, p.String()); err != nil {
			return err
		}
	}
	return nil
}

// Checker checks functions and function tables. Its zero value works.
// A Checker is safe for concurrent use if its Memory and Functions are.
type Checker struct {
	// Memory holds the unwind information and, unless the caller gives
	// the code, the code. The checker adds a synthetic stack of its own.
	Memory unwind.Memory
	// Functions, if set, is the function table the entries belong to.
	// The unwinder uses it to tell a jump into another entry of the same
	// function from a tail call, and the checker does the same.
	Functions unwind.FunctionTable
	// Executable, if set, reports whether an address lies in executable
	// memory; handlers must. Without it handlers are not checked.
	Executable func(addr uint64) bool
	// MaxProblems, if positive, stops a table check after that many
	// problems (Report.Truncated is then set).
	MaxProblems int
	// Workers, if more than 1 and MaxProblems is not set, is how many
	// goroutines a table check uses. Memory and Functions must then be
	// safe for concurrent use.
	Workers int
}

// MaxCodeSize bounds the code of one entry that is checked. Larger entries
// are checked up to it; no compiler emits single functions that large.
const MaxCodeSize = 1 << 20

// Function checks the function table entry fn, relative to base, whose
// code (the bytes of [base+fn.BeginAddress, base+fn.EndAddress)) is code.
// mem holds its unwind information and that of chained parents; it may be
// nil when neither is needed. The error is non-nil only when nothing could
// be checked; problems found are in the Report.
func Function(code []byte, base uint64, fn unwindinfo.RuntimeFunction, mem unwind.Memory) (Report, error) {
	c := Checker{Memory: mem}
	return c.Function(code, base, fn)
}

// Function checks one entry, like the function [Function]. code may be
// nil: it is then read from c.Memory.
func (c *Checker) Function(code []byte, base uint64, fn unwindinfo.RuntimeFunction) (Report, error) {
	return c.function(code, base, fn, nil, nil)
}

// function is Function; fl, if not nil, carries the states in which the
// entries of the same function checked before left for later ones;
// scratch, if not nil, is reused for the check.
func (c *Checker) function(code []byte, base uint64, fn unwindinfo.RuntimeFunction, fl *flows, scratch *fnCheck) (Report, error) {
	rep := Report{Problems: []Problem{}}
	if code == nil {
		var err error
		if code, err = c.readCode(base, fn); err != nil {
			return rep, err
		}
	}
	fc := scratch
	if fc == nil {
		fc = new(fnCheck)
	}
	fc.reset(c, code, base, fn)
	fc.flows = fl
	fc.run()
	rep.Functions = 1
	rep.Instructions = fc.ninst
	rep.Problems = append(rep.Problems, fc.problems...)
	return rep, nil
}

// readCode reads the code of fn from c.Memory.
func (c *Checker) readCode(base uint64, fn unwindinfo.RuntimeFunction) ([]byte, error) {
	if c.Memory == nil {
		return nil, fmt.Errorf("read code of function at %#x: no memory", base+uint64(fn.BeginAddress))
	}
	if fn.EndAddress <= fn.BeginAddress {
		return []byte{}, nil
	}
	n := min(fn.EndAddress-fn.BeginAddress, MaxCodeSize)
	b := make([]byte, n)
	got, err := c.Memory.ReadMemory(b, base+uint64(fn.BeginAddress))
	if got == 0 && err != nil {
		return nil, fmt.Errorf("read code of function at %#x: %w", base+uint64(fn.BeginAddress), err)
	}
	return b[:got], nil
}
