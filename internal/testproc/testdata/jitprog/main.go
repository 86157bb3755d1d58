// Command jitprog is a test subject of package testproc: a process whose
// threads are stopped inside code generated at run time, between C frames.
//
// It generates six x86-64 functions into an anonymous mapping (written
// while read-write, then made read-execute), with Windows x64 UNWIND_INFO
// that matches their prologs, and registers their RUNTIME_FUNCTIONs with a
// published functable.Registry, so that another process finds them in the
// memfd named fntable-function-tables. Two C threads (pthreads started by
// cthreads.c, so their outer frames are start_thread and clone3 with CFI)
// then run them:
//
//	jit-pause:    jit_thread_main → jit_a1 → jit_a2 → jit_a3, which loops on
//	              a raw syscall instruction (pause)
//	jit-callback: jit_thread_main → jit_b1 → jit_b2 → jit_b3 → c_block,
//	              a C function that blocks in read(2) on a pipe
//
// The three shapes, each calling the next function through RAX (mov rax,
// imm64; call rax):
//
//	jit_a1, jit_b1: push rbx; push rsi; sub rsp, 0x28     PUSH_NONVOL ×2, ALLOC_SMALL
//	jit_a2, jit_b2: push rbp; sub rsp, 0x30; lea rbp, [rsp+0x20]
//	                                                       PUSH_NONVOL, ALLOC_SMALL, SET_FPREG (rbp, offset 0x20)
//	jit_a3, jit_b3: sub rsp, 0x38; mov [rsp+0x20], rbx; mov [rsp+0x28], r12
//	                                                       ALLOC_SMALL, SAVE_NONVOL ×2
//
// When both threads are blocked, it writes
//
//	jit <name> <begin> <end>           for each function (hex, [begin, end))
//	thread <tid> <role> wait <kind> depth 3
//	ready <pid>
//
// Flags: -noregistry leaves the functions unregistered; -T seconds exits
// after that long (default 600; 0: never).
package main

/*
#include "cthreads.h"
*/
import "C"

import (
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/unwindinfo"
)

const (
	sysPause = 34     // x86-64 system call number of pause
	sysRead  = 0      // and of read
	pageSize = 0x1000 // size of the code mapping
	infoBase = 0x800  // offset of the first UNWIND_INFO in the mapping
)

// fn is one generated function.
type fn struct {
	name string
	off  uint32 // offset in the mapping
	code []byte // machine code; a zero imm64 after 48 b8 is patched with the callee
	info unwindinfo.Info
	call string // name of the function it calls: another fn, or "c_block"
}

// shape1 is push rbx; push rsi; sub rsp, 0x28; mov rax, callee; call rax.
func shape1(name, callee string) fn {
	code := []byte{
		0x53,                   // 00: push rbx
		0x56,                   // 01: push rsi
		0x48, 0x83, 0xec, 0x28, // 02: sub rsp, 0x28
		0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, // 06: mov rax, callee
		0xff, 0xd0, // 10: call rax
		0x90,                   // 12: nop, so the return address is not the epilog
		0x48, 0x83, 0xc4, 0x28, // 13: add rsp, 0x28
		0x5e, // 17: pop rsi
		0x5b, // 18: pop rbx
		0xc3, // 19: ret
	}
	info := unwindinfo.Info{Version: 1, SizeOfProlog: 6, Codes: []unwindinfo.Code{
		{Offset: 6, Op: unwindinfo.UWOP_ALLOC_SMALL, OpInfo: (0x28 - 8) / 8},
		{Offset: 2, Op: unwindinfo.UWOP_PUSH_NONVOL, OpInfo: uint8(unwindinfo.RSI)},
		{Offset: 1, Op: unwindinfo.UWOP_PUSH_NONVOL, OpInfo: uint8(unwindinfo.RBX)},
	}}
	return fn{name: name, code: code, info: info, call: callee}
}

// shape2 is push rbp; sub rsp, 0x30; lea rbp, [rsp+0x20]; mov rax,
// callee; call rax, with rbp as the frame register.
func shape2(name, callee string) fn {
	code := []byte{
		0x55,                   // 00: push rbp
		0x48, 0x83, 0xec, 0x30, // 01: sub rsp, 0x30
		0x48, 0x8d, 0x6c, 0x24, 0x20, // 05: lea rbp, [rsp+0x20]
		0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, // 0a: mov rax, callee
		0xff, 0xd0, // 14: call rax
		0x90,                   // 16: nop
		0x48, 0x8d, 0x65, 0x10, // 17: lea rsp, [rbp+0x10]
		0x5d, // 1b: pop rbp
		0xc3, // 1c: ret
	}
	info := unwindinfo.Info{Version: 1, SizeOfProlog: 0x0a, FrameRegister: unwindinfo.RBP, FrameOffset: 2, Codes: []unwindinfo.Code{
		{Offset: 0x0a, Op: unwindinfo.UWOP_SET_FPREG},
		{Offset: 0x05, Op: unwindinfo.UWOP_ALLOC_SMALL, OpInfo: (0x30 - 8) / 8},
		{Offset: 0x01, Op: unwindinfo.UWOP_PUSH_NONVOL, OpInfo: uint8(unwindinfo.RBP)},
	}}
	return fn{name: name, code: code, info: info, call: callee}
}

// shape3Prolog is sub rsp, 0x38; mov [rsp+0x20], rbx; mov [rsp+0x28], r12.
var shape3Prolog = []byte{
	0x48, 0x83, 0xec, 0x38, // 00: sub rsp, 0x38
	0x48, 0x89, 0x5c, 0x24, 0x20, // 04: mov [rsp+0x20], rbx
	0x4c, 0x89, 0x64, 0x24, 0x28, // 09: mov [rsp+0x28], r12
}

// shape3Epilog restores what shape3Prolog saved and returns.
var shape3Epilog = []byte{
	0x48, 0x8b, 0x5c, 0x24, 0x20, // mov rbx, [rsp+0x20]
	0x4c, 0x8b, 0x64, 0x24, 0x28, // mov r12, [rsp+0x28]
	0x48, 0x83, 0xc4, 0x38, // add rsp, 0x38
	0xc3, // ret
}

func shape3Info() unwindinfo.Info {
	return unwindinfo.Info{Version: 1, SizeOfProlog: 0x0e, Codes: []unwindinfo.Code{
		{Offset: 0x0e, Op: unwindinfo.UWOP_SAVE_NONVOL, OpInfo: uint8(unwindinfo.R12), Operand: 0x28 / 8},
		{Offset: 0x09, Op: unwindinfo.UWOP_SAVE_NONVOL, OpInfo: uint8(unwindinfo.RBX), Operand: 0x20 / 8},
		{Offset: 0x04, Op: unwindinfo.UWOP_ALLOC_SMALL, OpInfo: (0x38 - 8) / 8},
	}}
}

// shape3Syscall is the shape 3 prolog, then a loop on the pause system
// call; the epilog after it is never reached.
func shape3Syscall(name string) fn {
	code := append([]byte{}, shape3Prolog...)
	code = append(code,
		0xb8, sysPause, 0, 0, 0, // 0e: mov eax, 34 (pause)
		0x0f, 0x05, // 13: syscall
		0xeb, 0xf7, // 15: jmp 0e
	)
	code = append(code, shape3Epilog...)
	return fn{name: name, code: code, info: shape3Info()}
}

// shape3Call is the shape 3 prolog, then a call of callee through RAX,
// with the caller's RDI (the C argument) untouched.
func shape3Call(name, callee string) fn {
	code := append([]byte{}, shape3Prolog...)
	code = append(code,
		0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, // 0e: mov rax, callee
		0xff, 0xd0, // 18: call rax
		0x90, // 1a: nop
	)
	code = append(code, shape3Epilog...)
	return fn{name: name, code: code, info: shape3Info(), call: callee}
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("jitprog: ")
	noRegistry := flag.Bool("noregistry", false, "do not register the generated functions")
	lifetime := flag.Int("T", 600, "exit after this many `seconds` (0: never)")
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}

	fns := []fn{
		shape1("jit_a1", "jit_a2"), shape2("jit_a2", "jit_a3"), shape3Syscall("jit_a3"),
		shape1("jit_b1", "jit_b2"), shape2("jit_b2", "jit_b3"), shape3Call("jit_b3", "c_block"),
	}
	mem, err := syscall.Mmap(-1, 0, pageSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		log.Fatal(err)
	}
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	addr := map[string]uint64{"c_block": uint64(C.c_block_addr())}
	off := uint32(0)
	for i := range fns {
		fns[i].off = off
		addr[fns[i].name] = base + uint64(off)
		off += (uint32(len(fns[i].code)) + 0x3f) &^ 0x3f
	}
	if off > infoBase {
		log.Fatalf("code overflows into the unwind info: %#x", off)
	}
	infoOff := uint32(infoBase)
	var table []unwindinfo.RuntimeFunction
	for _, f := range fns {
		code := append([]byte{}, f.code...)
		if f.call != "" {
			i := strings.Index(string(code), "\x48\xb8\x00\x00\x00\x00\x00\x00\x00\x00")
			if i < 0 {
				log.Fatalf("%s: no mov rax, imm64 to patch", f.name)
			}
			binary.LittleEndian.PutUint64(code[i+2:], addr[f.call])
		}
		copy(mem[f.off:], code)
		info, err := f.info.Encode()
		if err != nil {
			log.Fatalf("%s: %v", f.name, err)
		}
		if err := f.info.Validate(); err != nil {
			log.Fatalf("%s: %v", f.name, err)
		}
		if int(infoOff)+len(info) > len(mem) {
			log.Fatal("unwind info overflows the mapping")
		}
		copy(mem[infoOff:], info)
		table = append(table, unwindinfo.RuntimeFunction{BeginAddress: f.off, EndAddress: f.off + uint32(len(code)), UnwindData: infoOff})
		infoOff = (infoOff + uint32(len(info)) + 3) &^ 3
	}
	if err := syscall.Mprotect(mem, syscall.PROT_READ|syscall.PROT_EXEC); err != nil {
		log.Fatal(err)
	}

	var reg *functable.Registry
	if !*noRegistry {
		reg, err = functable.New(functable.Options{Publish: true})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := reg.AddFunctionTable(table, base); err != nil {
			log.Fatal(err)
		}
	}

	var never [2]int
	if err := syscall.Pipe(never[:]); err != nil {
		log.Fatal(err)
	}
	type thread struct {
		tid  int
		role string
		wait string
		nr   int    // the system call it blocks in
		in   string // the function its PC is in while blocked, if generated
	}
	threads := []*thread{
		{role: "jit-pause", wait: "pause", nr: sysPause, in: "jit_a3"},
		{role: "jit-callback", wait: "read", nr: sysRead},
	}
	for _, th := range threads {
		entry := addr["jit_a1"]
		if th.role == "jit-callback" {
			entry = addr["jit_b1"]
		}
		name := C.CString(th.role)
		th.tid = int(C.start_jit_thread(C.uintptr_t(entry), C.long(never[0]), name))
		if th.tid < 0 {
			log.Fatal("cannot start a thread")
		}
	}
	for _, th := range threads {
		var lo, hi uint64
		if th.in != "" {
			for _, f := range table {
				if addr[th.in] == base+uint64(f.BeginAddress) {
					lo, hi = base+uint64(f.BeginAddress), base+uint64(f.EndAddress)
				}
			}
		}
		waitBlocked(th.tid, th.nr, lo, hi)
	}

	var out strings.Builder
	for _, f := range table {
		for _, g := range fns {
			if g.off == f.BeginAddress {
				fmt.Fprintf(&out, "jit %s %#x %#x\n", g.name, base+uint64(f.BeginAddress), base+uint64(f.EndAddress))
			}
		}
	}
	for _, th := range threads {
		fmt.Fprintf(&out, "thread %d %s wait %s depth 3\n", th.tid, th.role, th.wait)
	}
	fmt.Fprintf(&out, "ready %d\n", os.Getpid())
	os.Stdout.WriteString(out.String())

	if *lifetime > 0 {
		time.AfterFunc(time.Duration(*lifetime)*time.Second, func() { os.Exit(0) })
	}
	for {
		time.Sleep(time.Hour)
		runtime.KeepAlive(reg)
		runtime.KeepAlive(mem)
	}
}

// waitBlocked waits until thread tid is blocked in system call nr, with its
// PC in [lo, hi) unless hi is 0, as /proc/self/task/TID/syscall shows it.
func waitBlocked(tid, nr int, lo, hi uint64) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/syscall", tid))
		if err == nil {
			f := strings.Fields(string(data))
			if len(f) == 9 {
				n, _ := strconv.Atoi(f[0])
				pc, _ := strconv.ParseUint(f[8], 0, 64)
				if n == nr && (hi == 0 || lo <= pc && pc < hi) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			log.Fatalf("thread %d did not block in system call %d: %s %v", tid, nr, data, err)
		}
		time.Sleep(time.Millisecond)
	}
}
