package peimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/fntable/fntable/unwindinfo"
)

// openSynth opens s both as a file and as a mapped image.
func openSynth(t *testing.T, s *synth) (file, mapped *File) {
	t.Helper()
	file, err := NewFile(bytes.NewReader(s.file()))
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	mapped, err = NewMapped(flatMemory{addr: 0x7ff600000000, data: s.mapped()}, 0x7ff600000000)
	if err != nil {
		t.Fatalf("NewMapped: %v", err)
	}
	return file, mapped
}

func warningKinds(f *File) []WarningKind {
	var k []WarningKind
	for _, w := range f.Warnings() {
		k = append(k, w.Kind)
	}
	return k
}

func TestSynthFileAndMapped(t *testing.T) {
	s := basicSynth()
	file, mapped := openSynth(t, s)
	for _, tc := range []struct {
		name string
		f    *File
	}{{"file", file}, {"mapped", mapped}} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			if f.ImageBase() != 0x140000000 || f.SizeOfImage() != 0x5000 {
				t.Errorf("ImageBase, SizeOfImage = %#x, %#x", f.ImageBase(), f.SizeOfImage())
			}
			want := []unwindinfo.RuntimeFunction{rf(0x1000, 0x1040, 0x3000), rf(0x1040, 0x1080, 0x3018),
				rf(0x1080, 0x10c0, 0x3008), rf(0x10c0, 0x10d0, 0x4031)}
			if !slices.Equal(f.Functions(), want) {
				t.Errorf("Functions = %+v", f.Functions())
			}
			if len(f.Warnings()) != 0 {
				t.Errorf("Warnings = %v", f.Warnings())
			}
			// The whole image reads the same as the loader maps it.
			img := make([]byte, f.SizeOfImage())
			// Every byte up to SizeOfImage is in the headers or a section
			// (with its alignment padding), so the whole image reads.
			n, err := f.ReadRVA(img, 0)
			if err != nil || n != len(img) {
				t.Fatalf("ReadRVA(whole image) = %d, %v", n, err)
			}
			if !bytes.Equal(img, s.mapped()) {
				t.Errorf("ReadRVA(whole image) differs from the mapped layout")
			}
			// Reads beyond SizeOfImage stop there.
			p := make([]byte, 16)
			n, err = f.ReadRVA(p, f.SizeOfImage()-8)
			var ue *UnmappedError
			if n != 8 || !errors.As(err, &ue) || ue.Addr != uint64(f.SizeOfImage()) {
				t.Errorf("ReadRVA across SizeOfImage = %d, %v", n, err)
			}
			// .bss reads as zeros.
			p = []byte{1, 2, 3, 4}
			if n, err := f.ReadRVA(p, 0x2010); n != 4 || err != nil || !bytes.Equal(p, make([]byte, 4)) {
				t.Errorf(".bss = % x, %d, %v", p, n, err)
			}
			// Lookups, including boundaries, the chained fragment and the
			// indirect entry.
			for _, c := range []struct {
				rva  uint32
				want unwindinfo.RuntimeFunction
				ok   bool
			}{
				{0xfff, unwindinfo.RuntimeFunction{}, false},
				{0x1000, rf(0x1000, 0x1040, 0x3000), true},
				{0x103f, rf(0x1000, 0x1040, 0x3000), true},
				{0x1040, rf(0x1040, 0x1080, 0x3018), true},
				{0x10bf, rf(0x1080, 0x10c0, 0x3008), true},
				{0x10c0, rf(0x10c0, 0x10d0, 0x3000), true}, // indirect, resolved
				{0x10cf, rf(0x10c0, 0x10d0, 0x3000), true},
				{0x10d0, unwindinfo.RuntimeFunction{}, false},
				{0xffffffff, unwindinfo.RuntimeFunction{}, false},
			} {
				got, ok := f.LookupFunctionEntry(c.rva)
				if got != c.want || ok != c.ok {
					t.Errorf("LookupFunctionEntry(%#x) = %+v, %v; want %+v, %v", c.rva, got, ok, c.want, c.ok)
				}
			}
			chain, err := f.Chain(rf(0x1040, 0x1080, 0x3018))
			if err != nil || !slices.Equal(chain, []unwindinfo.RuntimeFunction{rf(0x1040, 0x1080, 0x3018), rf(0x1000, 0x1040, 0x3000)}) {
				t.Errorf("Chain = %+v, %v", chain, err)
			}
			info, err := f.UnwindInfo(rf(0x1080, 0x10c0, 0x3008))
			if err != nil || info.Handler != 0x1100 || info.Codes[0].Register() != unwindinfo.RBX {
				t.Errorf("UnwindInfo = %+v, %v", info, err)
			}
			// The indirect entry in file order resolves to its target.
			if got, err := f.Resolve(f.Functions()[3]); err != nil || got != rf(0x10c0, 0x10d0, 0x3000) {
				t.Errorf("Resolve = %+v, %v", got, err)
			}
			if info, err := f.UnwindInfo(f.Functions()[3]); err != nil || info.Codes[0].AllocSize() != 0x28 {
				t.Errorf("UnwindInfo(indirect) = %+v, %v", info, err)
			}

			// The image at another base.
			m := f.Memory(0x10000)
			p = make([]byte, 4)
			if n, err := m.ReadMemory(p, 0x13008); n != 4 || err != nil || !bytes.Equal(p, []byte{0x09, 0x01, 0x01, 0x00}) {
				t.Errorf("ReadMemory(0x13008) = % x, %d, %v", p, n, err)
			}
			for _, addr := range []uint64{0xffff, 0x15000, 0, ^uint64(0)} {
				if n, err := m.ReadMemory(p, addr); n != 0 || !errors.As(err, &ue) || ue.Addr != addr {
					t.Errorf("ReadMemory(%#x) = %d, %v; want 0, UnmappedError{%#x}", addr, n, err, addr)
				}
			}
			p = make([]byte, 32)
			if n, err := m.ReadMemory(p, 0x14ff0); n != 16 || !errors.As(err, &ue) || ue.Addr != 0x15000 {
				t.Errorf("ReadMemory(end-16, 32) = %d, %v", n, err)
			}
		})
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	f, _ := openSynth(t, basicSynth())
	var sink unwindinfo.RuntimeFunction
	allocs := testing.AllocsPerRun(100, func() {
		for rva := uint32(0xff0); rva < 0x10e0; rva += 7 {
			fn, _ := f.LookupFunctionEntry(rva)
			sink = fn
		}
	})
	_ = sink
	if allocs != 0 {
		t.Errorf("LookupFunctionEntry allocates %v times per run", allocs)
	}
	m := f.Memory(0x10000)
	p := make([]byte, 64)
	if a := testing.AllocsPerRun(100, func() { m.ReadMemory(p, 0x11000) }); a != 0 {
		t.Errorf("ImageMemory.ReadMemory allocates %v times", a)
	}
}

// tableSynth returns an image whose table is fns, with one valid
// UNWIND_INFO at 0x3000.
func tableSynth(fns ...unwindinfo.RuntimeFunction) *synth {
	pdata := rfBytes(fns...)
	return &synth{
		base: 0x180000000,
		sections: []synthSection{
			{name: ".text", va: 0x1000, vsize: 0x1000},
			{name: ".xdata", va: 0x3000, data: []byte{1, 0, 0, 0}},
			{name: ".pdata", va: 0x4000, data: pdata},
		},
		excRVA: 0x4000, excSize: uint32(len(pdata)),
	}
}

func TestUnusualTables(t *testing.T) {
	for _, c := range []struct {
		name    string
		s       *synth
		kinds   []WarningKind
		lookups map[uint32]uint32 // rva -> BeginAddress found (0: none)
	}{
		{
			name:    "zero entries",
			s:       tableSynth(rf(0, 0, 0), rf(0, 0, 0), rf(0x1000, 0x1010, 0x3000)),
			lookups: map[uint32]uint32{0: 0, 0x1000: 0x1000},
		},
		{
			name:    "unsorted",
			s:       tableSynth(rf(0x1020, 0x1030, 0x3000), rf(0x1000, 0x1010, 0x3000), rf(0x1010, 0x1020, 0x3000)),
			kinds:   []WarningKind{WarnUnsorted},
			lookups: map[uint32]uint32{0x1000: 0x1000, 0x100f: 0x1000, 0x1010: 0x1010, 0x1025: 0x1020, 0x1030: 0},
		},
		{
			name:    "overlapping",
			s:       tableSynth(rf(0x1000, 0x1100, 0x3000), rf(0x1010, 0x1020, 0x3000), rf(0x1200, 0x1210, 0x3000)),
			kinds:   []WarningKind{WarnOverlap},
			lookups: map[uint32]uint32{0x1005: 0x1000, 0x1015: 0x1010, 0x1050: 0x1000, 0x1100: 0, 0x1200: 0x1200},
		},
		{
			name:    "outside",
			s:       tableSynth(rf(0x1000, 0x1010, 0x3000), rf(0x1010, 0x1020, 0x8000), rf(0x1020, 0x9000, 0x3000), rf(0x9000, 0x9010, 0x3000)),
			kinds:   []WarningKind{WarnOutsideImage, WarnOutsideImage, WarnOutsideImage},
			lookups: map[uint32]uint32{0x1015: 0x1010},
		},
		{
			name:    "empty range",
			s:       tableSynth(rf(0x1000, 0x1000, 0x3000), rf(0x1010, 0x1008, 0x3000)),
			kinds:   []WarningKind{WarnEmptyRange, WarnEmptyRange},
			lookups: map[uint32]uint32{0x1000: 0, 0x1008: 0},
		},
		{
			name: "indirect loop",
			// The entry at 0x4000 points to itself.
			s:       tableSynth(rf(0x1000, 0x1010, 0x4001), rf(0x1010, 0x1020, 0x3000)),
			kinds:   []WarningKind{WarnIndirect},
			lookups: map[uint32]uint32{0x1000: 0, 0x1010: 0x1010},
		},
		{
			name:    "indirect outside",
			s:       tableSynth(rf(0x1000, 0x1010, 0x7ffffff1)),
			kinds:   []WarningKind{WarnOutsideImage, WarnIndirect},
			lookups: map[uint32]uint32{0x1000: 0},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			file, mapped := openSynth(t, c.s)
			for _, f := range []*File{file, mapped} {
				if k := warningKinds(f); !slices.Equal(k, c.kinds) {
					t.Errorf("warnings = %v, want kinds %v", f.Warnings(), c.kinds)
				}
				for rva, begin := range c.lookups {
					fn, ok := f.LookupFunctionEntry(rva)
					if ok != (begin != 0) || ok && fn.BeginAddress != begin {
						t.Errorf("LookupFunctionEntry(%#x) = %+v, %v; want begin %#x", rva, fn, ok, begin)
					}
				}
			}
		})
	}
}

func TestTableSize(t *testing.T) {
	s := tableSynth(rf(0x1000, 0x1010, 0x3000), rf(0x1010, 0x1020, 0x3000))
	s.excSize = 30 // 2.5 entries
	f, _ := openSynth(t, s)
	if n := len(f.Functions()); n != 2 {
		t.Errorf("len(Functions) = %d, want 2", n)
	}
	if k := warningKinds(f); !slices.Equal(k, []WarningKind{WarnTableSize}) {
		t.Errorf("warnings = %v", f.Warnings())
	}

	// A directory in the zero-filled tail of .pdata: the entries beyond
	// the raw data are zero and dropped, with a warning.
	s = tableSynth(rf(0x1000, 0x1010, 0x3000))
	s.sections[2].vsize = 0x1000
	s.excSize = 0xff0
	f, err := NewFile(bytes.NewReader(s.file()))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Functions()); n == 0 || n > synthFileAlign/12+1 {
		t.Errorf("len(Functions) = %d", n)
	}
	if k := warningKinds(f); !slices.Equal(k, []WarningKind{WarnTableTruncated}) {
		t.Errorf("warnings = %v", f.Warnings())
	}
	// Mapped, the same table reads in full (340 entries, all but one zero).
	mf, err := NewMapped(flatMemory{addr: 0x10000, data: s.mapped()}, 0x10000)
	if err != nil || len(mf.Functions()) != 0xff0/12 || len(mf.Warnings()) != 0 {
		t.Errorf("mapped: %d functions, %v, %v", len(mf.Functions()), mf.Warnings(), err)
	}

	// Many warnings are capped.
	var fns []unwindinfo.RuntimeFunction
	for i := range uint32(300) {
		fns = append(fns, rf(0x1000+i, 0x1100, 0x3000))
	}
	f, _ = openSynth(t, tableSynth(fns...))
	w := f.Warnings()
	if len(w) != MaxWarnings+1 || w[MaxWarnings].Kind != WarnMore {
		t.Errorf("%d warnings, last %v", len(w), w[len(w)-1])
	}
}

func TestHeaderErrors(t *testing.T) {
	le := binary.LittleEndian
	base := basicSynth()
	good := base.file()
	patch := func(off int, v ...byte) []byte {
		b := slices.Clone(good)
		copy(b[off:], v)
		return b
	}
	i386 := *base
	i386.machine = 0x14c
	pe32 := *base
	pe32.magic = 0x10b
	bigDir := *base
	bigDir.excSize = 0x2000
	coff := make([]byte, 64)
	le.PutUint16(coff, IMAGE_FILE_MACHINE_AMD64)
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotImage},
		{"coff object", coff, ErrNotImage},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), ErrNotImage},
		{"no PE signature", patch(0x40, 'P', 'X'), ErrNotImage},
		{"e_lfanew beyond file", patch(0x3c, 0, 0, 0, 1), ErrNotImage},
		{"e_lfanew huge", patch(0x3c, 0xff, 0xff, 0xff, 0xff), ErrMalformed},
		{"i386", i386.file(), ErrUnsupportedMachine},
		{"pe32", pe32.file(), ErrNotPE32Plus},
		{"truncated optional header", good[:0x80], ErrTruncated},
		{"truncated section table", good[:0x150], ErrTruncated},
		{"small optional header", patch(0x54, 0x40, 0), ErrMalformed},
		{"zero SizeOfImage", patch(0x58+56, 0, 0, 0, 0), ErrMalformed},
		{"directory beyond SizeOfImage", bigDir.file(), ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := NewFile(bytes.NewReader(c.data))
			if !errors.Is(err, c.want) {
				t.Fatalf("NewFile = %v, %v; want %v", f, err, c.want)
			}
			notFormat := errors.Is(err, ErrNotImage) || errors.Is(err, ErrUnsupportedMachine) || errors.Is(err, ErrNotPE32Plus)
			if notFormat == errors.Is(err, ErrMalformed) {
				t.Errorf("%v: wraps both a not-this-format sentinel and ErrMalformed, or neither", err)
			}
			t.Log(err)
			if _, err := NewMapped(flatMemory{addr: 0x1000, data: c.data}, 0x1000); err == nil {
				t.Errorf("NewMapped succeeded")
			}
		})
	}
}

// TestTruncatedFile reads an image whose file ends inside a section's raw
// data: reads of the missing part fail with the bytes read so far.
func TestTruncatedFile(t *testing.T) {
	s := basicSynth()
	b := s.file()
	// .text raw data is at 0x200..0x400; cut the file at 0x300.
	f, err := NewFile(bytes.NewReader(b[:0x300]))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Functions()) != 0 || !slices.Equal(warningKinds(f), []WarningKind{WarnTableTruncated, WarnTableTruncated}) {
		t.Errorf("Functions = %v, warnings %v", f.Functions(), f.Warnings())
	}
	p := make([]byte, 0x200)
	n, err := f.ReadRVA(p, 0x1000)
	if n != 0x100 || !errors.Is(err, ErrTruncated) {
		t.Errorf("ReadRVA = %d, %v", n, err)
	}
	if _, err := f.UnwindInfo(rf(0x1000, 0x1040, 0x3000)); err == nil {
		t.Error("UnwindInfo of missing data succeeded")
	}
}

// TestUnwindInfoAtImageEnd decodes an UNWIND_INFO in the last bytes of the
// image, where fewer than unwindinfo.MaxSize bytes are readable.
func TestUnwindInfoAtImageEnd(t *testing.T) {
	s := tableSynth(rf(0x1000, 0x1010, 0x3ffc), rf(0x1010, 0x1020, 0x3ffe))
	s.sections[1].data = make([]byte, 0x1000)
	copy(s.sections[1].data[0xffc:], []byte{0x01, 0x00, 0x00, 0x00})
	s.sections = s.sections[:2]
	s.sections = append(s.sections, synthSection{name: ".pdata", va: 0x2000, data: rfBytes(rf(0x1000, 0x1010, 0x3ffc), rf(0x1010, 0x1020, 0x3ffe))})
	s.excRVA = 0x2000
	file, mapped := openSynth(t, s)
	for _, f := range []*File{file, mapped} {
		if f.SizeOfImage() != 0x4000 {
			t.Fatalf("SizeOfImage = %#x", f.SizeOfImage())
		}
		if info, err := f.UnwindInfo(f.Functions()[0]); err != nil || info.Version != 1 {
			t.Errorf("UnwindInfo at the end = %+v, %v", info, err)
		}
		_, err := f.UnwindInfo(f.Functions()[1])
		var ue *UnmappedError
		if !errors.Is(err, unwindinfo.ErrTruncated) || !errors.As(err, &ue) {
			t.Errorf("UnwindInfo across the end: %v", err)
		}
	}
}

func TestOpenClose(t *testing.T) {
	f := mustOpen(t, goMingwExec(t))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// NewFile does not close its reader.
	g, err := NewFile(bytes.NewReader(basicSynth().file()))
	if err != nil || g.Close() != nil {
		t.Fatal(err)
	}
	if _, err := Open("/nonexistent/image.exe"); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	var _ io.Closer = f
}

func BenchmarkLookupFunctionEntry(b *testing.B) {
	f := mustOpen(b, goMingwExec(b))
	fns := f.Functions()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		fn := fns[i%len(fns)]
		f.LookupFunctionEntry(fn.BeginAddress + (fn.EndAddress-fn.BeginAddress)/2)
		i++
	}
}
