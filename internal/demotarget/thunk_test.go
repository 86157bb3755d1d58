package demotarget

import (
	"encoding/binary"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/fntable/fntable/unwindinfo"
)

// TestThunk disassembles the entry thunk and decodes its unwind
// information.
func TestThunk(t *testing.T) {
	b, rf := thunkImage()
	want := []string{"SUB RSP, 0x28", "MOV RCX, RDI", "CALL RSI", "ADD RSP, 0x28", "RET"}
	code := b[rf.BeginAddress:rf.EndAddress]
	for i, w := range want {
		in, err := x86asm.Decode(code, 64)
		if err != nil {
			t.Fatalf("instruction %d: %v", i, err)
		}
		if got := in.String(); got != w {
			t.Errorf("instruction %d: %s, want %s", i, got, w)
		}
		if i == 0 && in.Len != thunkPrologSize {
			t.Errorf("prolog is %d bytes, want %d", in.Len, thunkPrologSize)
		}
		code = code[in.Len:]
	}
	if len(code) != 0 {
		t.Errorf("%d bytes after ret", len(code))
	}
	info, err := unwindinfo.Decode(b[rf.UnwindData:])
	if err != nil {
		t.Fatal(err)
	}
	if err := info.Validate(); err != nil {
		t.Error(err)
	}
	if info.Version != 1 || info.SizeOfProlog != 4 || len(info.Codes) != 1 || info.Codes[0].Op != unwindinfo.UWOP_ALLOC_SMALL ||
		info.Codes[0].AllocSize() != thunkAlloc || info.Codes[0].Offset != 4 {
		t.Errorf("unwind info %v", info)
	}
}

// TestRelinkRebase checks the two edits the target makes to generated
// images: a relinked call reaches its new target, and rebased entries
// name the same addresses.
func TestRelinkRebase(t *testing.T) {
	img, err := genChain(1, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	const base, target = 0x10000, 0x2345670
	code := append([]byte(nil), img.Bytes...)
	if err := relink(img, code, base, 2, target); err != nil {
		t.Fatal(err)
	}
	diff := 0
	for i := range code {
		if code[i] != img.Bytes[i] {
			diff++
		}
	}
	if diff == 0 || diff > 4 {
		t.Errorf("relink changed %d bytes", diff)
	}
	for _, in := range img.Functions[2].Insts {
		if in.HasTarget && in.Target == img.Functions[3].Begin {
			disp := int32(binary.LittleEndian.Uint32(code[in.RVA+1:]))
			if got := uint64(int64(base+uint64(in.RVA)+5) + int64(disp)); got != target {
				t.Errorf("relinked call reaches %#x, want %#x", got, target)
			}
		}
	}
	if err := relink(img, code, base, 2, 1<<40); err == nil {
		t.Error("relink out of rel32 range succeeded")
	}

	split, first := img.Functions[2].Begin, img.Functions[0].Begin
	lo, err := rebase(img, base, base+uint64(first), 0, split)
	if err != nil {
		t.Fatal(err)
	}
	hi, err := rebase(img, base, base+uint64(split), split, ^uint32(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(lo)+len(hi) != len(img.Table) || !sortedEntries(lo) || !sortedEntries(hi) {
		t.Fatalf("split %d+%d entries of %d", len(lo), len(hi), len(img.Table))
	}
	for i, e := range img.Table {
		r, off := lo, first
		if i >= len(lo) {
			r, off, i = hi, split, i-len(lo)
		}
		if r[i].BeginAddress+off != e.BeginAddress || r[i].EndAddress+off != e.EndAddress || r[i].UnwindData+off != e.UnwindData {
			t.Errorf("entry %+v rebased by %#x to %+v", e, off, r[i])
		}
	}
	if _, err := rebase(img, base, base+uint64(first), 0, img.Functions[1].Begin+1); err == nil {
		t.Error("a split inside a function succeeded")
	}
	if _, err := rebase(img, base, base+uint64(split)+1, 0, ^uint32(0)); err == nil {
		t.Error("a negative rva succeeded")
	}
}

// TestGenChain checks that chains fit the stack budget and depend on the
// seed only.
func TestGenChain(t *testing.T) {
	for seed := range uint64(20) {
		a, err := genChain(seed, 1, 12)
		if err != nil {
			t.Fatal(err)
		}
		if n := stackNeed(a); n > chainStackBudget {
			t.Errorf("seed %d: chain needs %d bytes of stack", seed, n)
		}
		b, _ := genChain(seed, 1, 12)
		if string(a.Bytes) != string(b.Bytes) {
			t.Errorf("seed %d: two different images", seed)
		}
		for _, f := range a.Functions {
			if f.Info.Flags.HasHandler() {
				t.Errorf("seed %d: function %d has a handler", seed, f.ID)
			}
		}
	}
}

// TestMetadataBlock checks the block's layout against the package
// documentation.
func TestMetadataBlock(t *testing.T) {
	es := []unwindinfo.RuntimeFunction{{BeginAddress: 0, EndAddress: 0x10, UnwindData: 0x40}, {BeginAddress: 0x10, EndAddress: 0x30, UnwindData: 0x48}}
	b := metadataBlock(0x7f0012345670, es)
	if len(b) != MetadataHeaderSize+24 || string(b[:8]) != MetadataMagic || binary.LittleEndian.Uint32(b[8:]) != MetadataVersion ||
		binary.LittleEndian.Uint32(b[12:]) != 2 || binary.LittleEndian.Uint64(b[16:]) != 0x7f0012345670 ||
		binary.LittleEndian.Uint32(b[24+12+4:]) != 0x30 {
		t.Errorf("metadata block % x", b)
	}
}
