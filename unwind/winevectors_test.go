package unwind

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/unwindinfo"
)

// The Wine vectors (../shared/testdata/unwind-vectors/wine-x64-virtual-unwind.json)
// are transcribed from Wine's dlls/ntdll/tests/unwind.c, whose expected
// values Wine checks against real Windows.

type wineResult struct {
	RIPOffset int              `json:"rip_offset"`
	RBPOffset int              `json:"rbp_offset"`
	Handler   bool             `json:"handler"`
	RIP       uint64           `json:"rip"`
	Frame     int64            `json:"frame"`
	Regs      map[string]int64 `json:"regs"`
}

type wineCase struct {
	Name          string         `json:"name"`
	FunctionHex   string         `json:"function_hex"`
	UnwindInfoHex string         `json:"unwind_info_hex"`
	Results       []wineResult   `json:"results"`
	ExtraTable    map[string]any `json:"extra_function_table"`
}

type wineVectors struct {
	Harness struct {
		CodeOffset       uint32 `json:"code_offset"`
		UnwindOffset     uint32 `json:"unwind_offset"`
		HandlerRVA       uint32 `json:"handler_rva"`
		HandlerDataDword uint32 `json:"handler_data_dword"`
	} `json:"harness"`
	Tests    []wineCase `json:"tests"`
	TailJump struct {
		ResultsEpilog []wineResult `json:"results_epilog"`
		ResultsBody   []wineResult `json:"results_body"`
		Cases         []struct {
			REX         int    `json:"rex"`
			ModRM       int    `json:"modrm"`
			FunctionHex string `json:"function_hex"`
			Epilog      bool   `json:"epilog"`
		} `json:"cases"`
	} `json:"tail_jump_family"`
}

func loadWineVectors(t *testing.T) *wineVectors {
	t.Helper()
	b, err := os.ReadFile(winetest.Testdata(t, "unwind-vectors/wine-x64-virtual-unwind.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v wineVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// staticTable is a FunctionTable over a slice of entries at one base.
type staticTable struct {
	base uint64
	fns  []unwindinfo.RuntimeFunction
}

func (s *staticTable) LookupFunctionEntry(pc uint64) (*unwindinfo.RuntimeFunction, uint64, bool) {
	for i := range s.fns {
		if pc >= s.base && s.fns[i].Contains(uint32(pc-s.base)) {
			return &s.fns[i], s.base, true
		}
	}
	return nil, 0, false
}

const (
	wineImageBase = 0x7ff600000000
	wineStack     = 0x7ffe0000
)

// runWineCase sets up Wine's harness and checks one result row.
func runWineCase(t *testing.T, v *wineVectors, name string, code, info []byte, rf unwindinfo.RuntimeFunction, extra *staticTable, want wineResult) {
	t.Helper()
	h := v.Harness
	image := make([]byte, 0x1000)
	copy(image[h.CodeOffset:], code)
	copy(image[h.UnwindOffset:], info)
	stack := make([]byte, 256*8)
	for j := 0; j < 256; j++ {
		binary.LittleEndian.PutUint64(stack[8*j:], uint64(8*j))
	}
	var mem SplicedMemory
	mem.Add(wineImageBase, image)
	mem.Add(wineStack, stack)

	var ctx Context
	g := ctx.gpr()
	for i := range g {
		g[i] = 0x5555555555555555
	}
	ctx.Rsp = wineStack
	ctx.Rbp = wineStack + uint64(want.RBPOffset)
	ctx.Rip = wineImageBase + uint64(h.CodeOffset) + uint64(want.RIPOffset)
	orig := ctx

	u := Unwinder{Memory: &mem}
	if extra != nil {
		u.Functions = extra
	}
	var ptrs ContextPointers
	res, err := u.VirtualUnwind(HandlerException, wineImageBase, ctx.Rip, &rf, &ctx, &ptrs)
	where := fmt.Sprintf("%s rip_offset %#x", name, want.RIPOffset)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	if ctx.Rip != want.RIP {
		t.Errorf("%s: rip %#x, want %#x", where, ctx.Rip, want.RIP)
	}
	if wf := wineStack + uint64(want.Frame); res.EstablisherFrame != wf {
		t.Errorf("%s: frame %#x, want %#x", where, res.EstablisherFrame, wf)
	}
	if want.Handler {
		if res.HandlerRoutine != wineImageBase+uint64(h.HandlerRVA) {
			t.Errorf("%s: handler %#x, want %#x", where, res.HandlerRoutine, wineImageBase+uint64(h.HandlerRVA))
		} else if b, err := readAll(&mem, res.HandlerData, 4); err != nil || binary.LittleEndian.Uint32(b) != h.HandlerDataDword {
			t.Errorf("%s: handler data at %#x: %x %v", where, res.HandlerData, b, err)
		}
	} else if res.HandlerRoutine != 0 || res.HandlerData != 0 {
		t.Errorf("%s: handler %#x data %#x, want none", where, res.HandlerRoutine, res.HandlerData)
	}
	for r := unwindinfo.Register(0); r < 16; r++ {
		got := ctx.Reg(r)
		ptr := ptrs.Integer[r]
		wv, listed := want.Regs[r.String()]
		switch {
		case r == unwindinfo.RSP:
			w := wineStack + uint64(wv)
			if wv < 0 {
				w = uint64(-wv)
			}
			if got != w {
				t.Errorf("%s: rsp %#x, want %#x", where, got, w)
			}
			if ptr != 0 {
				t.Errorf("%s: rsp recorded in context pointers", where)
			}
		case listed:
			if got != uint64(wv) {
				t.Errorf("%s: %s %#x, want %#x", where, r, got, wv)
			}
			if ptr != wineStack+uint64(wv) {
				t.Errorf("%s: %s context pointer %#x, want %#x", where, r, ptr, wineStack+uint64(wv))
			}
		default:
			if got != orig.Reg(r) {
				t.Errorf("%s: %s changed to %#x", where, r, got)
			}
			if ptr != 0 {
				t.Errorf("%s: %s context pointer %#x, want none", where, r, ptr)
			}
		}
	}
}

func readAll(m Memory, addr uint64, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := m.ReadMemory(b, addr)
	return b, err
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWineVectors(t *testing.T) {
	v := loadWineVectors(t)
	h := v.Harness
	rows := 0
	for _, tc := range v.Tests {
		code := mustHex(t, tc.FunctionHex)
		info := mustHex(t, tc.UnwindInfoHex)
		rf := unwindinfo.RuntimeFunction{BeginAddress: h.CodeOffset, EndAddress: h.CodeOffset + uint32(len(code)), UnwindData: h.UnwindOffset}
		if tc.Name == "function_7_chained" || tc.Name == "function_7_chained_with_table_for_parent" {
			rf = unwindinfo.RuntimeFunction{BeginAddress: h.CodeOffset + 0x1a, EndAddress: h.CodeOffset + 0x3d, UnwindData: h.UnwindOffset}
			parent := unwindinfo.RuntimeFunction{BeginAddress: h.CodeOffset, EndAddress: h.CodeOffset + 0x1a, UnwindData: h.UnwindOffset + 28}
			// Rewrite the embedded chained entry (after 5 codes + padding).
			copy(info[16:28], parent.Append(nil))
		}
		var extra *staticTable
		if tc.ExtraTable != nil {
			e := unwindinfo.RuntimeFunction{}
			switch tc.ExtraTable["BeginAddress"] {
			case "code_offset":
				e.BeginAddress = h.CodeOffset
			case "code_offset-1":
				e.BeginAddress = h.CodeOffset - 1
			default:
				t.Fatalf("%s: unknown extra table begin %q", tc.Name, tc.ExtraTable["BeginAddress"])
			}
			switch tc.ExtraTable["EndAddress"] {
			case "code_offset+len(function)+1":
				e.EndAddress = h.CodeOffset + uint32(len(code)) + 1
			case "code_offset+0x1a":
				e.EndAddress = h.CodeOffset + 0x1a
			default:
				t.Fatalf("%s: unknown extra table end %q", tc.Name, tc.ExtraTable["EndAddress"])
			}
			extra = &staticTable{base: wineImageBase, fns: []unwindinfo.RuntimeFunction{e}}
		}
		for _, want := range tc.Results {
			runWineCase(t, v, tc.Name, code, info, rf, extra, want)
			rows++
		}
	}
	tail := 0
	for _, tc := range v.TailJump.Cases {
		code := mustHex(t, tc.FunctionHex)
		info := mustHex(t, v.Tests[5].UnwindInfoHex) // function_6 info
		rf := unwindinfo.RuntimeFunction{BeginAddress: h.CodeOffset, EndAddress: h.CodeOffset + uint32(len(code)), UnwindData: h.UnwindOffset}
		want := v.TailJump.ResultsBody
		if tc.Epilog {
			want = v.TailJump.ResultsEpilog
		}
		for _, w := range want {
			runWineCase(t, v, fmt.Sprintf("tail jump rex %d modrm %#x", tc.REX, tc.ModRM), code, info, rf, nil, w)
			tail++
		}
	}
	t.Logf("checked %d result rows of %d functions and %d tail-jump rows of %d cases", rows, len(v.Tests), tail, len(v.TailJump.Cases))
}
