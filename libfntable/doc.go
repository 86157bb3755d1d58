// Libfntable is the C API of fntable: the Windows x64 dynamic function
// table functions of winnt.h (RtlAddFunctionTable,
// RtlInstallFunctionTableCallback, RtlAddGrowableFunctionTable,
// RtlGrowFunctionTable, RtlDeleteGrowableFunctionTable,
// RtlDeleteFunctionTable, RtlLookupFunctionEntry and RtlVirtualUnwind) for
// C and C++ programs on Linux x86-64, so that a JIT keeps its Windows code
// for registering and unwinding generated code.
//
// It is built as a library, not run:
//
//	go build -buildmode=c-shared -o libfntable.so ./libfntable
//	go build -buildmode=c-archive -o libfntable.a ./libfntable
//
// Programs include fntable.h, which declares the API with the winnt.h
// types, documents each function and the ownership of what it is given
// and returns, and check the layouts (CONTEXT is 1232 bytes). README.md
// describes building, linking and the differences from Windows; example/
// holds a small JIT in C that uses every function.
//
// The functions are implemented by a [functable.Registry] (tables) and
// [unwind.Unwinder] (RtlVirtualUnwind), reading the process's own memory
// through the kernel with internal/procmem (process_vm_readv(2)), so that
// bad pointers on the stack or in unwind information are reported, not
// faulted on. Each C function is
// defined in fntable.c with its exact winnt.h signature and calls a Go
// function exported under an fntable* name, which returns an NTSTATUS;
// FntableLastError returns it per thread.
//
// The cgo parts build for linux/amd64 with cgo only; elsewhere the package
// is an empty command, so that the module builds and vets on every OS.
//
// References: Microsoft, "RtlAddFunctionTable",
// "RtlInstallFunctionTableCallback", "RtlAddGrowableFunctionTable",
// "RtlLookupFunctionEntry", "RtlVirtualUnwind" (winnt.h), and "x64
// exception handling".
package main
