// Package target describes what the debugger side of fntable works on: an
// address space (memory) with the modules loaded in it, whether it is a
// live process (package target/live), a minidump, or no process at all.
//
// The symbol handler (package symhandler) and the stack walker take a
// [Target]; they never know where the memory and the module list come
// from.
package target
