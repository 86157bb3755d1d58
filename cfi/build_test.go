package cfi

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Builders of synthetic call-frame sections for tests and fuzz seeds.

func uleb128(v uint64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb128(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// entryBytes frames body (starting with the CIE id or pointer) with its
// length, in the 32- or 64-bit format.
func entryBytes(is64 bool, id uint64, body []byte) []byte {
	if is64 {
		return cat(u32(0xffffffff), u64(uint64(8+len(body))), u64(id), body)
	}
	return cat(u32(uint32(4+len(body))), u32(uint32(id)), body)
}

// buildDebugFrame builds a .debug_frame: one CIE (version, augmentation "",
// code alignment 1, data alignment -8, return address 16, initial
// instructions cieInsns) and one FDE for [begin, begin+size) per program.
func buildDebugFrame(is64 bool, version byte, cieInsns []byte, begin, size uint64, progs ...[]byte) []byte {
	ciebody := cat([]byte{version, 0}) // version, augmentation ""
	if version == 4 {
		ciebody = append(ciebody, 8, 0) // address size, segment selector size
	}
	ra := []byte{16}
	if version != 1 {
		ra = uleb128(16)
	}
	ciebody = cat(ciebody, uleb128(1), sleb128(-8), ra, cieInsns)
	cieID := uint64(0xffffffff)
	if is64 {
		cieID = ^uint64(0)
	}
	sec := entryBytes(is64, cieID, ciebody)
	for _, p := range progs {
		sec = append(sec, entryBytes(is64, 0, cat(u64(begin), u64(size), p))...)
	}
	return sec
}

// buildEhFrame builds an .eh_frame at address addr: a CIE "zR" with FDE
// encoding pcrel|sdata4 and the given initial instructions, one FDE per
// program, the ith for [begin+i*size, begin+(i+1)*size), and the
// terminator.
func buildEhFrame(addr uint64, cieInsns []byte, begin, size uint64, progs ...[]byte) []byte {
	ciebody := cat([]byte{1, 'z', 'R', 0}, uleb128(1), sleb128(-8), []byte{16}, uleb128(1), []byte{DW_EH_PE_pcrel | DW_EH_PE_sdata4}, cieInsns)
	sec := entryBytes(false, 0, ciebody)
	for i, p := range progs {
		idPos := len(sec) + 4
		pcField := addr + uint64(idPos) + 4
		body := cat(u32(uint32(int32(begin+uint64(i)*size-pcField))), u32(uint32(size)), uleb128(0), p)
		sec = append(sec, entryBytes(false, uint64(idPos), body)...)
	}
	return append(sec, 0, 0, 0, 0)
}

// newTestSection returns a section over data.
func newTestSection(kind secKind, data []byte, addr uint64) *section {
	name := ".eh_frame"
	if kind == debugFrame {
		name = ".debug_frame"
	}
	return &section{name: name, kind: kind, data: data, addr: addr, bases: bases{addrSize: 8}}
}

// rowString renders a row compactly: "loc CFA reg=rule ...", with only the
// registers that have a rule.
func rowString(r Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%#x %s", r.Loc, r.CFA)
	for i, rule := range r.Regs {
		if rule.Kind != RuleUnspecified {
			fmt.Fprintf(&b, " %s=%s", RegName(i), rule)
		}
	}
	return b.String()
}
