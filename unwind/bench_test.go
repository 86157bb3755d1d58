package unwind_test

import (
	"encoding/binary"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// The benchmarks below reproduce the frames of the Wine reference benchmark
// (../shared/wine/common.h and bench.c; bench/wine/unwind_bench.c measures
// the same cases under Wine's ntdll) so that bench/compare.sh can put both
// figures side by side. Keep the benchmark names: figures are compared
// across versions by name.
//
// Each VirtualUnwind iteration copies a prepared Context and unwinds one
// frame. The copy-ns/op metric is the cost of the copy alone, measured by
// the same loop without the unwind; the Wine figures subtract the copy of
// the CONTEXT, so compare.sh compares ns/op − copy-ns/op.

// JIT page layout, as in common.h.
const (
	benchJITBase = 0x7ff6b2c40000 // a VirtualAlloc-like address
	benchJITSize = 0x1000

	benchOffF1    = 0x000
	benchOffF2    = 0x100
	benchOffF3    = 0x200
	benchOffF3B   = 0x240
	benchOffTramp = 0x300
	benchOffUI1   = 0x800
	benchOffUI2   = 0x840
	benchOffUI3   = 0x880
	benchOffUI3B  = 0x8c0
	benchOffRF    = 0x900

	benchLenF1  = 0x2a
	benchLenF2  = 0x29
	benchLenF3  = 0x31
	benchLenF3B = 0x10

	// benchHandler is what F2's handler trampoline jumps to.
	benchHandler = 0x7ff6b2c51230
)

// Stack region: 512 slots; S, the caller's RSP before the call, is slot
// 256, which holds the return address.
const (
	benchStackBase = 0xa12f7fe000
	benchS         = benchStackBase + 256*8
	benchRetAddr   = 0x7ff6a1b01234 // return address into the caller
)

func benchUnwindCode(off uint8, op unwindinfo.Op, info uint8) uint16 {
	return uint16(off) | uint16(uint8(op)|info<<4)<<8
}

// benchJITPage returns the JIT page of common.h's jit_build: the same code
// bytes, UNWIND_INFO and RUNTIME_FUNCTIONs at the same offsets; the
// handler trampoline jumps to benchHandler.
func benchJITPage() (page []byte, rf []unwindinfo.RuntimeFunction) {
	le := binary.LittleEndian
	page = make([]byte, benchJITSize)
	for i := range page {
		page[i] = 0xcc
	}
	// F1: push rbp; push rbx; sub rsp,0x28 (no frame pointer).
	copy(page[benchOffF1:], []byte{
		0x55,                   // 00 push rbp
		0x53,                   // 01 push rbx
		0x48, 0x83, 0xec, 0x28, // 02 sub rsp,0x28
		0x48, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, // 06 mov rbx, imm64
		0x48, 0xbd, 0, 0, 0, 0, 0, 0, 0, 0, // 10 mov rbp, imm64
		0x48, 0x89, 0xc8, // 1a mov rax,rcx
		0x48, 0x89, 0xd1, // 1d mov rcx,rdx
		0xff, 0xd0, // 20 call rax
		0x90,                   // 22 nop
		0x48, 0x83, 0xc4, 0x28, // 23 add rsp,0x28 (epilog)
		0x5b, // 27 pop rbx
		0x5d, // 28 pop rbp
		0xc3, // 29 ret
	})
	le.PutUint64(page[benchOffF1+0x08:], 0x1111111111111111)
	le.PutUint64(page[benchOffF1+0x12:], 0x2222222222222222)
	// F2: frame pointer rbp, exception handler.
	copy(page[benchOffF2:], []byte{
		0x55,                   // 00 push rbp
		0x53,                   // 01 push rbx
		0x48, 0x83, 0xec, 0x28, // 02 sub rsp,0x28
		0x48, 0x8d, 0x6c, 0x24, 0x20, // 06 lea rbp,[rsp+0x20]
		0x48, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, // 0b mov rbx, imm64
		0x48, 0x83, 0xec, 0x40, // 15 sub rsp,0x40 (dynamic alloca)
		0x48, 0x89, 0xc8, // 19 mov rax,rcx
		0x48, 0x89, 0xd1, // 1c mov rcx,rdx
		0xff, 0xd0, // 1f call rax
		0x90,                   // 21 nop
		0x48, 0x8d, 0x65, 0x08, // 22 lea rsp,[rbp+8] (epilog)
		0x5b, // 26 pop rbx
		0x5d, // 27 pop rbp
		0xc3, // 28 ret
	})
	le.PutUint64(page[benchOffF2+0x0d:], 0x3333333333333333)
	// F3: push rsi; sub rsp,0x100 (ALLOC_LARGE); mov [rsp+0x80],rdi (SAVE_NONVOL).
	copy(page[benchOffF3:], []byte{
		0x56,                                     // 00 push rsi
		0x48, 0x81, 0xec, 0x00, 0x01, 0x00, 0x00, // 01 sub rsp,0x100
		0x48, 0x89, 0xbc, 0x24, 0x80, 0, 0, 0, // 08 mov [rsp+0x80],rdi
		0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, // 10 body
		0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, // 18 body
		0x48, 0x8b, 0xbc, 0x24, 0x80, 0, 0, 0, // 20 mov rdi,[rsp+0x80]
		0x48, 0x81, 0xc4, 0x00, 0x01, 0x00, 0x00, // 28 add rsp,0x100 (epilog)
		0x5e, // 2f pop rsi
		0xc3, // 30 ret
	})
	for i := range benchLenF3B { // F3b, the cold part of F3: nops
		page[benchOffF3B+i] = 0x90
	}
	// Handler trampoline: mov rax, imm64; jmp rax.
	copy(page[benchOffTramp:], []byte{0x48, 0xb8})
	le.PutUint64(page[benchOffTramp+2:], benchHandler)
	copy(page[benchOffTramp+10:], []byte{0xff, 0xe0})

	codes := func(off int, c ...uint16) {
		for i, v := range c {
			le.PutUint16(page[off+4+2*i:], v)
		}
	}
	// UNWIND_INFO F1.
	copy(page[benchOffUI1:], []byte{1, 0x06, 3, 0})
	codes(benchOffUI1,
		benchUnwindCode(0x06, unwindinfo.UWOP_ALLOC_SMALL, 0x28/8-1),
		benchUnwindCode(0x02, unwindinfo.UWOP_PUSH_NONVOL, uint8(unwindinfo.RBX)),
		benchUnwindCode(0x01, unwindinfo.UWOP_PUSH_NONVOL, uint8(unwindinfo.RBP)),
		0)
	// UNWIND_INFO F2: EHANDLER, FrameRegister rbp, FrameOffset 2 (0x20).
	copy(page[benchOffUI2:], []byte{1 | uint8(unwindinfo.UNW_FLAG_EHANDLER)<<3, 0x0b, 4, uint8(unwindinfo.RBP) | 2<<4})
	codes(benchOffUI2,
		benchUnwindCode(0x0b, unwindinfo.UWOP_SET_FPREG, 0),
		benchUnwindCode(0x06, unwindinfo.UWOP_ALLOC_SMALL, 0x28/8-1),
		benchUnwindCode(0x02, unwindinfo.UWOP_PUSH_NONVOL, uint8(unwindinfo.RBX)),
		benchUnwindCode(0x01, unwindinfo.UWOP_PUSH_NONVOL, uint8(unwindinfo.RBP)))
	le.PutUint32(page[benchOffUI2+12:], benchOffTramp) // ExceptionHandler RVA
	le.PutUint32(page[benchOffUI2+16:], 0xDA7A0002)    // handler data
	// UNWIND_INFO F3.
	copy(page[benchOffUI3:], []byte{1, 0x10, 5, 0})
	codes(benchOffUI3,
		benchUnwindCode(0x10, unwindinfo.UWOP_SAVE_NONVOL, uint8(unwindinfo.RDI)), 0x80/8,
		benchUnwindCode(0x08, unwindinfo.UWOP_ALLOC_LARGE, 0), 0x100/8,
		benchUnwindCode(0x01, unwindinfo.UWOP_PUSH_NONVOL, uint8(unwindinfo.RSI)),
		0)
	// RUNTIME_FUNCTIONs.
	rf = []unwindinfo.RuntimeFunction{
		{BeginAddress: benchOffF1, EndAddress: benchOffF1 + benchLenF1, UnwindData: benchOffUI1},
		{BeginAddress: benchOffF2, EndAddress: benchOffF2 + benchLenF2, UnwindData: benchOffUI2},
		{BeginAddress: benchOffF3, EndAddress: benchOffF3 + benchLenF3, UnwindData: benchOffUI3},
		{BeginAddress: benchOffF3B, EndAddress: benchOffF3B + benchLenF3B, UnwindData: benchOffUI3B},
	}
	var tab []byte
	for _, f := range rf {
		tab = f.Append(tab)
	}
	copy(page[benchOffRF:], tab)
	// UNWIND_INFO F3b: chained to F3.
	copy(page[benchOffUI3B:], []byte{1 | uint8(unwindinfo.UNW_FLAG_CHAININFO)<<3, 0, 0, 0})
	copy(page[benchOffUI3B+4:], rf[2].Append(nil))
	return page, rf
}

// benchStack returns the stack region: every slot holds a plausible value
// (stack addresses above S, code addresses below), and the slots the
// frames save registers in hold recognisable ones.
func benchStack() []byte {
	st := make([]byte, 512*8)
	for i := range 512 {
		v := uint64(benchStackBase + 8*(i+8)) // looks like a saved frame address
		if i%3 == 0 {
			v = benchJITBase + 0x1000 + uint64(i)*0x37 // looks like a return address
		}
		binary.LittleEndian.PutUint64(st[8*i:], v)
	}
	put := func(addr, v uint64) { binary.LittleEndian.PutUint64(st[addr-benchStackBase:], v) }
	put(benchS, benchRetAddr)       // return address
	put(benchS-0x08, benchS+0x40)   // F1/F2: saved rbp; F3: saved rsi
	put(benchS-0x10, 0x00000000bb5) // F1/F2: saved rbx
	put(benchS-0x88, 0x00000000d15) // F3: saved rdi ([rsp+0x80] in the body)
	return st
}

// benchContext returns the Context of fill_ctx in common.h: CONTEXT_FULL
// and register r = 0xC0DE000000000000 | r<<8.
func benchContext() unwind.Context {
	var c unwind.Context
	c.ContextFlags = unwind.CONTEXT_FULL
	for r := range unwindinfo.Register(16) {
		c.SetReg(r, 0xC0DE000000000000|uint64(r)<<8)
	}
	return c
}

// benchFrame is one case of bench.c: a PC, RSP and RBP in a JIT frame.
type benchFrame struct {
	name     string
	fn       int // index in the JIT page's RUNTIME_FUNCTIONs
	off      uint64
	rsp, rbp uint64
	ht       unwind.HandlerType
	// Expected after the unwind.
	wantRSP   uint64
	wantRegs  map[unwindinfo.Register]uint64
	wantFrame uint64
	handler   bool
}

var benchFrames = []benchFrame{
	{name: "push-alloc", fn: 0, off: benchOffF1 + 0x1a, rsp: benchS - 0x38, ht: unwind.HandlerNone,
		wantRSP: benchS + 8, wantRegs: map[unwindinfo.Register]uint64{unwindinfo.RBX: 0xbb5, unwindinfo.RBP: benchS + 0x40}, wantFrame: benchS - 0x38},
	{name: "fp-ehandler", fn: 1, off: benchOffF2 + 0x19, rsp: benchS - 0x78, rbp: benchS - 0x18, ht: unwind.HandlerException,
		wantRSP: benchS + 8, wantRegs: map[unwindinfo.Register]uint64{unwindinfo.RBX: 0xbb5, unwindinfo.RBP: benchS + 0x40}, wantFrame: benchS - 0x38, handler: true},
	{name: "epilog", fn: 0, off: benchOffF1 + 0x23, rsp: benchS - 0x38, ht: unwind.HandlerNone,
		wantRSP: benchS + 8, wantRegs: map[unwindinfo.Register]uint64{unwindinfo.RBX: 0xbb5, unwindinfo.RBP: benchS + 0x40}, wantFrame: benchS - 0x38},
	{name: "alloc-large-save", fn: 2, off: benchOffF3 + 0x10, rsp: benchS - 0x108, ht: unwind.HandlerNone,
		wantRSP: benchS + 8, wantRegs: map[unwindinfo.Register]uint64{unwindinfo.RSI: benchS + 0x40, unwindinfo.RDI: 0xd15}, wantFrame: benchS - 0x108},
}

// benchSetup is the address space of the VirtualUnwind benchmarks.
type benchSetup struct {
	mem   *unwind.SplicedMemory
	rf    []unwindinfo.RuntimeFunction
	table *unwind.SortedTable
}

func newBenchSetup() *benchSetup {
	page, rf := benchJITPage()
	mem := new(unwind.SplicedMemory)
	mem.Add(benchJITBase, page)
	mem.Add(benchStackBase, benchStack())
	return &benchSetup{mem: mem, rf: rf, table: unwind.NewSortedTable(benchJITBase, rf)}
}

// context returns the prepared Context of frame f.
func (f *benchFrame) context() unwind.Context {
	c := benchContext()
	c.Rip = benchJITBase + f.off
	c.Rsp = f.rsp
	if f.rbp != 0 {
		c.Rbp = f.rbp
	}
	return c
}

// check fails b unless ctx and res are the state of f's caller.
func (f *benchFrame) check(b *testing.B, prep, ctx *unwind.Context, res unwind.Result, err error) {
	b.Helper()
	if err != nil {
		b.Fatalf("%s: %v", f.name, err)
	}
	if ctx.Rip != benchRetAddr || ctx.Rsp != f.wantRSP {
		b.Fatalf("%s: rip %#x rsp %#x, want %#x %#x", f.name, ctx.Rip, ctx.Rsp, uint64(benchRetAddr), f.wantRSP)
	}
	for r := range unwindinfo.Register(16) {
		want, ok := f.wantRegs[r]
		if !ok {
			want = prep.Reg(r)
		}
		if r != unwindinfo.RSP && ctx.Reg(r) != want {
			b.Fatalf("%s: %s %#x, want %#x", f.name, r, ctx.Reg(r), want)
		}
	}
	if res.EstablisherFrame != f.wantFrame {
		b.Fatalf("%s: establisher frame %#x, want %#x", f.name, res.EstablisherFrame, f.wantFrame)
	}
	var wantHandler, wantData uint64
	if f.handler {
		wantHandler, wantData = benchJITBase+benchOffTramp, benchJITBase+benchOffUI2+16
	}
	if res.HandlerRoutine != wantHandler || res.HandlerData != wantData {
		b.Fatalf("%s: handler %#x data %#x, want %#x %#x", f.name, res.HandlerRoutine, res.HandlerData, wantHandler, wantData)
	}
	if f.name == "epilog" != res.InEpilog() {
		b.Fatalf("%s: InEpilog %v", f.name, res.InEpilog())
	}
}

var (
	benchSinkU64 uint64
	benchCtx     unwind.Context // the Context the loops copy into and unwind
)

// benchCopyNsPerOp returns the cost of the Context copy of the VirtualUnwind
// loops: the median over 5 runs of a loop of 1<<20 copies into benchCtx.
func benchCopyNsPerOp(prep *unwind.Context) float64 {
	const n = 1 << 20
	var runs [5]float64
	var sum uint64
	for k := range runs {
		start := time.Now()
		for range n {
			benchCtx = *prep
			sum += benchCtx.Rip
		}
		runs[k] = float64(time.Since(start).Nanoseconds()) / n
	}
	benchSinkU64 += sum
	slices.Sort(runs[:])
	return runs[len(runs)/2]
}

// BenchmarkVirtualUnwind unwinds one frame of the Wine benchmark's JIT
// page: F1 in its body (push-alloc), F2 in its body with
// HandlerException (fp-ehandler), F1 at its epilog's add rsp (epilog) and
// F3 in its body (alloc-large-save). Each iteration copies the prepared
// Context and calls Unwinder.VirtualUnwind once.
func BenchmarkVirtualUnwind(b *testing.B) {
	benchVirtualUnwind(b, false)
}

// BenchmarkVirtualUnwindPointers is BenchmarkVirtualUnwind with a
// ContextPointers to fill in, as a debugger passes one.
func BenchmarkVirtualUnwindPointers(b *testing.B) {
	benchVirtualUnwind(b, true)
}

// benchVirtualUnwind runs the frames of benchFrames; withPtrs passes a
// ContextPointers (zeroed once, as its entries are overwritten with the
// same addresses at each step), and otherwise nil, as bench.c does.
func benchVirtualUnwind(b *testing.B, withPtrs bool) {
	s := newBenchSetup()
	u := unwind.Unwinder{Memory: s.mem, Functions: s.table}
	for i := range benchFrames {
		f := &benchFrames[i]
		b.Run(f.name, func(b *testing.B) {
			prep := f.context()
			fn := &s.rf[f.fn]
			pc := prep.Rip
			var ptrs *unwind.ContextPointers
			if withPtrs {
				ptrs = new(unwind.ContextPointers)
			}
			benchCtx = prep
			res, err := u.VirtualUnwind(f.ht, benchJITBase, pc, fn, &benchCtx, ptrs)
			f.check(b, &prep, &benchCtx, res, err)

			b.ReportAllocs()
			var sum uint64
			for b.Loop() {
				benchCtx = prep
				res, _ := u.VirtualUnwind(f.ht, benchJITBase, pc, fn, &benchCtx, ptrs)
				sum += res.EstablisherFrame
			}
			benchSinkU64 += sum
			b.ReportMetric(benchCopyNsPerOp(&prep), "copy-ns/op")
		})
	}
}

// benchStride and benchFnLen lay out the functions of the LookupImage
// tables: function i covers [i*benchStride, i*benchStride+benchFnLen).
const (
	benchStride    = 0x40
	benchFnLen     = 0x30
	benchTableBase = 0x7ff6c0000000
	benchNumPCs    = 4096 // a power of 2
)

// benchSplitmix64 is the PC generator; unwind_bench.c has the same one
// (splitmix64).
func benchSplitmix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// benchLookupTable returns n sorted entries sharing one UNWIND_INFO (F1's,
// placed after the last function) and benchNumPCs PCs spread over them:
// a random function, a random offset inside it.
func benchLookupTable(n int) (fns []unwindinfo.RuntimeFunction, pcs []uint64, want []uint32) {
	infoRVA := uint32(n * benchStride)
	fns = make([]unwindinfo.RuntimeFunction, n)
	for i := range fns {
		begin := uint32(i * benchStride)
		fns[i] = unwindinfo.RuntimeFunction{BeginAddress: begin, EndAddress: begin + benchFnLen, UnwindData: infoRVA}
	}
	seed := uint64(1)
	pcs = make([]uint64, benchNumPCs)
	want = make([]uint32, benchNumPCs)
	for i := range pcs {
		r := benchSplitmix64(&seed)
		k := uint32(r % uint64(n))
		off := uint32((r >> 32) % benchFnLen)
		want[i] = k * benchStride
		pcs[i] = benchTableBase + uint64(want[i]+off)
	}
	return fns, pcs, want
}

// BenchmarkLookupImage looks up PCs in one table of N sorted entries
// (a PE image's .pdata, or one RtlAddFunctionTable table) with Lookup,
// cycling through benchNumPCs pseudo-random PCs so that the branch
// predictor does not learn one search path.
func BenchmarkLookupImage(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run("entries="+strconv.Itoa(n), func(b *testing.B) {
			fns, pcs, want := benchLookupTable(n)
			table := unwind.NewSortedTable(benchTableBase, fns)
			var mem unwind.SplicedMemory // entries are direct: Lookup reads nothing
			for i, pc := range pcs {
				fn, base, ok, err := unwind.Lookup(table, &mem, pc)
				if !ok || err != nil || base != benchTableBase || fn.BeginAddress != want[i] {
					b.Fatalf("lookup %#x: %+v %#x %v %v, want begin %#x", pc, fn, base, ok, err, want[i])
				}
			}

			b.ReportAllocs()
			var sum uint64
			i := 0
			for b.Loop() {
				fn, _, _, _ := unwind.Lookup(table, &mem, pcs[i&(benchNumPCs-1)])
				sum += uint64(fn.BeginAddress)
				i++
			}
			benchSinkU64 += sum
		})
	}
}

// BenchmarkLookupUnwind is one frame step of a stack walk: Lookup of the
// PC in the JIT page's table, then VirtualUnwind, for F1 in its body (the
// push-alloc case). Each iteration copies the prepared Context first, as
// in BenchmarkVirtualUnwind.
func BenchmarkLookupUnwind(b *testing.B) {
	s := newBenchSetup()
	u := unwind.Unwinder{Memory: s.mem, Functions: s.table}
	f := &benchFrames[0]
	prep := f.context()
	benchCtx = prep
	fn, base, ok, err := unwind.Lookup(s.table, s.mem, benchCtx.Rip)
	if !ok || err != nil || fn != s.rf[f.fn] || base != benchJITBase {
		b.Fatalf("lookup %#x: %+v %#x %v %v", benchCtx.Rip, fn, base, ok, err)
	}
	res, err := u.VirtualUnwind(unwind.HandlerNone, base, benchCtx.Rip, &fn, &benchCtx, nil)
	f.check(b, &prep, &benchCtx, res, err)

	b.ReportAllocs()
	var sum uint64
	for b.Loop() {
		benchCtx = prep
		fn, base, _, _ := unwind.Lookup(s.table, s.mem, benchCtx.Rip)
		res, _ := u.VirtualUnwind(unwind.HandlerNone, base, benchCtx.Rip, &fn, &benchCtx, nil)
		sum += res.EstablisherFrame
	}
	benchSinkU64 += sum
	b.ReportMetric(benchCopyNsPerOp(&prep), "copy-ns/op")
}
