// Package stackwalk walks the stacks of a target — a stopped live process,
// a minidump, or any registers and memory — through JIT frames and native
// frames alike.
//
// For each frame, the walker picks the first unwinder that knows the
// frame's code:
//
//  1. the dynamic function tables the target publishes (RtlAddFunctionTable,
//     growable and callback tables, read with package functable/remote), or
//     the caller's own FunctionTableAccess hook, through
//     [unwind.Unwinder.VirtualUnwind];
//  2. the exception directory (.pdata) of a PE image mapped in the target
//     (Windows programs under Wine), also through VirtualUnwind;
//  3. for Go code, the pclntab's pcsp table (package internal/gopclntab),
//     what Go's own traceback reads, mapped from the file (a Go program's
//     .debug_frame only restates it, at a much higher cost to read);
//  4. the call-frame information of an ELF module (package cfi);
//  5. the frame-pointer chain;
//  6. with [Options.Scan], a bounded scan of the stack for a return
//     address, also when the frame-pointer chain gave no caller that
//     can be one;
//
// and stops when none does. A frame in runtime.asmcgocall (Go calling C
// or JIT code on the thread's system stack) is followed back to the
// goroutine's stack, as Go's runtime does. Every [Frame] records its PC, SP and CFA, how
// it was found ([How]), and the address to symbolize.
//
// [Sources] gathers the unwind data of a target once; its [Sources.Walk]
// and [Sources.WalkThread] return a [Walker], used like bufio.Scanner.
// The [Options] hooks are those of dbghelp's StackWalkEx: a memory reader,
// a function-table access routine and a module-base routine.
//
// # Guards
//
// A walk ends with an error, never a hang, on corrupted stacks: the stack
// pointer must increase from frame to frame unless the unwind data
// describes a stack switch, a frame may not repeat, a walk has at most
// [Options.MaxFrames] frames (default [DefaultMaxFrames]), and on a live
// process a return address outside every executable mapping ends it
// ([ErrNotCode]). The unwind data describes a switch with a signal frame
// (an FDE of a CIE with augmentation S, a machine frame), with
// runtime.asmcgocall's way back to the goroutine's stack, or with a CFA
// that the CFI computes by an expression (DW_CFA_def_cfa_expression) and
// not as a register plus an offset: the caller's stack pointer is one
// saved in memory, as in Wine's system-call dispatcher, which returns
// from a thread's Unix stack to its Windows stack below it. At most 16
// such steps may follow one another, and none may lead to a PC and SP
// seen before ([ErrLoop]).
//
// # The end of a stack
//
// A walk ends without an error where the unwind data says the stack
// ends: a return address of 0 (Windows), an undefined return-address rule
// in the CFI (glibc's _start and thread start), or, in a Go binary, a
// function its pclntab flags as a top frame (runtime.goexit,
// runtime.mstart), or a stack switch it flags as writing SP
// (runtime.mcall, runtime.morestack, ...), where Go's own tracebacks end.
//
// Reference: "x64 exception handling" (Microsoft Learn) for the function
// tables; DWARF 5 §6.4 and the LSB's "Exception Frames" for the CFI;
// StackWalkEx (dbghelp) for the hooks.
package stackwalk
