package jitgen

import (
	"fmt"
	"sort"

	"github.com/fntable/fntable/unwindinfo"
)

// DefaultBase is the image base [Build] uses when Config.Base is 0.
const DefaultBase = 0x1_8000_0000

// DefaultFunctions is the number of functions [Build] generates when
// Config.Functions is 0.
const DefaultFunctions = 16

// MaxFrame bounds the stack a generated function uses below its entry
// stack pointer (pushes, fixed allocation, and saves), not counting dynamic
// allocations, which stay below [MaxAlloca]. A large allocation is up to
// 1.25 MiB, so that SAVE_NONVOL_FAR (offsets from 512 KiB) and
// SAVE_XMM128_FAR (from 1 MiB) get offsets only their far forms can hold.
const MaxFrame = 1280<<10 + 4096

// MaxAlloca bounds the dynamic allocation (alloca) a test may place below
// the fixed frame of a function whose State.Alloca is true.
const MaxAlloca = 4096

// MaxAbove bounds how many bytes from the entry stack pointer up a
// function's unwind reads: the machine frame (with an error code, 48
// bytes), or the return address and the caller's home area (40 bytes).
const MaxAbove = 48

// Feature names a kind of generated code that [Config.Omit] can leave out.
type Feature uint32

// Features. The zero Config generates all of them.
const (
	// FeatMachineFrame: functions entered with a machine frame
	// (UWOP_PUSH_MACHFRAME), which leave through iretq.
	FeatMachineFrame Feature = 1 << iota
	// FeatChained: functions with CHAININFO fragments.
	FeatChained
	// FeatHandler: exception and termination handlers with handler data.
	FeatHandler
	// FeatLeaf: unwind information without unwind codes.
	FeatLeaf
	// FeatFrameRegister: UWOP_SET_FPREG.
	FeatFrameRegister
	// FeatLargeFrame: allocations and saves beyond 512 KiB.
	FeatLargeFrame
	// FeatRetImm: ret imm16 terminators.
	FeatRetImm
	// FeatBndRet: bnd ret (f2 c3) terminators.
	FeatBndRet
	// FeatJmp: epilogs that end in a jump out of the function (jmp rel8,
	// jmp rel32, jmp [rip+disp32], REX.W jmp r/m64), also with the f2
	// prefix.
	FeatJmp
	// FeatRecursion: epilogs that end in a jump to the function's start.
	FeatRecursion
	// FeatR12Lea: lea rsp, [r12+disp8] epilogs whose displacement the
	// Windows epilog scan misreads: the instruction needs a SIB byte, which
	// the scan takes for the displacement, taking the displacement for the
	// next instruction. Unwinding at it goes wrong (State.Unwindable is
	// false there). Without this feature, functions with r12 as frame
	// register still get lea rsp epilogs, with displacements the scan reads
	// harmlessly.
	FeatR12Lea
	// FeatVersion2: version 2 unwind information with UWOP_EPILOG codes.
	FeatVersion2
	// FeatSaveBeforeFrame: register saves placed in the prolog between the
	// fixed allocation and the instruction that sets the frame register.
	FeatSaveBeforeFrame
	// FeatJumpIntoEpilog: jumps from a body to the pops of an epilog.
	FeatJumpIntoEpilog
	// FeatEmptyFragmentEpilog: epilogs inside chained fragments that have
	// no unwind codes of their own. Windows does not scan for epilogs in
	// such a fragment, so unwinding inside the epilog past its first
	// instruction fails (State.Unwindable is false there).
	FeatEmptyFragmentEpilog
)

var featureNames = []string{"machine-frame", "chained", "handler", "leaf", "frame-register", "large-frame",
	"ret-imm", "bnd-ret", "jmp", "recursion", "r12-lea", "version2", "save-before-frame", "jump-into-epilog",
	"empty-fragment-epilog"}

// String returns the names of the features in f, separated by "|".
func (f Feature) String() string {
	s := ""
	for i, n := range featureNames {
		if f&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += n
		}
	}
	if f&^(1<<len(featureNames)-1) != 0 || s == "" {
		if s != "" {
			s += "|"
		}
		s += fmt.Sprintf("%#x", uint32(f&^(1<<len(featureNames)-1)))
	}
	return s
}

// Config controls [Build]. Its zero value generates DefaultFunctions
// functions with every feature at DefaultBase.
type Config struct {
	// Functions is the number of functions; 0 means DefaultFunctions.
	Functions int
	// Base is the image base; 0 means DefaultBase.
	Base uint64
	// Omit lists features not to generate.
	Omit Feature
	// Rare lists features to generate at an eighth of their usual rate,
	// so that they are covered without dominating.
	Rare Feature
	// Executable asks for code that really runs: a call chain in which
	// function i calls function i+1 once, and the last function blocks
	// for ever in the pause system call (see "Executable chains" in the
	// package documentation). It implies Omit of [ExecutableOmits].
	Executable bool
}

// ExecutableOmits are the features an executable image leaves out: code
// that cannot run, or that leaves a function other than by returning.
const ExecutableOmits = FeatMachineFrame | FeatChained | FeatRetImm | FeatJmp | FeatRecursion |
	FeatR12Lea | FeatJumpIntoEpilog | FeatEmptyFragmentEpilog

// HomeArea is the size of the home area (shadow space) a Windows x64
// caller reserves above the return address for its callee's four register
// arguments. An executable function leaves the lowest HomeArea bytes of its
// fixed allocation to its callee.
const HomeArea = 32

func (c *Config) has(f Feature) bool { return c.Omit&f == 0 }

// rate returns the probability p of generating feature f, scaled down if f
// is rare.
func (c *Config) rate(f Feature, p float64) float64 {
	if c.Rare&f != 0 {
		return p / 8
	}
	return p
}

// Image is a generated code image: code, unwind information and function
// table, all addressed by RVAs relative to Base. Its bytes do not depend on
// Base, so Base may be changed to describe the same bytes placed elsewhere.
// An Image is not modified by this package after Build returns, and it is
// safe for concurrent reads.
type Image struct {
	// Base is the address the RVAs are relative to.
	Base uint64
	// Bytes is the image, from RVA 0.
	Bytes []byte
	// Table is the function table: every entry of every function, sorted
	// by BeginAddress and not overlapping. It is also encoded in Bytes at
	// TableRVA.
	Table []unwindinfo.RuntimeFunction
	// TableRVA is the RVA of the encoded table (12 bytes per entry).
	TableRVA uint32
	// Functions are the generated functions, in layout order of their
	// primary entries.
	Functions []*Function
	// Handlers are the RVAs of the handler routines that handler
	// functions name: short code stubs outside every function.
	Handlers []uint32
	// Slots are the RVAs of the 8-byte slots that jmp [rip+disp32]
	// reads, outside every function.
	Slots []uint32

	owners map[uint32]owner // by BeginAddress
}

type owner struct {
	f *Function
	e *Entry
}

// LookupFunctionEntry returns the table entry containing pc, as
// RtlLookupFunctionEntry does, and Base. It has the signature of
// unwind.FunctionTable.
func (img *Image) LookupFunctionEntry(pc uint64) (*unwindinfo.RuntimeFunction, uint64, bool) {
	if pc < img.Base || pc-img.Base >= 1<<32 {
		return nil, 0, false
	}
	rva := uint32(pc - img.Base)
	i := sort.Search(len(img.Table), func(i int) bool { return img.Table[i].EndAddress > rva })
	if i < len(img.Table) && img.Table[i].Contains(rva) {
		return &img.Table[i], img.Base, true
	}
	return nil, 0, false
}

// TableIndex returns the index in Table of the entry whose BeginAddress is
// begin, or -1.
func (img *Image) TableIndex(begin uint32) int {
	i := sort.Search(len(img.Table), func(i int) bool { return img.Table[i].BeginAddress >= begin })
	if i < len(img.Table) && img.Table[i].BeginAddress == begin {
		return i
	}
	return -1
}

// Find returns the function and the entry whose range contains rva.
func (img *Image) Find(rva uint32) (*Function, *Entry, bool) {
	rf, _, ok := img.LookupFunctionEntry(img.Base + uint64(rva))
	if !ok {
		return nil, nil, false
	}
	o := img.owners[rf.BeginAddress]
	if o.f == nil {
		return nil, nil, false
	}
	return o.f, o.e, true
}

// Function is a generated function: its primary entry, embedded, and its
// chained fragments.
type Function struct {
	// ID numbers the functions of an image from 0.
	ID int
	// Entry is the primary entry. Its Info has no UNW_FLAG_CHAININFO.
	Entry
	// Fragments are the CHAININFO entries, in the order they were
	// generated. Each is chained to the primary entry or to an earlier
	// fragment.
	Fragments []Fragment
	// Epilogs describes every epilog (and every machine-frame exit) of
	// every entry, in address order within each entry.
	Epilogs []EpilogDesc
	// HandlerData is the language-specific handler data that follows the
	// handler RVA in the primary UNWIND_INFO; nil without a handler.
	HandlerData []byte
	// MachineFrame reports a function entered with a machine frame on the
	// stack (UWOP_PUSH_MACHFRAME); ErrorCode reports that an error code
	// was pushed below it.
	MachineFrame, ErrorCode bool
	// Features lists the features the function contains.
	Features Feature
}

// Entries returns the primary entry followed by the fragments' entries.
func (f *Function) Entries() []*Entry {
	es := []*Entry{&f.Entry}
	for i := range f.Fragments {
		es = append(es, &f.Fragments[i].Entry)
	}
	return es
}

// Parent returns the entry that entry e (an element of Entries) is chained
// to, or nil for the primary entry.
func (f *Function) Parent(e *Entry) *Entry {
	for i := range f.Fragments {
		if &f.Fragments[i].Entry == e {
			if p := f.Fragments[i].Parent; p >= 0 {
				return &f.Fragments[p].Entry
			}
			return &f.Entry
		}
	}
	return nil
}

// Entry is one RUNTIME_FUNCTION of a function, with its code and unwind
// information.
type Entry struct {
	// Begin and End are the RVAs of the entry's code range [Begin, End).
	Begin, End uint32
	// InfoRVA is the RVA of the entry's UNWIND_INFO (UnwindData).
	InfoRVA uint32
	// Info is the entry's UNWIND_INFO. For a fragment, Info.Chained is the
	// parent's RuntimeFunction.
	Info *unwindinfo.Info
	// Code is the entry's code, the image bytes [Begin, End).
	Code []byte
	// Insts are the entry's instructions in address order; they cover
	// Code exactly.
	Insts []Inst
}

// RuntimeFunction returns the entry's table entry.
func (e *Entry) RuntimeFunction() unwindinfo.RuntimeFunction {
	return unwindinfo.RuntimeFunction{BeginAddress: e.Begin, EndAddress: e.End, UnwindData: e.InfoRVA}
}

// Boundaries returns the RVA of every instruction start, prolog and epilog
// instructions included.
func (e *Entry) Boundaries() []uint32 {
	b := make([]uint32, len(e.Insts))
	for i, in := range e.Insts {
		b[i] = in.RVA
	}
	return b
}

// InstAt returns the instruction that starts at rva.
func (e *Entry) InstAt(rva uint32) (*Inst, bool) {
	i := sort.Search(len(e.Insts), func(i int) bool { return e.Insts[i].RVA >= rva })
	if i < len(e.Insts) && e.Insts[i].RVA == rva {
		return &e.Insts[i], true
	}
	return nil, false
}

// Fragment is a CHAININFO entry of a chained function.
type Fragment struct {
	Entry
	// Parent is the index in Function.Fragments of the fragment this one
	// is chained to, or -1 for the primary entry.
	Parent int
	// Pushes reports a fragment whose own prolog pushes registers and
	// allocates stack (shrink-wrapping), rather than only saving
	// registers with mov or having no codes at all.
	Pushes bool
}

// Kind is the role of an instruction.
type Kind uint8

// Instruction kinds.
const (
	// KindProlog: an instruction of the entry's prolog, before
	// SizeOfProlog.
	KindProlog Kind = iota
	// KindBody: any other instruction that is not part of an epilog.
	KindBody
	// KindRestore: a body instruction that reloads a register saved with
	// SAVE_NONVOL or SAVE_XMM128, ahead of an epilog.
	KindRestore
	// KindEpilog: an instruction of an epilog (or machine-frame exit)
	// described by Function.Epilogs[Inst.Epilog].
	KindEpilog
)

var kindNames = [...]string{"prolog", "body", "restore", "epilog"}

// String returns the kind's name ("prolog").
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Inst is one generated instruction.
type Inst struct {
	// RVA is the instruction's address.
	RVA uint32
	// Len is its length in bytes.
	Len uint8
	// Kind is its role.
	Kind Kind
	// Asm is the instruction in Intel syntax as
	// golang.org/x/arch/x86/x86asm.IntelSyntax prints it with the RVA as
	// the program counter, with the prefixes that IntelSyntax leaves out
	// spelled first: "rep " (f3), "rex " (a REX prefix without W, R, X, B),
	// "rex.w " (a REX.W prefix the operation does not need).
	Asm string
	// Epilog is the index in Function.Epilogs of the epilog this
	// instruction belongs to, or -1.
	Epilog int
	// Target is the RVA a jump or call goes to (HasTarget), or the RVA of
	// the slot a jmp [rip+disp32] reads.
	Target    uint32
	HasTarget bool
	// IntoEpilog reports a body jump whose target is the first pop of an
	// epilog (FeatJumpIntoEpilog).
	IntoEpilog bool
	// State is the machine state before the instruction executes.
	State State
}

// State describes the machine state at an instruction boundary, relative
// to the stack pointer E with which the function was entered: E points at
// the return address, or at the machine frame (at its error code, if any).
type State struct {
	// SP is E − RSP in bytes, without a dynamic allocation (negative once
	// a machine-frame exit has discarded the error code).
	SP int32
	// Alloca reports that RSP may also be lower by a dynamic allocation
	// (a multiple of 16, less than MaxAlloca): the function addresses its
	// frame through the frame register.
	Alloca bool
	// FrameSet reports that the frame register has been set; FP is then
	// E − (frame register) in bytes (negative if it points above E).
	// Before that the frame register holds the caller's value.
	FrameSet bool
	FP       int32
	// Saved lists the registers whose caller's values are on the stack.
	Saved []Saved
	// Unwindable reports that an unwinder following the Windows rules
	// (the version 1 epilog scan, or version 2 epilog codes) recovers the
	// caller's state exactly at this boundary. It is false only where the
	// generator was asked for code that Windows cannot unwind: inside an
	// epilog of a fragment without unwind codes (after its first
	// instruction), at lea rsp, [r12+disp], and in a machine-frame exit
	// after its first instruction.
	Unwindable bool
}

// Saved is a register whose caller's value is on the stack.
type Saved struct {
	// Reg is the general-purpose register, or the XMM register number if
	// XMM is set.
	Reg unwindinfo.Register
	XMM bool
	// Slot is E − (address of the saved value) in bytes; negative for the
	// caller's home area above the return address.
	Slot int32
	// Restored reports that the register holds the caller's value again
	// (an epilog popped it, or a restore instruction reloaded it). Until
	// then it may hold anything.
	Restored bool
}

// String formats s as "rbx@0x28", "xmm6@0x40" or, once restored,
// "rbx@0x28 restored"; the number is Slot.
func (s Saved) String() string {
	name := s.Reg.String()
	if s.XMM {
		name = fmt.Sprintf("xmm%d", s.Reg)
	}
	if s.Slot < 0 {
		name += fmt.Sprintf("@-%#x", -int64(s.Slot))
	} else {
		name += fmt.Sprintf("@%#x", s.Slot)
	}
	if s.Restored {
		name += " restored"
	}
	return name
}

// Dealloc is how an epilog frees the fixed stack allocation.
type Dealloc uint8

// Epilog deallocation forms.
const (
	DeallocNone  Dealloc = iota // no allocation to free
	DeallocAdd8                 // add rsp, imm8 (48 83 c4 ib)
	DeallocAdd32                // add rsp, imm32 (48 81 c4 id)
	DeallocLea8                 // lea rsp, [framereg+disp8]
	DeallocLea32                // lea rsp, [framereg+disp32]
)

var deallocNames = [...]string{"none", "add8", "add32", "lea8", "lea32"}

// String returns the form's name ("add8").
func (d Dealloc) String() string {
	if int(d) < len(deallocNames) {
		return deallocNames[d]
	}
	return fmt.Sprintf("Dealloc(%d)", uint8(d))
}

// Terminator is the last instruction of an epilog.
type Terminator uint8

// Epilog terminators.
const (
	TermRet      Terminator = iota // c3
	TermRetImm                     // c2 iw
	TermRepRet                     // f3 c3
	TermJmpRel8                    // eb cb, out of the function or to its start
	TermJmpRel32                   // e9 cd, out of the function or to its start
	TermJmpRIP                     // ff 25 cd (or 48 ff 25 cd): jmp [rip+disp32]
	TermJmpReg                     // REX.W ff /4 with a register operand: jmp rax
	TermJmpMem                     // REX.W ff /4 with a memory operand: jmp [rax+disp8]
	TermIretq                      // 48 cf: a machine-frame exit, not an epilog
)

var termNames = [...]string{"ret", "ret-imm", "rep-ret", "jmp-rel8", "jmp-rel32", "jmp-rip", "jmp-reg", "jmp-mem", "iretq"}

// String returns the terminator's name ("rep-ret").
func (t Terminator) String() string {
	if int(t) < len(termNames) {
		return termNames[t]
	}
	return fmt.Sprintf("Terminator(%d)", uint8(t))
}

// IsJump reports whether t is a jump.
func (t Terminator) IsJump() bool { return t >= TermJmpRel8 && t <= TermJmpMem }

// TargetKind says where an epilog's jmp rel8/rel32 goes.
type TargetKind uint8

// Jump targets of epilogs.
const (
	TargetNone     TargetKind = iota // not a relative jump
	TargetFunction                   // the start of another function (a tail call)
	TargetThunk                      // code outside every function (a tail call)
	TargetSelf                       // the start of this function's primary entry (a recursive tail call)
)

var targetNames = [...]string{"none", "function", "thunk", "self"}

// String returns the kind's name ("thunk").
func (k TargetKind) String() string {
	if int(k) < len(targetNames) {
		return targetNames[k]
	}
	return fmt.Sprintf("TargetKind(%d)", uint8(k))
}

// EpilogDesc describes an epilog: the sequence from the stack deallocation
// (or the first pop, or the terminator) to the terminator.
type EpilogDesc struct {
	// Fragment is the index in Function.Fragments of the entry holding
	// the epilog, or -1 for the primary entry.
	Fragment int
	// Start and End are the RVAs of the epilog's first instruction and
	// one past its terminator.
	Start, End uint32
	// Dealloc is the deallocation form.
	Dealloc Dealloc
	// Pops are the registers popped, in order.
	Pops []unwindinfo.Register
	// PopREX lists the pops that carry a REX prefix they do not need
	// (40 or 48 before a pop of rax..rdi, or 49 before r8..r15).
	PopREX []bool
	// ErrorCode reports a machine-frame exit that discards the error code
	// (add rsp, 8) before iretq.
	ErrorCode bool
	// Bnd reports the f2 (bnd) prefix on the terminator.
	Bnd bool
	// Term is the terminator.
	Term Terminator
	// Target is where a relative jump goes, or the slot of jmp
	// [rip+disp32]; TargetKind classifies relative jumps.
	Target     uint32
	TargetKind TargetKind
	// RexW reports the REX.W prefix on jmp [rip+disp32].
	RexW bool
	// Imm is the immediate of ret imm16.
	Imm uint16
	// Version2 reports that the epilog is described by UWOP_EPILOG codes;
	// V2Start is then where the described part (the pops and the
	// terminator) starts.
	Version2 bool
	V2Start  uint32
}

// IsEpilog reports whether the sequence is an epilog to an unwinder, that
// is, anything but a machine-frame exit.
func (d *EpilogDesc) IsEpilog() bool { return d.Term != TermIretq }
