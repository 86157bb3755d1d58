package unwind

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fntable/fntable/internal/jitgen"
	"github.com/fntable/fntable/unwindinfo"
)

// The fast path (fast.go) runs only when the Memory is a *SplicedMemory.
// These tests unwind the same frames through a SplicedMemory and through
// wrappers that hide it (the general path over ByteSource, and over
// ReadMemory alone), and require the same registers, results and errors.

// byteSourceMemory hides a SplicedMemory's type but keeps its ByteSource.
type byteSourceMemory struct{ *SplicedMemory }

// readOnlyMemory hides a SplicedMemory behind ReadMemory alone.
type readOnlyMemory struct{ m *SplicedMemory }

func (r readOnlyMemory) ReadMemory(p []byte, addr uint64) (int, error) {
	return r.m.ReadMemory(p, addr)
}

// fastStats counts the steps each fast path took in fastCompare.
type fastStats struct{ asm, goFast, compared int }

// fastCompare unwinds ctx three ways, each with and without context
// pointers, and reports the first difference. Then it calls each fast path
// directly: one that takes the step must agree with the general path, and
// one that declines it must leave the context and the pointers alone.
func fastCompare(mem *SplicedMemory, fns FunctionTable, ht HandlerType, imageBase uint64, fn *unwindinfo.RuntimeFunction, ctx Context, st *fastStats) error {
	type out struct {
		ctx  Context
		res  Result
		ptrs ContextPointers
		err  string
	}
	run := func(m Memory, withPtrs bool) out {
		c := ctx
		u := Unwinder{Memory: m, Functions: fns}
		var o out
		var ptrs *ContextPointers
		if withPtrs {
			ptrs = &o.ptrs
		}
		res, err := u.VirtualUnwind(ht, imageBase, ctx.Rip, fn, &c, ptrs)
		o.ctx, o.res = c, res
		if err != nil {
			o.err = err.Error()
			o.ctx, o.res, o.ptrs = Context{}, Result{}, ContextPointers{} // partly updated: not compared
		}
		return o
	}
	want := run(byteSourceMemory{mem}, true)
	for _, m := range []Memory{mem, readOnlyMemory{mem}} {
		for _, withPtrs := range []bool{true, false} {
			got := run(m, withPtrs)
			if !withPtrs {
				got.ptrs = want.ptrs
			}
			if got != want {
				return fmt.Errorf("%T (pointers %v): ctx %+v res %+v ptrs %+v err %q; general path (ByteSource): ctx %+v res %+v ptrs %+v err %q",
					m, withPtrs, got.ctx, got.res, got.ptrs, got.err, want.ctx, want.res, want.ptrs, want.err)
			}
		}
	}
	if st == nil {
		st = new(fastStats)
	}
	st.compared++

	paths := []struct {
		name string
		step func(c *Context, res *Result, ptrs *ContextPointers) bool
		took *int
	}{
		{"fastStep", func(c *Context, res *Result, ptrs *ContextPointers) bool {
			h, d, f, fl, ok := fastStep(mem, fn, c, ptrs, imageBase, ctx.Rip, ht)
			if ok {
				*res = Result{h, d, f, fl}
			}
			return ok
		}, &st.asm},
		{"fastUnwind", func(c *Context, res *Result, ptrs *ContextPointers) bool {
			return fastUnwind(mem, ht, imageBase, ctx.Rip, fn, c, res, ptrs)
		}, &st.goFast},
	}
	for _, p := range paths {
		for _, withPtrs := range []bool{true, false} {
			c := ctx
			var got out
			var ptrs *ContextPointers
			if withPtrs {
				ptrs = &got.ptrs
			}
			if !p.step(&c, &got.res, ptrs) {
				if c != ctx || got.ptrs != (ContextPointers{}) {
					return fmt.Errorf("%s declined the step but changed ctx to %+v, ptrs to %+v", p.name, c, got.ptrs)
				}
				continue
			}
			if withPtrs {
				*p.took++
			} else {
				got.ptrs = want.ptrs
			}
			got.ctx = c
			if got != want {
				return fmt.Errorf("%s (pointers %v): ctx %+v res %+v ptrs %+v; general path: ctx %+v res %+v ptrs %+v err %q",
					p.name, withPtrs, got.ctx, got.res, got.ptrs, want.ctx, want.res, want.ptrs, want.err)
			}
		}
	}
	return nil
}

// TestFastPathMatchesGeneral unwinds generated functions at every
// instruction boundary, with every feature jitgen has, through both paths;
// then again with stacks cut short and with damaged unwind information.
func TestFastPathMatchesGeneral(t *testing.T) {
	nfn := 1500
	if testing.Short() {
		nfn = 300
	}
	const seed = 0x5eed_fa57_0000_0001
	rng := rand.New(rand.NewPCG(seed, 1))
	img := jitgen.Build(jitgen.Config{Functions: nfn, Rare: wdRare}, rng)
	pts := wdMakePoints(img, rng, seed)
	const imageBase, stackBase = 0x7ff600000000, 0x10000000
	img.Base = imageBase
	stack := make([]byte, wineDiffStackSize)
	for j := range wineDiffStackSize / 8 {
		binary.LittleEndian.PutUint64(stack[8*j:], wdMix(seed+uint64(j)))
	}
	damaged := append([]byte(nil), img.Bytes...)

	var full, short, broken SplicedMemory
	full.Add(imageBase, img.Bytes)
	full.Add(stackBase, stack)
	short.Add(imageBase, img.Bytes)
	broken.Add(imageBase, damaged)
	broken.Add(stackBase, stack)

	failures := 0
	var st fastStats
	check := func(what string, mem *SplicedMemory, p *wdTestPoint, ht HandlerType, c Context) {
		if err := fastCompare(mem, img, ht, imageBase, &img.Table[p.entry], c, &st); err != nil {
			failures++
			if failures <= 10 {
				t.Errorf("%s: function at %#x, rva %#x, handler type %d: %v", what, p.e.Begin, p.in.RVA, ht, err)
			}
		}
	}
	for i := range pts {
		p := &pts[i]
		c := wdInput(p, i, seed, imageBase, stackBase)
		for ht := range HandlerType(4) {
			check("full stack", &full, p, ht, c)
		}
		// A stack that ends somewhere in the frame: some reads fail, or
		// reach past the end of the run.
		cut := c.Rsp - stackBase + uint64(rng.IntN(96))
		if cut < uint64(len(stack)) {
			var m SplicedMemory
			m.Add(imageBase, img.Bytes)
			m.Add(stackBase, stack[:cut])
			check("short stack", &m, p, HandlerType(rng.IntN(3)), c)
		}
		check("no stack", &short, p, HandlerNone, c)
	}
	// Damaged unwind information and code: random bytes changed.
	for range 20 {
		copy(damaged, img.Bytes)
		for range 200 {
			damaged[rng.IntN(len(damaged))] = byte(rng.Uint32())
		}
		for i := range pts {
			if rng.IntN(4) != 0 {
				continue
			}
			p := &pts[i]
			check("damaged", &broken, p, HandlerType(rng.IntN(4)), wdInput(p, i, seed, imageBase, stackBase))
		}
	}
	if failures > 0 {
		t.Errorf("%d differences", failures)
	}
	t.Logf("%d steps compared; the assembly fast path took %d, the Go fast path %d", st.compared, st.asm, st.goFast)
	if st.goFast < st.compared/4 || asmSegments > 0 && st.asm < st.compared/4 {
		t.Errorf("the fast paths took too few steps to be tested")
	}
}

// FuzzFastPath unwinds arbitrary code, unwind information, register state
// and stack through both paths, which must agree.
func FuzzFastPath(f *testing.F) {
	seeds := []struct{ code, info string }{
		{"57fff54881ec10010000488d6c243048899df00000004889b5f800000090488b9df0000000488bb5f8000000488da5e00000005d5fc3",
			"091d09351d642500163424000f530a0122000350017000000002000005060708"},
		{"5355565741544883ec3090904883c430415c5f5e5d5bc3", "090a06000a5206c004700360025001300002000005060708"},
		{"5590905dc3", "090002000150001a0002000005060708"},
		{"55905deb0290c3", "01010100015000000000000000000000"},
		{"4883ec3048895c241090e90b00000090488b5c24104883c430c3554883ec50488d6c243048895d10e9e3ffffffe90000000090488b5d104883c4505dc3",
			"210e05350e3402000f530552015000001a0000003d00000000000000010903000934020004520000"},
		{"c3", "02040300011606000482000000"},
		{"5553564883ec2090904883c4205e5b5dc3", "010604000642030002300150"},
	}
	for i, s := range seeds {
		code, _ := hex.DecodeString(s.code)
		info, _ := hex.DecodeString(s.info)
		f.Add(code, info, make([]byte, 64), uint8(i), uint8(0), uint64(0x5555))
		f.Add(code, info, make([]byte, 64), uint8(len(code)-3), uint8(1), uint64(0x12345678))
	}
	f.Fuzz(func(t *testing.T, code, info, stack []byte, pcOff, ht uint8, seed uint64) {
		const base, stackBase = 0x140000000, 0x7ff00000
		const codeRVA, infoRVA = 0x1000, 0x2000
		var mem SplicedMemory
		mem.Add(base+codeRVA, code)
		mem.Add(base+infoRVA, info)
		mem.Add(stackBase, stack)
		var ctx Context
		g := ctx.gpr()
		for i := range g {
			g[i] = seed*uint64(i+1) ^ uint64(i)<<56
		}
		ctx.Rsp = stackBase + seed%64
		ctx.Rbp = stackBase + (seed>>8)%64
		if seed&0x10000 != 0 {
			ctx.Rbp = ctx.Rsp // frame register values near the stack pointer
		}
		ctx.Rip = base + codeRVA + uint64(pcOff)
		fn := unwindinfo.RuntimeFunction{BeginAddress: codeRVA, EndAddress: codeRVA + uint32(len(code)), UnwindData: infoRVA}
		if len(info) >= 16 && info[0]&0x20 != 0 {
			fn.UnwindData |= uint32(seed & 1)
		}
		table := NewSortedTable(base, []unwindinfo.RuntimeFunction{fn, {BeginAddress: codeRVA + 0x100, EndAddress: codeRVA + 0x200, UnwindData: infoRVA}})
		if err := fastCompare(&mem, table, HandlerType(ht%4), base, &fn, ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRunSpareCapacity: bytes past the end of a region's slice, in its
// spare capacity, are not memory, on either path.
func TestRunSpareCapacity(t *testing.T) {
	const base, stackBase = 0x140000000, 0x7ff00000
	buf := make([]byte, 64)
	// Version 1, 2 codes: PUSH_NONVOL rbx at 1, ALLOC_SMALL 8 at 2; only
	// the header is in the region.
	copy(buf, []byte{1, 4, 2, 0, 0x02, 0x02, 0x01, 0x30})
	info := buf[:4]
	var mem SplicedMemory
	mem.Add(base+0x1000, []byte{0x53, 0x48, 0x83, 0xec, 0x08, 0x90, 0x90, 0xc3})
	mem.Add(base+0x2000, info)
	mem.Add(stackBase, make([]byte, 64))
	fn := unwindinfo.RuntimeFunction{BeginAddress: 0x1000, EndAddress: 0x1008, UnwindData: 0x2000}
	ctx := Context{Rsp: stackBase, Rip: base + 0x1005}
	if err := fastCompare(&mem, nil, HandlerNone, base, &fn, ctx, nil); err != nil {
		t.Fatal(err)
	}
	c := ctx
	if _, err := (&Unwinder{Memory: byteSourceMemory{&mem}}).VirtualUnwind(HandlerNone, base, c.Rip, &fn, &c, nil); err == nil {
		t.Fatalf("unwind read the codes past the end of the region")
	}
}

// TestCodeSpareCapacity: code bytes past the end of a region's slice, in
// its spare capacity, are not looked at for an epilog, on any path. The
// region holds the unwind information, then the code (as the fast paths
// want them, in one run); the PC is at a pop at the end of the region, and
// a ret follows it in the spare capacity. The region ends there, so this
// is not an epilog.
func TestCodeSpareCapacity(t *testing.T) {
	const base, stackBase = 0x140000000, 0x7ff00000
	buf := make([]byte, 128)
	// Version 1, prolog 5 bytes, 2 codes: ALLOC_SMALL 8 at 5, PUSH_NONVOL
	// rbx at 1.
	copy(buf, []byte{1, 5, 2, 0, 0x05, 0x02, 0x01, 0x30})
	copy(buf[8:], []byte{0x53, 0x48, 0x83, 0xec, 0x08, 0x5b, 0xc3}) // push rbx; sub rsp, 8; pop rbx | ret
	stack := make([]byte, 64)
	for i := range stack {
		stack[i] = byte(i)
	}
	var mem SplicedMemory
	mem.Add(base+0x1000, buf[:14])
	mem.Add(stackBase, stack)
	fn := unwindinfo.RuntimeFunction{BeginAddress: 0x1008, EndAddress: 0x100e, UnwindData: 0x1000}
	ctx := Context{Rsp: stackBase, Rip: base + 0x100d}
	if err := fastCompare(&mem, nil, HandlerNone, base, &fn, ctx, nil); err != nil {
		t.Fatal(err)
	}
	c := ctx
	res, err := (&Unwinder{Memory: &mem}).VirtualUnwind(HandlerNone, base, c.Rip, &fn, &c, nil)
	if err != nil || res.InEpilog() || c.Rsp != stackBase+24 {
		t.Fatalf("unwound as an epilog, or wrongly: in epilog %v, rsp %#x, err %v", res.InEpilog(), c.Rsp, err)
	}
}
