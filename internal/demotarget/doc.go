// Package demotarget is a real JIT target process for fntable demo and the
// stack walker's tests: a Go program that generates x86-64 code with
// package jitgen, registers it in the three kinds of dynamic function
// tables (static, callback and growable) of one published
// functable.Registry, and parks threads inside that code, each blocked in
// the pause system call made from JIT code, so that another process can
// stop it and walk every thread's stack through the tables it publishes.
// It also holds the example out-of-process provider library, in C, that
// resolves the target's callback table.
//
// References: Microsoft, "x64 exception handling" (UNWIND_INFO,
// RUNTIME_FUNCTION, the x64 calling convention's home area);
// "RtlAddFunctionTable", "RtlInstallFunctionTableCallback",
// "RtlAddGrowableFunctionTable", "RtlGrowFunctionTable" (winnt.h);
// "POUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK"; perf's
// tools/perf/Documentation/jit-interface.txt (the perf map).
//
// # Running it
//
// The target is not a program of its own: it runs as a re-execution of
// an executable that calls [Main] early, before it parses its own
// arguments (the fntable command, or a test binary in TestMain):
//
//	if demotarget.IsTarget() {
//		os.Exit(demotarget.Main(os.Args[1:]))
//	}
//
// [Start] does the re-execution with [EnvVar] set, reads the target's
// [Report], and returns a [Process] whose Close ends it. The target runs
// only on linux/amd64; elsewhere Main fails. Its flags (the arguments
// Main gets):
//
//	-seed N          jitgen seed of every chain (default 1): the same seed
//	                 gives the same code at the same offsets
//	-provider PATH   provider library of the callback table; without it
//	                 there is no callback table (the report says so)
//	-churn           keep registering and deleting other tables
//	-lifetime D      exit after D (default 10m; 0: never)
//
// # Address layout
//
// The target reserves one range of address space (PROT_NONE) and places
// everything in it, each piece on pages of its own, in this order:
//
//	R+0        metadata page: the JIT metadata block of the callback table
//	R+0x1000   static part:   the entry thunk, the "static" chain, the first
//	                          functions of the "mixed-a" image
//	b1         callback part: the rest of "mixed-a", the "callback" chain,
//	                          the first functions of the "mixed-b" image
//	b2         growable part: the rest of "mixed-b", then (while running)
//	                          the "grown" chain, up to R+growEnd
//	R+churnOff churn part:    images the churn goroutine registers and
//	                          deletes again (only with -churn)
//
// b1 and b2 are function boundaries inside the two mixed images: an image
// is contiguous (its calls are rel32), so a chain that crosses tables is
// one image whose functions are split into consecutive sub-ranges
// registered in different tables. Each table's base is the start of its
// range (the thunk for the static table, b1, b2), and its entries are the
// images' entries rebased to it; an image's UNWIND_INFO lies after its
// code, so the rebased RVAs stay positive. The generated code has no
// exception handlers (jitgen.FeatHandler is left out), so no UNWIND_INFO
// holds an RVA that rebasing would break. The mixed chain runs through
// both mixed images: the last call of "mixed-a" is relinked (its rel32
// rewritten) to the first function of "mixed-b", as a JIT links code it
// compiled separately; the function it called before, the image's
// original last one, stays registered but never runs.
//
// Every piece is mapped read-write, written, and then made read-execute
// (the metadata page read-only): no page is ever writable and executable
// at once.
//
// # Tables
//
//   - static (AddFunctionTable): the thunk, the "static" chain and the
//     static part of "mixed-a"; base: the thunk's address.
//   - callback (InstallFunctionTableCallback, identifier b1|3, range
//     [b1, b2)): only when a provider library is given (-provider); its
//     OutOfProcessCallbackDll is that path, and its published Context
//     (functable.Table.PublishNativeCallback) is the address of the
//     metadata block. In process, a Go callback answers lookups.
//   - growable (AddGrowableFunctionTable over [b2, R+growEnd)): grown
//     while the target runs, after the first threads are parked.
//
// # The JIT metadata block
//
// The callback table's Context points to a block that describes the
// table's functions, in the style of V8, which keeps its unwind data at
// the start of its code range; the example provider (provider.c) reads it
// from the target. Little-endian:
//
//	off  size       field
//	0    8          Magic    "FNTDEMO1" ([MetadataMagic])
//	8    4          Version  1 ([MetadataVersion])
//	12   4          Count    number of entries (at most [MaxMetadataEntries])
//	16   8          Base     the callback table's BaseAddress
//	24   12*Count   RUNTIME_FUNCTION entries, RVAs from Base, sorted
//
// # Threads
//
// Each JIT thread is a goroutine locked to its OS thread, named with
// prctl(PR_SET_NAME), that calls the entry thunk with purego.SyscallN (the
// C calling convention without cgo; the call releases its P as a cgo call
// does, so a thread blocked in JIT code stalls neither the scheduler nor
// the garbage collector). The thunk, itself JIT code with unwind
// information in the static table, converts from the System V to the
// Microsoft x64 convention (sub rsp, 0x28; mov rcx, rdi; call rsi; add
// rsp, 0x28; ret) and calls the chain's first function:
//
//	jit-static    thunk → static f0..f7                   (static table)
//	jit-mixed     thunk → mixed f0..f11: static → callback → growable
//	jit-callback  thunk → callback f0..f4                 (callback table)
//	jit-grown     thunk → grown f0..f2, code added after start (growable)
//	ordinary      a Go thread blocked in read(2) on a pipe, for contrast
//
// The last function of each chain loops on the pause system call. The
// target reports when every thread is blocked (pause, with the PC in the
// chain's last function, as /proc/self/task/TID/syscall shows it).
//
// A goroutine keeps allocating and calls runtime.GC periodically: the
// garbage collector keeps running while the JIT threads are blocked
// ([Process.Status] reports the count). The target writes a perf map,
// /tmp/perf-PID.map, naming every JIT function (jit_thunk, jit_static_f2,
// jit_mixed_f5, ...), and removes it when it exits. It allows any process
// of its user to trace it (prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY)), so
// a debugger or a provider that is not its ancestor can read its memory.
//
// # Protocol
//
// The target prints one JSON line, its [Report], on standard output once
// every thread is parked. Then it reads commands from standard input, one
// per line: "status" prints a [Status] as one JSON line. It exits when
// standard input ends, on SIGTERM, SIGINT or SIGHUP, or when its lifetime
// (-lifetime, 10 minutes by default) ends.
package demotarget
