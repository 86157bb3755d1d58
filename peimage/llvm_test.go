package peimage

import (
	"bufio"
	"debug/pe"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/unwindinfo"
)

// llvmFunction is one RuntimeFunction block of an llvm-readobj --unwind
// listing. Addresses are as printed: virtual addresses for images.
type llvmFunction struct {
	line                   int
	start, end, unwindAddr uint64
	xdataOff               uint64 // objects: the ".xdata +0x10" addend
	info                   *llvmInfo
}

type llvmInfo struct {
	version, flags, prolog uint64
	frameReg               string // "-" or "RBP"
	frameOffset            string // "-" or the unscaled value "0x3"
	codeCount              uint64
	codes                  []string // "0x04: ALLOC_SMALL size=56"
	handler                *uint64
	chained                *[3]uint64
}

var (
	llvmValue   = regexp.MustCompile(`\((0x[0-9A-Fa-f]+)\)\s*$`)
	llvmAddend  = regexp.MustCompile(`\.xdata \+(0x[0-9A-Fa-f]+)`)
	llvmCodeRE  = regexp.MustCompile(`^0x[0-9A-F]{2}: `)
	llvmFrameRE = regexp.MustCompile(`^(\w+) \(0x[0-9A-F]+\)$`)
)

// parseLLVM parses an llvm-readobj 14 --unwind listing.
func parseLLVM(t *testing.T, path string) []*llvmFunction {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var fns []*llvmFunction
	var cur *llvmFunction
	inChained := false
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		key, val, _ := strings.Cut(line, ": ")
		num := func() uint64 {
			s := val
			if m := llvmValue.FindStringSubmatch(line); m != nil {
				s = m[1]
			}
			v, err := strconv.ParseUint(s, 0, 64)
			if err != nil {
				t.Fatalf("%s:%d: %q: %v", filepath.Base(path), n, line, err)
			}
			return v
		}
		switch {
		case line == "RuntimeFunction {":
			cur = &llvmFunction{line: n}
			fns = append(fns, cur)
		case line == "UnwindInfo {":
			cur.info = &llvmInfo{}
		case line == "Chained {":
			inChained = true
			cur.info.chained = new([3]uint64)
		case line == "}" && inChained:
			inChained = false
		case inChained && key == "StartAddress":
			cur.info.chained[0] = num()
		case inChained && key == "EndAddress":
			cur.info.chained[1] = num()
		case inChained && key == "UnwindInfoAddress":
			cur.info.chained[2] = num()
		case key == "StartAddress":
			cur.start = num()
		case key == "EndAddress":
			cur.end = num()
		case key == "UnwindInfoAddress":
			cur.unwindAddr = num()
			if m := llvmAddend.FindStringSubmatch(line); m != nil {
				cur.xdataOff, _ = strconv.ParseUint(m[1], 0, 64)
			}
		case key == "Version":
			cur.info.version = num()
		case strings.HasPrefix(line, "Flags [ ("):
			v, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(line, "Flags [ ("), ")"), 0, 64)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
			cur.info.flags = v
		case key == "PrologSize":
			cur.info.prolog = num()
		case key == "FrameRegister":
			cur.info.frameReg = val
			if m := llvmFrameRE.FindStringSubmatch(val); m != nil {
				cur.info.frameReg = m[1]
			}
		case key == "FrameOffset":
			cur.info.frameOffset = val
		case key == "UnwindCodeCount":
			cur.info.codeCount = num()
		case llvmCodeRE.MatchString(line):
			cur.info.codes = append(cur.info.codes, line)
		case key == "Handler":
			v := num()
			cur.info.handler = &v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return fns
}

// llvmCode renders code i of info as llvm-readobj 14 prints it
// (llvm/tools/llvm-readobj/Win64EHDumper.cpp): sizes in bytes, offsets
// unscaled, registers in upper case.
func llvmCode(info *unwindinfo.Info, c unwindinfo.Code) string {
	s := fmt.Sprintf("0x%02X: %s", c.Offset, c.Op.Name())
	reg := func(r unwindinfo.Register) string { return strings.ToUpper(r.String()) }
	switch c.Op {
	case unwindinfo.UWOP_PUSH_NONVOL:
		s += " reg=" + reg(c.Register())
	case unwindinfo.UWOP_ALLOC_SMALL, unwindinfo.UWOP_ALLOC_LARGE:
		s += fmt.Sprintf(" size=%d", c.AllocSize())
	case unwindinfo.UWOP_SET_FPREG:
		s += fmt.Sprintf(" reg=%s, offset=0x%X", reg(info.FrameRegister), info.Header().FrameOffsetBytes())
	case unwindinfo.UWOP_SAVE_NONVOL, unwindinfo.UWOP_SAVE_NONVOL_FAR:
		s += fmt.Sprintf(" reg=%s, offset=0x%X", reg(c.Register()), c.StackOffset())
	case unwindinfo.UWOP_SAVE_XMM128, unwindinfo.UWOP_SAVE_XMM128_FAR:
		s += fmt.Sprintf(" reg=XMM%d, offset=0x%X", c.XMM(), c.StackOffset())
	case unwindinfo.UWOP_PUSH_MACHFRAME:
		s += " errcode=" + map[bool]string{false: "no", true: "yes"}[c.MachineFrameErrorCode()]
	}
	return s
}

// oracleCounts are the totals of the llvm-readobj comparison.
type oracleCounts struct {
	functions, codes, excluded int
}

// compareLLVM compares one decoded UNWIND_INFO with its listing block.
// base is added to our RVAs to get the printed addresses (0 for objects,
// where addresses are not compared).
func compareLLVM(t *testing.T, where string, info *unwindinfo.Info, want *llvmInfo, base uint64, image bool, c *oracleCounts) {
	t.Helper()
	errorf := func(format string, args ...any) { t.Errorf("%s: "+format, append([]any{where}, args...)...) }
	h := info.Header()
	if uint64(info.Version) != want.version || uint64(info.Flags) != want.flags || uint64(info.SizeOfProlog) != want.prolog ||
		uint64(h.CountOfCodes) != want.codeCount {
		errorf("header v%d flags %#x prolog %d count %d; llvm v%d flags %#x prolog %d count %d",
			info.Version, info.Flags, info.SizeOfProlog, h.CountOfCodes, want.version, want.flags, want.prolog, want.codeCount)
	}
	reg, off := "-", "-"
	if info.FrameRegister != 0 {
		reg, off = strings.ToUpper(info.FrameRegister.String()), fmt.Sprintf("0x%X", info.FrameOffset)
	}
	if reg != want.frameReg || off != want.frameOffset {
		errorf("frame %s %s; llvm %s %s", reg, off, want.frameReg, want.frameOffset)
	}
	if len(info.Codes) != len(want.codes) {
		errorf("%d codes; llvm %d", len(info.Codes), len(want.codes))
	}
	for i := range min(len(info.Codes), len(want.codes)) {
		if got := llvmCode(info, info.Codes[i]); got != want.codes[i] {
			errorf("code %d = %q; llvm %q", i, got, want.codes[i])
		} else {
			c.codes++
		}
	}
	if info.Flags.HasHandler() != (want.handler != nil) {
		errorf("handler present %v; llvm %v", info.Flags.HasHandler(), want.handler != nil)
	} else if image && want.handler != nil && base+uint64(info.Handler) != *want.handler && info.Handler != 0 {
		// llvm-readobj prints a zero RVA as the offset of the field in its
		// section (as for the all-zero entries), so only nonzero RVAs compare.
		errorf("handler %#x; llvm %#x", base+uint64(info.Handler), *want.handler)
	}
	isChained := info.Flags&unwindinfo.UNW_FLAG_CHAININFO != 0
	if isChained != (want.chained != nil) {
		errorf("chained %v; llvm %v", isChained, want.chained != nil)
	} else if image && isChained {
		ch := info.Chained
		if got := [3]uint64{base + uint64(ch.BeginAddress), base + uint64(ch.EndAddress), base + uint64(ch.UnwindData)}; got != *want.chained {
			errorf("chained %#x; llvm %#x", got, *want.chained)
		}
	}
	c.functions++
}

// TestLLVMReadobjOracle compares our decoding of every shared PE file with
// the llvm-readobj 14 --unwind listings in ../shared/testdata/expected.
func TestLLVMReadobjOracle(t *testing.T) {
	dir := winetest.Testdata(t, "expected")
	listings, err := filepath.Glob(filepath.Join(dir, "*.llvm-readobj14-unwind.txt"))
	if err != nil || len(listings) == 0 {
		t.Fatalf("no listings in %s: %v", dir, err)
	}
	var total oracleCounts
	for _, listing := range listings {
		name := strings.TrimSuffix(filepath.Base(listing), ".llvm-readobj14-unwind.txt")
		var c oracleCounts
		t.Run(name, func(t *testing.T) {
			want := parseLLVM(t, listing)
			path := winetest.Testdata(t, "pe/"+name)
			if strings.HasSuffix(name, ".obj") || strings.HasSuffix(name, "-obj") {
				compareObject(t, path, want, &c)
			} else {
				compareImage(t, path, want, &c)
			}
			t.Logf("%d functions and %d codes match; %d listing entries excluded", c.functions, c.codes, c.excluded)
		})
		total.functions += c.functions
		total.codes += c.codes
		total.excluded += c.excluded
	}
	t.Logf("llvm-readobj oracle: %d functions and %d unwind codes match; %d listing entries excluded",
		total.functions, total.codes, total.excluded)
}

func compareImage(t *testing.T, path string, want []*llvmFunction, c *oracleCounts) {
	f := mustOpen(t, path)
	fns := f.Functions()
	base := f.ImageBase()
	// llvm-readobj lists the whole .pdata section, not the directory Size:
	// for symbolic-cfi_chained_loop.exe only the first of its 42 entries is
	// real, the other 41 are the section's padding and are excluded.
	if len(want) < len(fns) {
		t.Fatalf("listing has %d entries, the exception directory %d", len(want), len(fns))
	}
	c.excluded += len(want) - len(fns)
	for i, rf := range fns {
		w := want[i]
		where := fmt.Sprintf("%s entry %d (listing line %d)", filepath.Base(path), i, w.line)
		if rf == (unwindinfo.RuntimeFunction{}) {
			// All-zero entries: llvm-readobj prints the field offsets and
			// no UnwindInfo.
			if w.info != nil {
				t.Errorf("%s: zero entry has unwind info in the listing", where)
			}
			c.functions++
			continue
		}
		if got := [3]uint64{base + uint64(rf.BeginAddress), base + uint64(rf.EndAddress), base + uint64(rf.UnwindData)}; got != [3]uint64{w.start, w.end, w.unwindAddr} {
			t.Errorf("%s: entry %#x; llvm %#x", where, got, [3]uint64{w.start, w.end, w.unwindAddr})
		}
		info, err := f.UnwindInfo(rf)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if w.info == nil {
			t.Errorf("%s: no UnwindInfo in the listing", where)
			continue
		}
		compareLLVM(t, where, info, w.info, base, true, c)
	}
}

// compareObject compares the listing of a COFF object, which peimage
// rejects, by decoding its .xdata section with debug/pe: the listing gives
// each entry's offset in .xdata (the relocation addend).
func compareObject(t *testing.T, path string, want []*llvmFunction, c *oracleCounts) {
	if _, err := Open(path); err == nil {
		t.Fatalf("Open(%s) accepted a COFF object", path)
	}
	pf, err := pe.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	sec := pf.Section(".xdata")
	if sec == nil {
		t.Fatal("no .xdata section")
	}
	xdata, err := sec.Data()
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		where := fmt.Sprintf("%s entry %d (listing line %d)", filepath.Base(path), i, w.line)
		if w.xdataOff >= uint64(len(xdata)) || w.info == nil {
			t.Errorf("%s: .xdata offset %#x out of range or no unwind info", where, w.xdataOff)
			continue
		}
		info, err := unwindinfo.Decode(xdata[w.xdataOff:])
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		compareLLVM(t, where, info, w.info, 0, false, c)
	}
}
