package jitgen

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/fntable/fntable/unwindinfo"
)

// TestExecutable checks executable images of several sizes and seeds:
// the code obeys the rules of a chain that runs (checkChain), every
// instruction decodes as claimed, and the State of every boundary unwinds
// right. It also checks that the chains still vary what jitgen varies.
func TestExecutable(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 60
	}
	var feats Feature
	seen := map[string]int{}
	for _, n := range []int{1, 2, 12, 40} {
		for seed := range uint64(seeds) {
			img := build(t, Config{Functions: n, Executable: true}, seed)
			if len(img.Functions) != n {
				t.Fatalf("n=%d seed %d: %d functions", n, seed, len(img.Functions))
			}
			checkChain(t, img)
			checkDisassembly(t, img)
			checkUnwindStates(t, img, seed)
			if t.Failed() {
				t.Fatalf("n=%d seed %d", n, seed)
			}
			for _, f := range img.Functions {
				feats |= f.Features
				for _, c := range f.Info.Codes {
					name := c.Op.Name()
					if c.Op == unwindinfo.UWOP_ALLOC_LARGE {
						name += fmt.Sprint(c.OpInfo)
					}
					seen[name]++
				}
				if f.Info.FrameRegister != 0 {
					seen[fmt.Sprintf("frame-offset-%v", f.Info.FrameOffset != 0)]++
				}
				for _, d := range f.Epilogs {
					seen["dealloc-"+d.Dealloc.String()]++
					seen["term-"+d.Term.String()]++
					if d.Bnd {
						seen["bnd-"+d.Term.String()]++
					}
				}
				if len(f.Epilogs) > 1 {
					seen["epilogs>1"]++
				}
				for _, s := range f.Insts[len(f.Insts)-1].State.Saved {
					if s.Slot < 0 {
						seen["home-save"]++
					}
				}
			}
		}
	}
	want := FeatHandler | FeatLeaf | FeatFrameRegister | FeatLargeFrame | FeatBndRet | FeatVersion2 | FeatSaveBeforeFrame
	if feats != want {
		t.Errorf("features %v, want %v", feats, want)
	}
	for _, w := range []string{"PUSH_NONVOL", "ALLOC_SMALL", "ALLOC_LARGE0", "ALLOC_LARGE1", "SET_FPREG",
		"SAVE_NONVOL", "SAVE_NONVOL_FAR", "SAVE_XMM128", "SAVE_XMM128_FAR", "EPILOG", "frame-offset-true", "frame-offset-false",
		"dealloc-none", "dealloc-add8", "dealloc-add32", "dealloc-lea8", "dealloc-lea32", "term-ret", "term-rep-ret", "bnd-ret",
		"epilogs>1", "home-save"} {
		if seen[w] == 0 {
			t.Errorf("no %s", w)
		}
	}
	t.Logf("features %v; %v", feats, seen)
}

// TestExecutableOmit checks that Omit still applies to executable images
// and that they do not depend on the image of the same seed without
// Executable: that one is unchanged by the flag's existence.
func TestExecutableOmit(t *testing.T) {
	omit := FeatLargeFrame | FeatVersion2 | FeatHandler
	for seed := range uint64(50) {
		img := build(t, Config{Functions: 12, Executable: true, Omit: omit}, seed)
		checkChain(t, img)
		for _, f := range img.Functions {
			if f.Features&omit != 0 {
				t.Errorf("seed %d f%d has omitted features %v", seed, f.ID, f.Features&omit)
			}
		}
	}
}

// checkChain checks the rules for code that runs, by decoding it. With E
// the entry stack pointer (E ≡ 8 mod 16, as after a call from aligned
// code):
//
//   - nothing but harmless straight-line instructions: no conditional
//     branch, no jump but the pause loop of the last function, no ret
//     imm16, iretq or dynamic allocation, no fragments;
//   - function i < n−1 has one call, of function i+1, before its first
//     epilog and followed by a body instruction; there RSP is 16-byte
//     aligned and the 32 bytes above it (the callee's home area) hold no
//     saved register;
//   - the last function loops on mov eax, 34; syscall; jmp to the mov;
//   - every store goes to the function's own frame or its home area,
//     never to the return address, and every movaps is 16-byte aligned;
//   - the stack pointer the decoded instructions compute agrees with
//     State.SP.
func checkChain(t *testing.T, img *Image) {
	t.Helper()
	n := len(img.Functions)
	for i, f := range img.Functions {
		last := i == n-1
		fail := func(in *Inst, format string, args ...any) {
			t.Helper()
			at := ""
			if in != nil {
				at = fmt.Sprintf(" %#x %q", in.RVA, in.Asm)
			}
			t.Errorf("f%d of %d%s: %s\n%s", f.ID, n, at, fmt.Sprintf(format, args...), listing(f))
		}
		if f.ID != i || len(f.Fragments) != 0 || f.MachineFrame || f.Features&ExecutableOmits != 0 {
			fail(nil, "id %d, %d fragments, machine frame %v, features %v", f.ID, len(f.Fragments), f.MachineFrame, f.Features)
			continue
		}
		firstEpilog := f.End
		for _, d := range f.Epilogs {
			firstEpilog = min(firstEpilog, d.Start)
			if d.Term != TermRet && d.Term != TermRepRet || d.TargetKind != TargetNone {
				fail(nil, "epilog at %#x ends in %v (%v)", d.Start, d.Term, d.TargetKind)
			}
		}
		calls, syscalls, loops := 0, 0, 0
		sp := int32(0) // E − RSP, as the instructions before the first epilog compute it
		for k := range f.Insts {
			in := &f.Insts[k]
			st := &in.State
			xi, err := decodeAt(img, in.RVA)
			if err != nil {
				fail(in, "decode: %v", err)
				continue
			}
			if in.RVA < firstEpilog && st.SP != sp {
				fail(in, "State.SP %#x, the code computes %#x", st.SP, sp)
				sp = st.SP
			}
			if st.Alloca {
				fail(in, "dynamic allocation")
			}
			switch {
			case xi.Op == x86asm.PUSH:
				sp += 8
			case (xi.Op == x86asm.SUB || xi.Op == x86asm.ADD) && xi.Args[0] == x86asm.RSP:
				imm, ok := xi.Args[1].(x86asm.Imm)
				if !ok {
					fail(in, "dynamic stack adjustment")
					break
				}
				if xi.Op == x86asm.SUB {
					sp += int32(imm)
				} else {
					sp -= int32(imm)
				}
			case xi.Op == x86asm.CALL:
				calls++
				if last || in.Target != img.Functions[i+1].Begin || !in.HasTarget {
					fail(in, "call of %#x, want the next function", in.Target)
				}
				rel, ok := xi.Args[0].(x86asm.Rel)
				if !ok || in.RVA+uint32(in.Len)+uint32(int32(rel)) != in.Target {
					fail(in, "not a call rel32 of %#x", in.Target)
				}
				if in.RVA >= firstEpilog || k+1 >= len(f.Insts) || f.Insts[k+1].Kind != KindBody {
					fail(in, "the call is not followed by the body")
				}
				if (st.SP-8)%16 != 0 {
					fail(in, "RSP is E−%#x at the call, not 16-byte aligned", st.SP)
				}
				// The callee's home area is [E−SP, E−SP+32).
				for _, s := range st.Saved {
					size := int32(8)
					if s.XMM {
						size = 16
					}
					lo, hi := -s.Slot, -s.Slot+size // relative to E
					if lo < -st.SP+HomeArea && hi > -st.SP {
						fail(in, "%v lies in the callee's home area", s)
					}
				}
			case xi.Op == x86asm.SYSCALL:
				syscalls++
				if !last || k == 0 || f.Insts[k-1].Asm != "mov eax, 0x22" {
					fail(in, "syscall outside the pause loop")
				}
			case xi.Op == x86asm.JMP:
				if !last || k < 2 || xi.Len != 2 || f.Insts[k-1].Asm != "syscall" || in.Target != f.Insts[k-2].RVA {
					fail(in, "a jump other than the pause loop's")
				}
				loops++
			case strings.HasPrefix(xi.Op.String(), "J"), xi.Op == x86asm.IRETQ, xi.Op == x86asm.RET && xi.Args[0] != nil:
				fail(in, "not allowed in executable code")
			}
			// Stores, and movaps loads.
			if xi.Op == x86asm.MOV || xi.Op == x86asm.MOVAPS {
				for a, arg := range xi.Args[:2] {
					base, disp, ok := memArg(arg)
					if !ok {
						if _, isMem := arg.(x86asm.Mem); isMem {
							fail(in, "unexpected memory operand")
						}
						continue
					}
					var addr int32 // relative to E
					switch {
					case base == x86asm.RSP:
						addr = -st.SP + int32(disp)
					case st.FrameSet && base == gpr(f.Info.FrameRegister):
						addr = -st.FP + int32(disp)
					default:
						fail(in, "memory operand off %v", base)
						continue
					}
					size := int32(8)
					if xi.Op == x86asm.MOVAPS {
						size = 16
						if (addr+8)%16 != 0 {
							fail(in, "movaps at E%+#x is not 16-byte aligned", addr)
						}
					}
					if a == 0 && !(addr >= -st.SP && addr+size <= 0 || addr >= 8 && addr+size <= 8+HomeArea) {
						fail(in, "store to E%+#x, outside the frame [E−%#x, E) and the home area", addr, st.SP)
					}
				}
			}
		}
		if last {
			if calls != 0 || syscalls != 1 || loops != 1 {
				fail(nil, "last function: %d calls, %d syscalls, %d loops", calls, syscalls, loops)
			}
		} else if calls != 1 || syscalls != 0 || loops != 0 {
			fail(nil, "%d calls, %d syscalls, %d loops", calls, syscalls, loops)
		}
	}
}
