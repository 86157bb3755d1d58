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
//     time.Sleep and (on a locked OS thread) in read of a pipe, each under
//     a recursion of depth D. Flag: -d D.
//   - testdata/jitprog ([BuildJIT]): a cgo program that generates x86-64
//     code at run time, registers its RUNTIME_FUNCTIONs with a published
//     [functable.Registry], and runs it on C threads: one thread's chain
//     jit_a1 → jit_a2 → jit_a3 blocks in a raw syscall instruction, the
//     other's jit_b1 → jit_b2 → jit_b3 calls back into C, which blocks in
//     read. Flag: -noregistry leaves the code unregistered.
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
// # Oracles
//
// [GDBStacks] attaches gdb to the process and reads every thread's frames
// through gdb's Python API; [EuStack] runs eu-stack. Both return the
// frames of each thread, innermost first, as [OracleFrame] values, whose
// documentation says exactly what their PC and SP mean so that a walker's
// frames can be compared like with like.
//
// Functions whose tool (gcc, go, gdb, eu-stack, wine) is missing skip the
// test with the reason, or fail it when the environment variable CI is
// non-empty (see internal/testenv).
package testproc
