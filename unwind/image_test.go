package unwind

import (
	"debug/pe"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/unwindinfo"
)

// testImage is a PE image mapped at its preferred base for tests.
type testImage struct {
	base  uint64
	mem   SplicedMemory
	table *SortedTable
}

func loadTestImage(t *testing.T, path string) *testImage {
	t.Helper()
	f, err := pe.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		t.Fatalf("%s: not PE32+", path)
	}
	img := &testImage{base: oh.ImageBase}
	image := make([]byte, oh.SizeOfImage)
	for _, s := range f.Sections {
		data, err := s.Data()
		if err != nil && len(data) == 0 {
			continue
		}
		if int(s.VirtualAddress) < len(image) {
			copy(image[s.VirtualAddress:], data[:min(len(data), int(s.VirtualSize))])
		}
	}
	img.mem.Add(img.base, image)
	dir := oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_EXCEPTION]
	var fns []unwindinfo.RuntimeFunction
	for off := dir.VirtualAddress; off+12 <= dir.VirtualAddress+dir.Size && int(off)+12 <= len(image); off += 12 {
		rf, _ := unwindinfo.DecodeRuntimeFunction(image[off:])
		fns = append(fns, rf)
	}
	img.table = NewSortedTable(img.base, fns)
	return img
}

func hexU64(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLLDBRows checks the per-offset CFA and register rules of LLDB's
// PECallFrameInfo test image.
func TestLLDBRows(t *testing.T) {
	var doc struct {
		Functions []struct {
			Name     string    `json:"name"`
			Lookup   string    `json:"lookup_address"`
			Function [2]string `json:"function"`
			Rows     []struct {
				Offset string           `json:"offset"`
				CFA    [2]any           `json:"cfa"`
				Saved  map[string]int64 `json:"saved"`
			} `json:"rows"`
		} `json:"functions"`
	}
	b, err := os.ReadFile(winetest.Testdata(t, "unwind-vectors/lldb-pecallframeinfo-expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	img := loadTestImage(t, winetest.Testdata(t, "pe/lldb-pecallframeinfo.exe"))
	const stackBase, cfa = 0x7fff0000, 0x7fff1000
	stack := make([]byte, 0x2000)
	for a := 0; a < len(stack); a += 8 {
		putU64(stack[a:], stackBase+uint64(a))
	}
	img.mem.Add(stackBase, stack)
	checked := 0
	for _, fn := range doc.Functions {
		start, end := hexU64(t, fn.Function[0]), hexU64(t, fn.Function[1])
		entry, base, ok := img.table.LookupFunctionEntry(hexU64(t, fn.Lookup))
		if !ok || base+uint64(entry.BeginAddress) != start || base+uint64(entry.EndAddress) != end {
			t.Fatalf("%s: lookup %s: %+v ok=%v", fn.Name, fn.Lookup, entry, ok)
		}
		saved := map[string]int64{}
		for i, row := range fn.Rows {
			for k, v := range row.Saved {
				saved[k] = v
			}
			from := hexU64(t, row.Offset)
			to := from + 1
			if i+1 < len(fn.Rows) {
				to = hexU64(t, fn.Rows[i+1].Offset)
			}
			for off := from; off < to; off++ {
				pc := start + off
				var ctx Context
				g := ctx.gpr()
				for r := range g {
					g[r] = 0xdead0000 + uint64(r)
				}
				reg, _ := unwindinfo.ParseRegister(row.CFA[0].(string))
				ctx.SetReg(reg, cfa-uint64(row.CFA[1].(float64)))
				ctx.Rip = pc
				before := ctx
				var ptrs ContextPointers
				_, err := VirtualUnwind(HandlerNone, base, pc, entry, &ctx, &ptrs, &img.mem)
				if err != nil {
					t.Fatalf("%s+%#x: %v", fn.Name, off, err)
				}
				checked++
				if ctx.Rsp != cfa || ctx.Rip != cfa-8 {
					t.Errorf("%s+%#x: rsp %#x rip %#x, want %#x %#x", fn.Name, off, ctx.Rsp, ctx.Rip, uint64(cfa), uint64(cfa-8))
				}
				for r := unwindinfo.Register(0); r < 16; r++ {
					if r == unwindinfo.RSP {
						continue
					}
					if d, ok := saved[r.String()]; ok {
						want := uint64(cfa + d)
						if ctx.Reg(r) != want || ptrs.Integer[r] != want {
							t.Errorf("%s+%#x: %s = %#x from %#x, want [cfa%+d] = %#x", fn.Name, off, r, ctx.Reg(r), ptrs.Integer[r], d, want)
						}
					} else if ctx.Reg(r) != before.Reg(r) {
						t.Errorf("%s+%#x: %s changed to %#x", fn.Name, off, r, ctx.Reg(r))
					}
				}
			}
		}
	}
	t.Logf("checked %d PCs", checked)
}

func putU64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

// TestChainedLoop: an UNWIND_INFO chained to itself must end in an error.
func TestChainedLoop(t *testing.T) {
	img := loadTestImage(t, winetest.Testdata(t, "pe/symbolic-cfi_chained_loop.exe"))
	pc := img.base + 0x1800
	fn, base, ok := img.table.LookupFunctionEntry(pc)
	if !ok {
		t.Fatal("no entry")
	}
	stack := make([]byte, 0x100)
	img.mem.Add(0x10000, stack)
	ctx := Context{Rsp: 0x10000, Rip: pc}
	_, err := VirtualUnwind(HandlerException, base, pc, fn, &ctx, nil, &img.mem)
	if !errors.Is(err, unwindinfo.ErrChainTooDeep) {
		t.Fatalf("err = %v, want ErrChainTooDeep", err)
	}
}

// TestGoMingwExec unwinds every function of Go's own gcc-amd64-mingw-exec
// at its first body instruction and at its start, on a stack of markers,
// and checks that each restored register came from the stack.
func TestGoMingwExec(t *testing.T) {
	path := filepath.Join(runtime.GOROOT(), "src/debug/pe/testdata/gcc-amd64-mingw-exec")
	if _, err := os.Stat(path); err != nil {
		testenv.Unavailable(t, "needs Go's debug/pe testdata: %v", err)
	}
	img := loadTestImage(t, path)
	const stackBase = 0x7fff0000
	stack := make([]byte, 0x40000)
	for a := 0; a < len(stack); a += 8 {
		putU64(stack[a:], stackBase+uint64(a))
	}
	img.mem.Add(stackBase, stack)
	if img.table.Len() != 98 {
		t.Errorf("%d entries, want 98", img.table.Len())
	}
	for i := range img.table.Entries() {
		fn := &img.table.Entries()[i]
		for _, pc := range []uint64{img.base + uint64(fn.BeginAddress), img.base + uint64(fn.EndAddress) - 1} {
			ctx := Context{Rsp: stackBase + 0x20000, Rbp: stackBase + 0x21000, Rip: pc}
			var ptrs ContextPointers
			_, err := VirtualUnwind(HandlerException, img.base, pc, fn, &ctx, &ptrs, &img.mem)
			if err != nil {
				t.Errorf("function %#x at %#x: %v", fn.BeginAddress, pc, err)
				continue
			}
			if ctx.Rsp <= stackBase+0x20000-0x1000 || ctx.Rip < stackBase {
				t.Errorf("function %#x at %#x: implausible caller rsp %#x rip %#x", fn.BeginAddress, pc, ctx.Rsp, ctx.Rip)
			}
			for r, p := range ptrs.Integer {
				if p != 0 && ctx.Reg(unwindinfo.Register(r)) != p {
					t.Errorf("function %#x: %s = %#x, read from %#x", fn.BeginAddress, unwindinfo.Register(r), ctx.Reg(unwindinfo.Register(r)), p)
				}
			}
		}
	}
}
