package stackwalk_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/fntable/fntable/internal/jitgen"
	"github.com/fntable/fntable/internal/jitstack"
	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/peimage"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/unwind"
)

// TestFunctionTableAccessHook walks laid-out stacks through generated
// code that only the FunctionTableAccess hook describes, over memory
// that only the Memory hook serves: every frame unwinds to exactly the
// registers its caller had.
func TestFunctionTableAccessHook(t *testing.T) {
	const base, high, size = 0x7f4a00000000, 0x7ffd00400000, 4 << 20
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		img := jitgen.Build(jitgen.Config{Functions: 100, Base: base}, rng)
		depth := 1 + rng.IntN(40)
		st, err := jitstack.Lay(img, depth, high, size, rng)
		if err != nil {
			t.Fatal(err)
		}
		mem := &unwind.SplicedMemory{}
		mem.Add(img.Base, img.Bytes)
		mem.Add(st.Low(), st.Bytes)
		src, err := stackwalk.NewSources(nil, stackwalk.Options{
			Memory:              mem,
			FunctionTableAccess: unwind.NewSortedTable(img.Base, img.Table),
		})
		if err != nil {
			t.Fatal(err)
		}
		frames, err := walkAll(t, src, st.Frames[0])
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(frames) != depth {
			t.Fatalf("seed %d: %d frames, want %d", seed, len(frames), depth)
		}
		for i, f := range frames {
			if d := jitstack.Diff(&st.Frames[i], &f.Context); d != "" {
				t.Fatalf("seed %d frame %d: %s", seed, i, d)
			}
			if want := st.Frames[i+1].Rsp; f.CFA != want {
				t.Errorf("seed %d frame %d: cfa %#x, want the caller's rsp %#x", seed, i, f.CFA, want)
			}
			if i > 0 && f.How != stackwalk.HowTable {
				t.Errorf("seed %d frame %d found by %s", seed, i, f.How)
			}
		}
	}
}

// TestModuleBaseHook maps a PE image at a base that is not on a 64 KiB
// boundary, where the walker's own search for image headers cannot find
// it: only the ModuleBase hook places it.
func TestModuleBaseHook(t *testing.T) {
	f, err := peimage.Open(winetest.Testdata(t, "pe/go-gcc-amd64-mingw-exec"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const base, stackLo = 0x10003000, 0x7ffd00000000
	image := make([]byte, f.SizeOfImage())
	if _, err := f.ReadRVA(image, 0); err != nil {
		t.Fatal(err)
	}
	// A function with a prolog, stopped at its first instruction: only
	// the return address is on the stack.
	var fn uint32
	for _, rf := range f.Functions() {
		if info, err := f.UnwindInfo(rf); err == nil && len(info.Codes) > 0 {
			fn = rf.BeginAddress
			break
		}
	}
	stack := make([]byte, 0x100)
	binary.LittleEndian.PutUint64(stack[0x80:], 0) // the caller's return address: the end
	mem := &unwind.SplicedMemory{}
	mem.Add(base, image)
	mem.Add(stackLo, stack)
	ctx := unwind.Context{Rip: base + uint64(fn), Rsp: stackLo + 0x80}

	src, _ := stackwalk.NewSources(nil, stackwalk.Options{Memory: mem})
	if _, err := walkAll(t, src, ctx); err == nil {
		t.Fatal("the walk found the image without the hook")
	}
	asked := 0
	src, _ = stackwalk.NewSources(nil, stackwalk.Options{Memory: mem, ModuleBase: func(pc uint64) (uint64, bool) {
		asked++
		return base, pc >= base && pc < base+uint64(len(image))
	}})
	frames, err := walkAll(t, src, ctx)
	if err != nil || len(frames) != 1 || frames[0].CFA != stackLo+0x88 {
		t.Fatalf("walk with the hook: %d frames %+v, %v; want one frame with cfa %#x", len(frames), frames, err, stackLo+0x88)
	}
	if asked == 0 {
		t.Error("the hook was never asked")
	}
}
