// Package jitgen generates x86-64 machine code together with matching
// Windows x64 unwind information, the way a just-in-time compiler does, for
// tests, benchmarks and demonstrations of run-time function tables.
//
// [Build] lays out an [Image]: handler stubs and indirect-jump slots, the
// code of every generated [Function] (a primary entry and, for chained
// functions, up to three CHAININFO fragments), the UNWIND_INFO blocks
// (4-byte aligned, each followed by its handler data), and a sorted
// RUNTIME_FUNCTION table. All addresses inside the image are RVAs relative
// to its base, and the code is position-independent, so the same bytes can
// be placed at any address.
//
// Generation is deterministic: the same [Config] and the same math/rand/v2
// source give the same image. [Config.Omit] leaves kinds of code out and
// [Config.Rare] makes them rare, for consumers (such as differential tests
// against other unwinders) that must treat some of them specially.
//
// # What is generated
//
// Prologs use every version 1 unwind operation with the instructions a
// compiler emits for it:
//
//   - UWOP_PUSH_NONVOL: push rbx, rbp, rsi, rdi, r12–r15 (REX.B for r8 and up);
//   - UWOP_ALLOC_SMALL: sub rsp, 8..128;
//   - UWOP_ALLOC_LARGE: sub rsp, imm32, in the scaled 16-bit form (up to
//     512K−8) and the unscaled 32-bit form (OpInfo 1), also for sizes the
//     16-bit form could hold;
//   - UWOP_SET_FPREG: lea reg, [rsp+16*k] (or mov reg, rsp for k = 0) with
//     frame registers rbx, rbp, rsi, rdi and r12–r15;
//   - UWOP_SAVE_NONVOL and UWOP_SAVE_NONVOL_FAR: mov [rsp+disp], reg, or the
//     same relative to the frame register, into the fixed allocation or the
//     caller's home area;
//   - UWOP_SAVE_XMM128 and UWOP_SAVE_XMM128_FAR: movaps [rsp+disp], xmm6–xmm15;
//   - UWOP_PUSH_MACHFRAME with and without an error code, for functions
//     entered like interrupt handlers (the processor pushed the machine
//     frame; the code is at prolog offset 0).
//
// Bodies hold nops, ALU operations on volatile registers, calls, jumps
// inside the entry, branches between the entries of a chained function,
// and, in frame-register functions, dynamic stack allocations.
//
// Epilogs take every form the version 1 epilog scan accepts ("x64
// exception handling", "Epilog code"; the Windows unwinder's VirtualUnwind):
// an optional add rsp, imm8 or imm32, or lea rsp, [fp+disp] with a disp8 or
// disp32 off the frame register; pops with and without REX prefixes; and ret, ret imm16, rep ret, jmp rel8 and
// rel32 out of the function, a jump back to the function's start, jmp
// [rip+disp32] and REX.W jmp r/m64, each optionally with the f2 (bnd)
// prefix. A function can have several epilogs. Machine-frame functions
// leave through iretq instead.
//
// Functions can have exception and termination handlers (with handler
// data), chained fragments with and without unwind codes of their own, or
// unwind information without any unwind codes (leaf functions). Version 2
// unwind information, whose UWOP_EPILOG codes describe the epilogs, is
// generated for eligible functions unless [FeatVersion2] is omitted.
//
// # Executable chains
//
// The code of an ordinary image is only for unwinding: its bodies jump and
// call at random, allocate with a garbage size, and its epilogs jump out of
// the function. With [Config.Executable] set, [Build] generates instead a
// call chain that runs, for tests that execute generated code and walk a
// live stack through it. Function i's body is straight-line harmless
// instructions (nops, ALU operations on volatile registers, mov of
// immediates, compares) with exactly one call rel32 of function i+1; the
// last function's body loops for ever on the pause system call
// (mov eax, 34; syscall; jmp back to the mov), so that a thread entering
// function 0 blocks with all n functions on its stack. Each function is
// entered by a call from code that keeps RSP 16-byte aligned and that
// reserves the Windows home area, as the Microsoft x64 calling convention
// has it (from C, through a function pointer declared
// __attribute__((ms_abi))), and does the same for its callee: its pushes
// and fixed allocation keep RSP 16-byte aligned at the call and at every
// movaps, and the lowest [HomeArea] bytes of the allocation stay free for
// the callee. Register saves go above them or into the function's own home
// area.
//
// [ExecutableOmits] lists what such an image leaves out: machine frames,
// chained fragments, ret imm16, jumps out of epilogs (tail calls and
// recursion), jumps into epilogs, dynamic allocations, and the r12 lea
// forms Windows misreads. Everything else still varies: pushes of any
// nonvolatile registers, frame registers with any offset, the small and
// both large allocation forms (large frames take up to [MaxFrame] of
// stack each, so the running thread needs a stack large enough for the
// sum), SAVE_NONVOL(_FAR) and SAVE_XMM128(_FAR), version 2 unwind
// information, handlers (never invoked), leaf unwind information for the
// last function, and several epilogs per function with add or lea
// deallocation and ret, rep ret or bnd ret. Only the prolog and the body
// up to the call, or the loop, ever run; the epilogs are never reached: the
// last function does not return.
//
// Images built without Executable are the same, byte for byte, as before
// the flag existed.
//
// # Machine state
//
// Every [Inst] carries the [State] before it executes, relative to the
// value E that RSP had when the function was entered: where RSP and the
// frame register are, and where the caller's value of each register the
// function saved can be found. From it a test builds a consistent register
// file and stack for any instruction boundary and knows what a correct
// unwind returns: the caller's RIP from [E], RSP = E+8 (or both from the
// machine frame), and every saved register from its slot.
package jitgen
