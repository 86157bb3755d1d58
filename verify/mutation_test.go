package verify

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/fntable/fntable/internal/jitgen"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// overlay serves extra bytes at addr over a base memory.
type overlay struct {
	unwind.Memory
	addr  uint64
	extra []byte
}

func (o *overlay) ReadMemory(p []byte, addr uint64) (int, error) {
	if addr >= o.addr && addr+uint64(len(p)) <= o.addr+uint64(len(o.extra)) {
		return copy(p, o.extra[addr-o.addr:]), nil
	}
	return o.Memory.ReadMemory(p, addr)
}

// A mutation injects one mistake into a function's unwind information
// (info, a copy) or code (a copy). It reports false when the function does
// not lend itself to it.
type mutation struct {
	name string
	fn   func(rng *rand.Rand, f *jitgen.Function, info *unwindinfo.Info, code []byte) bool
}

// prologCodes returns the indexes in info.Codes of the codes describing
// prolog instructions (not UWOP_EPILOG or PUSH_MACHFRAME).
func prologCodes(info *unwindinfo.Info, ops ...unwindinfo.Op) []int {
	var ix []int
	for i, c := range info.Codes {
		if c.Op == unwindinfo.UWOP_EPILOG || c.Op == unwindinfo.UWOP_PUSH_MACHFRAME {
			continue
		}
		if len(ops) == 0 || slices.Contains(ops, c.Op) {
			ix = append(ix, i)
		}
	}
	return ix
}

func pick(rng *rand.Rand, ix []int) int { return ix[rng.IntN(len(ix))] }

var nonvolatiles = []unwindinfo.Register{unwindinfo.RBX, unwindinfo.RBP, unwindinfo.RSI, unwindinfo.RDI,
	unwindinfo.R12, unwindinfo.R13, unwindinfo.R14, unwindinfo.R15}

var mutations = []mutation{
	{"wrong offset", func(rng *rand.Rand, f *jitgen.Function, info *unwindinfo.Info, code []byte) bool {
		ix := prologCodes(info)
		if len(ix) == 0 {
			return false
		}
		c := &info.Codes[pick(rng, ix)]
		if c.Offset > 1 && rng.IntN(2) == 0 {
			c.Offset--
		} else {
			c.Offset++
		}
		return true
	}},
	{"wrong register", func(rng *rand.Rand, f *jitgen.Function, info *unwindinfo.Info, code []byte) bool {
		ix := prologCodes(info, unwindinfo.UWOP_PUSH_NONVOL, unwindinfo.UWOP_SAVE_NONVOL, unwindinfo.UWOP_SAVE_NONVOL_FAR,
			unwindinfo.UWOP_SAVE_XMM128, unwindinfo.UWOP_SAVE_XMM128_FAR)
		if len(ix) == 0 {
			return false
		}
		c := &info.Codes[pick(rng, ix)]
		if c.Op == unwindinfo.UWOP_SAVE_XMM128 || c.Op == unwindinfo.UWOP_SAVE_XMM128_FAR {
			c.OpInfo = 6 + (c.OpInfo-6+1+uint8(rng.IntN(9)))%10
			return true
		}
		for {
			r := nonvolatiles[rng.IntN(len(nonvolatiles))]
			if uint8(r) != c.OpInfo {
				c.OpInfo = uint8(r)
				return true
			}
		}
	}},
	{"wrong size", func(rng *rand.Rand, f *jitgen.Function, info *unwindinfo.Info, code []byte) bool {
		ix := prologCodes(info, unwindinfo.UWOP_ALLOC_SMALL, unwindinfo.UWOP_ALLOC_LARGE)
		if len(ix) == 0 {
			return false
		}
		c := &info.Codes[pick(rng, ix)]
		switch {
		case c.Op == unwindinfo.UWOP_ALLOC_SMALL && c.OpInfo < 15:
			c.OpInfo++
		case c.Op == unwindinfo.UWOP_ALLOC_SMALL:
			c.OpInfo--
		case c.OpInfo == 0:
			c.Operand++
		default:
			c.Operand += 8
		}
		return true
	}},
	{"missing code", func(rng *rand.Rand, f *jitgen.Function, info *unwindinfo.Info, code []byte) bool {
		ix := prologCodes(info)
		if len(ix) == 0 {
			return false
		}
		i := pick(rng, ix)
		info.Codes = slices.Delete(info.Codes, i, i+1)
		return true
	}},
	{"extra code", func(rng *rand.Rand, f *jitgen.Function, info *unwindinfo.Info, code []byte) bool {
		ix := prologCodes(info)
		if len(ix) == 0 {
			return false
		}
		i := pick(rng, ix)
		var free []unwindinfo.Register
		for _, r := range nonvolatiles {
			if !slices.ContainsFunc(info.Codes, func(c unwindinfo.Code) bool {
				return (c.Op == unwindinfo.UWOP_PUSH_NONVOL || c.Op == unwindinfo.UWOP_SAVE_NONVOL || c.Op == unwindinfo.UWOP_SAVE_NONVOL_FAR) && c.Register() == r
			}) {
				free = append(free, r)
			}
		}
		if len(free) == 0 {
			return false
		}
		extra := unwindinfo.Code{Offset: info.Codes[i].Offset, Op: unwindinfo.UWOP_PUSH_NONVOL, OpInfo: uint8(free[rng.IntN(len(free))])}
		info.Codes = slices.Insert(info.Codes, i+1, extra)
		return true
	}},
	{"wrong frame offset", func(rng *rand.Rand, f *jitgen.Function, info *unwindinfo.Info, code []byte) bool {
		if info.FrameRegister == 0 {
			return false
		}
		if info.FrameOffset < 15 {
			info.FrameOffset++
		} else {
			info.FrameOffset--
		}
		return true
	}},
	{"epilog not recognized", func(rng *rand.Rand, f *jitgen.Function, info *unwindinfo.Info, code []byte) bool {
		// Shrink the deallocation of a version 1 epilog and put the bytes
		// saved as a nop between the pops and the terminator: the same
		// effect, but the Windows scan no longer matches the pops.
		if info.Version != 1 || len(info.Codes) == 0 {
			return false
		}
		for _, d := range f.Epilogs {
			if d.Fragment != -1 || len(d.Pops) == 0 || !d.IsEpilog() {
				continue
			}
			s, v2 := d.Start-f.Begin, d.V2Start-f.Begin
			var short []byte
			switch d.Dealloc {
			case jitgen.DeallocAdd32:
				n := int32(binary.LittleEndian.Uint32(code[s+3:]))
				if n > 127 {
					continue
				}
				short = []byte{0x48, 0x83, 0xc4, byte(n)}
			default:
				continue
			}
			pops := slices.Clone(code[v2 : v2+uint32(len(d.Pops))+countREX(code[v2:], len(d.Pops))])
			at := s
			at += uint32(copy(code[at:], short))
			at += uint32(copy(code[at:], pops))
			copy(code[at:], []byte{0x0f, 0x1f, 0x00}) // nop dword [rax]
			return true
		}
		return false
	}},
	{"v2 epilog misplaced", func(rng *rand.Rand, f *jitgen.Function, info *unwindinfo.Info, code []byte) bool {
		if info.Version != 2 {
			return false
		}
		for i := 1; i < len(info.Codes); i++ {
			c := &info.Codes[i]
			if c.Op != unwindinfo.UWOP_EPILOG {
				break
			}
			if off := c.EpilogOffset(); off > 1 {
				off--
				c.Offset, c.OpInfo = uint8(off), uint8(off>>8)
				return true
			}
		}
		return false
	}},
}

// countREX returns how many of the first n pops in b carry a REX prefix.
func countREX(b []byte, n int) uint32 {
	k := uint32(0)
	for i := 0; n > 0 && i < len(b); n-- {
		if b[i]&0xf0 == 0x40 {
			k++
			i++
		}
		i++
	}
	return k
}

// TestMutations injects one mistake of each class into generated functions
// and checks that every mutant is reported.
func TestMutations(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 400
	}
	img := buildImage(2, n)
	mem := imageMemory(img)
	rng := rand.New(rand.NewPCG(7, 8))
	infoRVA := (uint32(len(img.Bytes)) + 0xfff) &^ 0xfff
	type count struct{ tried, detected int }
	counts := map[string]*count{}
	kinds := map[string]map[Kind]int{}
	for _, m := range mutations {
		counts[m.name] = &count{}
		kinds[m.name] = map[Kind]int{}
	}
	for _, f := range img.Functions {
		for _, m := range mutations {
			info := *f.Info
			info.Codes = slices.Clone(f.Info.Codes)
			code := bytes.Clone(f.Code)
			if !m.fn(rng, f, &info, code) {
				continue
			}
			enc, err := info.Encode()
			if err != nil {
				continue
			}
			rf := f.RuntimeFunction()
			rf.UnwindData = infoRVA
			c := &Checker{Memory: &overlay{Memory: mem, addr: img.Base + uint64(infoRVA), extra: enc}, Functions: img}
			rep, err := c.Function(code, img.Base, rf)
			if err != nil {
				t.Fatal(err)
			}
			// Problems where the generator says Windows cannot unwind
			// anyway do not count.
			expected := expectedProblem(&f.Entry)
			found := false
			for _, p := range rep.Problems {
				if !expected(p) {
					found = true
					kinds[m.name][p.Kind]++
				}
			}
			counts[m.name].tried++
			if found {
				counts[m.name].detected++
			} else {
				t.Errorf("f%d: %s not detected: %v", f.ID, m.name, info.String())
			}
		}
	}
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		c := counts[k]
		if c.tried == 0 {
			t.Errorf("%s: no function lent itself to the mutation", k)
		}
		t.Logf("%-22s %5d mutants, %5d detected; problem kinds %v", k, c.tried, c.detected, fmt.Sprint(kinds[k]))
	}
}
