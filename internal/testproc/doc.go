// Package testproc gives tests of live stack walking their subjects and
// oracles: processes whose threads stand still at known depths in known
// functions, and what gdb and eu-stack say about those threads.
//
// # Subjects
//
// The subjects are built from the sources in testdata and cached under
// os.UserCacheDir()/fntable/testproc in a directory named by a hash of the
// sources (for Go programs, of every non-standard package they are built
// from), the commands and the tools' versions. [Start] runs one, waits for
// its "ready" line and kills it when the test ends.
//
//   - testdata/threads.c ([BuildC], one binary per [CVariant]): main and N
//     worker threads recurse through f1 → f2 → f3 → f1 … to depth D and
//     block in nanosleep, read, pthread_cond_wait, pause, a raw futex wait
//     or (main) poll; optionally one more thread blocks inside a SIGUSR1
//     handler running on a sigaltstack. Flags: -n N, -d D, -s, -T seconds.
//     The file's header comment gives the exact stack of every thread.
//   - testdata/goprog ([BuildGo]): goroutines blocked on a channel, in
//     time.Sleep and (on a locked OS thread, announced) in read of a pipe,
//     each under a recursion main.recA → main.recB → main.recC … of depth
//     D. Flags: -d D, -T seconds.
//   - testdata/jitprog ([BuildJIT]): a cgo program that generates x86-64
//     code at run time, registers its RUNTIME_FUNCTIONs with a published
//     functable.Registry, and runs it on C threads: on thread jit-pause,
//     jit_thread_main → jit_a1 → jit_a2 → jit_a3, which loops on a raw
//     syscall instruction (pause); on thread jit-callback,
//     jit_thread_main → jit_b1 → jit_b2 → jit_b3 → c_block, a C function
//     blocked in read. The prologs (pushes, a frame register, saves with
//     mov) are listed in its main.go. Flags: -noregistry leaves the code
//     unregistered, -T seconds.
//   - testdata/jitgenprog ([BuildJITGen]): a cgo program that builds an
//     executable call chain of N functions with package jitgen
//     (Config.Executable, seeded by -seed), maps it read-execute,
//     registers its RUNTIME_FUNCTIONs with a published
//     functable.Registry, and runs it on one C thread, jitgen:
//     jitgen_thread_main → f0 → f1 → … → f<N-1>, which loops on a raw
//     syscall instruction (pause). jitgen_thread_main calls f0 through a
//     pointer to an ms_abi function, so the chain is entered as Windows
//     code is. Flags: -seed S, -n N (default 12), -T seconds.
//   - testdata/winspin.c ([StartWine]): a Windows program built with
//     MinGW-w64 and run under Wine, spinning in main → f1 → f2 → f3.
//
// # Announcements
//
// Every subject writes lines to its standard output and ends with the
// ready line; [Start] parses them into a [Proc]:
//
//	thread <tid> <role> [<key> <value>]...   Proc.Threads, Proc.Attrs
//	jit <name> <begin> <end>                 Proc.JIT (hex, [begin, end))
//	fn <name> <addr>                         Proc.Funcs (hex)
//	ready <pid>                              (Wine: "ready")
//
// threads.c: "thread <tid> <main|worker-i|sigalt> depth <D> wait <kind>
// [altstack <lo>-<hi>]"; goprog: "thread <tid> read depth <D> wait read"
// (its other goroutines are announced as "goroutine <role> depth <D>",
// which only Lines keeps); jitprog: "thread <tid> <jit-pause|jit-callback>
// wait <pause|read> depth 3"; jitgenprog: "thread <tid> jitgen seed <S>
// n <N> wait pause depth <N>", and "jit f<i> <begin> <end>" for the
// function with jitgen ID i. A subject writes its ready line only once
// every announced thread is blocked in its system call, as
// /proc/self/task/TID/syscall shows.
//
// # Oracles
//
// [GDBStacks] attaches gdb to the process and reads every thread's frames
// through gdb's Python API; [EuStack] runs eu-stack. Both return the
// frames of each thread, innermost first, as [OracleFrame] values, whose
// documentation says exactly what their PC and SP mean so that a walker's
// frames can be compared like with like.
//
// # What gdb shows
//
// On threads.c, in every variant (-O0 to -O2, with and without frame
// pointers), gdb's stack of each thread is complete and ends with Stop
// "outermost": libc's system call wrapper (sometimes doubled by an inline
// frame), park, the D recursion frames, thread_main, start_thread, clone3
// (main: main, __libc_start_call_main, __libc_start_main_impl, _start).
// The sigalt thread shows read, park, sig_f2, sig_f1, on_signal, the
// sigtramp frame __restore_rt, __pthread_kill_implementation, a tail-call
// frame __pthread_kill_esrch that gdb invents from call-site information,
// sigalt_park, the recursion and thread_main; eu-stack gives the same PCs
// once [Physical] has dropped the inline and tail-call frames.
//
// On goprog, the read thread shows internal/runtime/syscall/linux.Syscall6,
// syscall.RawSyscall6, syscall.Syscall, syscall.read, syscall.Read
// (inline), main.park, the recursion, main.main.func…, runtime.goexit and
// then a frame with PC 0, where gdb stops with "no reason".
//
// On jitprog, gdb cannot unwind generated code (it reads neither the
// published list nor the UNWIND_INFO, registered or not): on jit-pause,
// frame 0 is in jit_a3 without a name and frame 1 has PC 0 ("no
// reason"); on jit-callback, read and c_block are right, the frame in
// jit_b3 is found, and after it gdb takes successive stack slots for
// return addresses (SP growing by 8) until one is 0. It never reaches
// jit_thread_main. The Windows model does: TestJIT unwinds from gdb's
// first generated frame with the published table and package unwind to
// jit_thread_main.
//
// On jitgenprog (N ≥ 2), gdb likewise stops in the generated code: frame 0 is
// in f<N-1>, and frame 1 has PC 0, unless f<N-1> is a leaf (no unwind
// codes, the return address at RSP): then frame 1 is right, in f<N-2>,
// and frame 2 has PC 0.
//
// On winspin.exe under Wine, gdb knows no PE unwind information: frame 0
// is in f3 and frame 1 in f2 (f3 is a leaf, so the return address is at
// RSP), and after that gdb misreads f2's frame and stops at a PC of 0;
// eu-stack stops after frame 0.
//
// Functions whose tool (gcc, go, gdb, eu-stack, wine) is missing skip the
// test with the reason, or fail it when the environment variable CI is
// non-empty (see internal/testenv).
package testproc
