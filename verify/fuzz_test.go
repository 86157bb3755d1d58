package verify

import (
	"testing"

	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// FuzzFunction checks arbitrary code against arbitrary unwind information:
// no panic, and a bounded amount of work (the fuzzer's per-input time).
// The entry is [0, len(code)) at base 0x10000; the unwind information
// lies after the code, at an RVA the input chooses. The code is also
// checked as a table of two entries.
func FuzzFunction(f *testing.F) {
	// push rbx; sub rsp, 0x20; ... add rsp, 0x20; pop rbx; ret, with its
	// UNWIND_INFO (prolog 5 bytes, ALLOC_SMALL 0x20 at 5, PUSH_NONVOL rbx at 1).
	code := []byte{0x53, 0x48, 0x83, 0xec, 0x20, 0x90, 0x48, 0x83, 0xc4, 0x20, 0x5b, 0xc3}
	info := []byte{0x01, 0x05, 0x02, 0x00, 0x05, 0x32, 0x01, 0x30}
	f.Add(code, info, uint16(0))
	f.Add([]byte{0xc3}, []byte{0x01, 0x00, 0x00, 0x00}, uint16(4))
	f.Add(code, []byte{0x02, 0x05, 0x03, 0x00, 0x02, 0x06, 0x05, 0x32, 0x01, 0x30}, uint16(16))
	f.Fuzz(func(t *testing.T, code, info []byte, gap uint16) {
		if len(code) == 0 || len(code) > 4096 || len(info) > 1024 {
			return
		}
		const base = 0x10000
		infoRVA := uint32(len(code)) + uint32(gap)
		infoRVA = (infoRVA + 3) &^ 3
		img := make([]byte, int(infoRVA)+len(info))
		copy(img, code)
		copy(img[infoRVA:], info)
		mem := &unwind.SplicedMemory{}
		mem.Add(base, img)
		fn := unwindinfo.RuntimeFunction{BeginAddress: 0, EndAddress: uint32(len(code)), UnwindData: infoRVA}
		rep, err := Function(code, base, fn, mem)
		if err == nil && rep.Functions != 1 {
			t.Fatalf("report of %d functions for one entry", rep.Functions)
		}
		// The same code as a table of two entries (split where gap says),
		// which the table check follows from one to the other, sequentially
		// and on two goroutines.
		split := 1 + uint32(gap)%uint32(len(code))
		if split == uint32(len(code)) {
			return
		}
		fns := []unwindinfo.RuntimeFunction{{BeginAddress: 0, EndAddress: split, UnwindData: infoRVA}, {BeginAddress: split, EndAddress: uint32(len(code)), UnwindData: infoRVA}}
		one, err1 := (&Checker{Memory: mem}).Table(base, fns, 0, 0)
		two, err2 := (&Checker{Memory: mem, Workers: 2}).Table(base, fns, 0, 0)
		if (err1 == nil) != (err2 == nil) || len(one.Problems) != len(two.Problems) || one.Functions != two.Functions {
			t.Fatalf("one goroutine: %d functions, %d problems, %v; two: %d functions, %d problems, %v",
				one.Functions, len(one.Problems), err1, two.Functions, len(two.Problems), err2)
		}
	})
}
