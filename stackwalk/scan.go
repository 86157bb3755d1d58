package stackwalk

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/fntable/fntable/unwind"
)

// HowScan is a frame whose return address was found by scanning the stack
// (Options.Scan): no unwinder knew the frame below it, so its PC is a
// guess, and its registers other than RIP and RSP are those of the frame
// below.
const HowScan = HowGo + 1

// Limits of the stack scan.
const (
	// MaxScanWords bounds the words a scan reads above the last good SP:
	// 8 KiB of stack, as far as Breakpad's scan looks for the innermost
	// frame, more than any frame of code without unwind data needs.
	MaxScanWords = 1024
	// maxCallLen is the longest call instruction recognized before a
	// return address: FF /2 with a REX prefix, a SIB byte and a 32-bit
	// displacement is 8 bytes.
	maxCallLen = 8
	// minCallLen is the shortest: FF D0 (call rax).
	minCallLen = 2
)

// scan looks for the caller of the frame with registers ctx, whose code no
// unwinder knows: the first word at or above ctx.Rsp, within MaxScanWords
// words, that is a return address — it points just after a call
// instruction in code, that is, in a module or in a dynamic function
// table's range, and in executable memory where the target's mappings are
// known. ctx becomes the caller's (RIP and RSP; the other registers stay
// as they were). ok is false when no such word was found.
func (s *Sources) scan(ctx *unwind.Context) (stepResult, bool) {
	var buf [512]byte
	sp := ctx.Rsp &^ 7
	for i := 0; i < MaxScanWords; {
		n, _ := s.mem.ReadMemory(buf[:min(len(buf), 8*(MaxScanWords-i))], sp)
		n &^= 7
		if n == 0 {
			return stepResult{}, false
		}
		for off := 0; off < n; off += 8 {
			pc := binary.LittleEndian.Uint64(buf[off:])
			if s.returnAddress(pc) {
				slot := sp + uint64(off)
				ctx.Rip, ctx.Rsp = pc, slot+8
				return stepResult{how: HowScan, cfa: slot + 8}, true
			}
		}
		i += n / 8
		sp += uint64(n)
	}
	return stepResult{}, false
}

// returnAddress reports whether pc may be a return address: it is in
// code that something describes (a module, a dynamic function table) and
// executable, and the bytes before it are a call instruction.
func (s *Sources) returnAddress(pc uint64) bool {
	if pc < maxCallLen || !s.executable(pc) {
		return false
	}
	_, inModule := s.Module(pc - 1)
	if !inModule {
		inTable := false
		if t, _ := s.TableAt(pc - 1); t != nil || s.emptyTableAt(pc-1) != nil {
			inTable = true
		} else if s.dyn != nil {
			_, _, inTable = s.dyn.LookupFunctionEntry(pc - 1)
		}
		if !inTable {
			return false
		}
	}
	var code [maxCallLen]byte
	if n, err := s.mem.ReadMemory(code[:], pc-maxCallLen); err != nil || n < maxCallLen {
		return false
	}
	return endsWithCall(code[:])
}

// endsWithCall reports whether code ends with a call instruction: some
// suffix of it decodes to exactly one CALL.
func endsWithCall(code []byte) bool {
	for l := minCallLen; l <= len(code); l++ {
		inst, err := x86asm.Decode(code[len(code)-l:], 64)
		if err == nil && inst.Len == l && inst.Op == x86asm.CALL {
			return true
		}
	}
	return false
}

// scanError is the error of a frame that neither an unwinder nor the scan
// could leave.
func scanError(err error) error {
	return fmt.Errorf("%w; no return address in the %d words above it", err, MaxScanWords)
}
