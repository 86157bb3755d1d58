// Package verify checks that Windows x64 unwind information describes the
// machine code it belongs to: that every unwind code matches the prolog
// instruction it describes, that every exit of a function is an
// epilog the Windows unwinder recognizes, and that at every instruction
// boundary the Windows unwinder (emulated by package unwind) finds the same
// caller state as a symbolic execution of the code.
//
// UNWIND_INFO that decodes fine but does not describe its code is the
// silent unwind bug of a just-in-time compiler: nothing fails until an
// exception or a profiler interrupts the function at the wrong
// instruction. [Function] checks one function from its code bytes; a
// [Checker] checks whole function tables ([Checker.Table]) and adds the
// table-level checks: entries sorted and not overlapping, inside the code
// range, chained entries naming entries of the table, chains that end,
// handlers in executable memory.
//
// References:
//   - Microsoft, "x64 exception handling"
//     (https://learn.microsoft.com/cpp/build/exception-handling-x64):
//     "Unwind data for exception handling", "Unwind codes", "Epilog code".
//   - Microsoft, "x64 prolog and epilog"
//     (https://learn.microsoft.com/cpp/build/prolog-and-epilog): the
//     instructions a prolog and an epilog may contain, __chkstk.
//   - dotnet/runtime src/coreclr/unwinder/amd64/unwinder.cpp, Microsoft's
//     copy of RtlVirtualUnwind, which package unwind follows.
//
// # What is checked
//
// The code of each entry is decoded with golang.org/x/arch/x86/x86asm
// along its control flow from the entry point (then, for code no branch
// reaches, such as jump-table targets, linearly with the state of the
// function's body; the jump tables MSVC places in a function's code, runs
// of RVAs of the function, are data and not decoded). A symbolic execution
// tracks the stack pointer as an offset from its value E at the entry
// (for a chained fragment, E is the entry stack pointer of the primary
// function, and the state at the fragment's start is the effect of its
// parents' unwind codes, refined, in a table check, by the state the code
// before it reaches it with), the registers that hold E plus a constant
// (the frame register, or rax before a sub rsp, rax), and where the
// caller's value of every nonvolatile register is: in the register, in a
// stack slot, or both (saved and not changed since).
//
// Prolog ([KindCodeMismatch], [KindCodeOffset], [KindMissingCode],
// [KindExtraCode], [KindCodeOrder], [KindPrologSize]): the prolog is the
// instructions on the paths from the entry to SizeOfProlog (MSVC counts an
// early return before its deferred saves in the prolog; that return is
// not prolog). Every push or allocation code must match the instruction
// that ends at its offset: push reg to UWOP_PUSH_NONVOL (or, for a
// volatile register, to UWOP_ALLOC_SMALL 8, as LLVM allocates 8 bytes);
// sub rsp, n, lea rsp, [rsp-n] (and mov eax, n; call __chkstk; sub rsp,
// rax) to UWOP_ALLOC_SMALL/LARGE with the same size. A save code
// (UWOP_SAVE_NONVOL(_FAR), UWOP_SAVE_XMM128(_FAR)) must match a mov or
// (v)movaps/movdqa/movups/movdqu of its register to its slot, counted from
// the frame base, ending at or before its offset: until the register
// changes, its value is both in the register and in the slot, so the code
// may come later (MSVC saves to the caller's home space before its pushes
// and puts the code at the end of the prolog). UWOP_SET_FPREG states that
// from its offset on RSP = frame register − 16*FrameOffset; the lea or
// mov that sets the register may come before it (MinGW's GCC sets rbp
// before its pushes). Stores may go through any register holding E plus
// a constant (MSVC's mov rax, rsp; mov [rax+8], rbx). A mov or lea of rsp
// into another register than the header's frame register is a base for
// stores, not a frame pointer. Codes must be in descending offset order,
// and no code may lie past SizeOfProlog, which must be an instruction
// boundary.
//
// Exits ([KindEpilog], [KindEpilogRestore], [KindV2Epilog]): every ret,
// and every jmp that leaves the function (a tail call: a jump outside the
// entry that does not land in another entry of the same function, a jump
// to the function's start, jmp [rip+x], a REX.W jmp r/m64), must leave the
// stack as it was at the entry with every saved register restored, and
// the unwinder must see an epilog there: for version 1 unwind information
// by the instruction scan of package unwind (the Windows rules, quirks
// included); for version 2 from a UWOP_EPILOG code. Every version 2
// epilog descriptor must describe the pops and the terminator of an exit.
// Four shapes compilers emit that the unwinder gets wrong at a few
// instructions have kinds of their own: [KindFragmentEpilog],
// [KindPrologEpilog], [KindTailJump] (an indirect jmp without REX.W that
// leaves with the frame taken down) and [KindSplitJump] (a jmp with the
// frame up into another, unchained entry whose unwind information
// describes that frame).
//
// Every boundary ([KindUnwindMismatch]): the unwinder is run on a
// synthetic stack in which every 8-byte word holds a value derived from
// its address, and must return the caller's RSP (E+8, or the machine
// frame's), the return address, and every nonvolatile register and XMM6 to
// XMM15 as the symbolic state says; a disagreement is reported with the
// offset, the instruction and what each side says, once per distinct
// disagreement in a function. A register saved outside the prolog (which
// no unwind code can describe) and then changed is expected from its slot.
//
// # Limits
//
// Where the symbolic execution loses the stack pointer (an instruction
// writes rsp in a way it does not model, or a dynamic allocation in a
// function without frame register), boundaries are not compared until it
// is known again. Instructions x86asm cannot decode end the check of the
// code after them until a branch target is reached (x86asm's lengths of
// VZEROUPPER and VZEROALL, one byte too many, are corrected). Registers
// the function changes without saving them are not tracked (the check is
// of the unwind information, not of the calling convention). The state of
// registers before an entry's first instruction is not known: an entry
// that starts after the instruction that sets the register its prolog
// allocates through (perlasm's lea rax, [rsp-x] before .LSEH_begin) gets
// code-mismatch and extra-code problems although its information is right.
// The problems the checker reports on real images, and why, are listed in
// the tests (image_test.go).
//
// # Robustness
//
// Code, unwind information and tables may be corrupt or hostile. The
// checker never panics and its work is bounded: at most [MaxCodeSize]
// bytes of code per entry, chains of at most unwindinfo.ChainLimit links.
// FuzzFunction enforces this.
package verify
