package cfi

import (
	"fmt"
	"strconv"
)

// NumRegs is the number of DWARF registers whose rules a [Row] keeps: the
// x86-64 general-purpose registers 0–15 and the return address, 16.
// Rules for other registers (the XMM registers, 17–32) are parsed and
// dropped.
//
// The x86-64 DWARF register numbers (System V psABI, "DWARF Register
// Number Mapping") are 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp,
// 7 rsp, 8–15 r8–r15, 16 the return address (rip).
const NumRegs = 17

// DWARF register numbers of x86-64.
const (
	RegRAX = 0
	RegRDX = 1
	RegRCX = 2
	RegRBX = 3
	RegRSI = 4
	RegRDI = 5
	RegRBP = 6
	RegRSP = 7
	RegR8  = 8
	RegR15 = 15
	RegRA  = 16 // the return address column, rip
)

var regNames = [NumRegs]string{"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"}

// RegName returns the name of DWARF register r of x86-64 ("rax", "rip",
// "xmm0") or "rN" for a number with no name.
func RegName(r int) string {
	switch {
	case r >= 0 && r < NumRegs:
		return regNames[r]
	case r >= 17 && r <= 32:
		return "xmm" + strconv.Itoa(r-17)
	}
	return "r" + strconv.Itoa(r)
}

// RuleKind says how a register of the caller, or the CFA, is recovered.
// Reference: DWARF 5 §6.4.1.
type RuleKind uint8

const (
	// RuleUnspecified: no instruction gave a rule. On x86-64, GCC and the
	// unwinders of libgcc and glibc treat such a register as keeping its
	// value, and so does [File.Step].
	RuleUnspecified   RuleKind = iota
	RuleUndefined              // the value cannot be recovered (DW_CFA_undefined)
	RuleSameValue              // the value is unchanged (DW_CFA_same_value)
	RuleOffset                 // saved at CFA+Offset (DW_CFA_offset and friends)
	RuleValOffset              // the value is CFA+Offset (DW_CFA_val_offset)
	RuleRegister               // the value is in register Reg (DW_CFA_register)
	RuleExpression             // saved at the address Expr computes, CFA pushed first (DW_CFA_expression)
	RuleValExpression          // the value is what Expr computes, CFA pushed first (DW_CFA_val_expression)
	RuleCFA                    // CFA rule only: the CFA is register Reg + Offset (DW_CFA_def_cfa)
	RuleCFAExpression          // CFA rule only: the CFA is what Expr computes (DW_CFA_def_cfa_expression)
)

var ruleNames = [...]string{"unspecified", "undefined", "same", "offset", "val_offset", "register",
	"expression", "val_expression", "cfa", "cfa_expression"}

func (k RuleKind) String() string {
	if int(k) < len(ruleNames) {
		return ruleNames[k]
	}
	return "RuleKind(" + strconv.Itoa(int(k)) + ")"
}

// Rule is the rule for one register, or for the CFA, in a [Row].
type Rule struct {
	Kind   RuleKind
	Reg    int    // RuleRegister, RuleCFA: DWARF register number
	Offset int64  // RuleOffset, RuleValOffset, RuleCFA: byte offset (already scaled by the data alignment)
	Expr   []byte // RuleExpression, RuleValExpression, RuleCFAExpression: the DWARF expression
}

// String renders r in the style of readelf --debug-dump=frames-interp:
// "u", "s", "c-16", "v+8", "rbx", "exp", "vexp", "rsp+8".
func (r Rule) String() string {
	switch r.Kind {
	case RuleUnspecified:
		return "."
	case RuleUndefined:
		return "u"
	case RuleSameValue:
		return "s"
	case RuleOffset:
		return fmt.Sprintf("c%+d", r.Offset)
	case RuleValOffset:
		return fmt.Sprintf("v%+d", r.Offset)
	case RuleRegister:
		return RegName(r.Reg)
	case RuleExpression, RuleCFAExpression:
		return "exp"
	case RuleValExpression:
		return "vexp"
	case RuleCFA:
		return fmt.Sprintf("%s%+d", RegName(r.Reg), r.Offset)
	}
	return r.Kind.String()
}

// Row is one row of the table an FDE describes (DWARF 5 §6.4.1): from Loc,
// a link-time address, up to the next row's Loc, the CFA and the
// registers of the caller are recovered by these rules.
type Row struct {
	Loc  uint64
	CFA  Rule
	Regs [NumRegs]Rule // indexed by DWARF register number
}

// regState is the rule set a CFA program changes.
type regState struct {
	cfa  Rule
	regs [NumRegs]Rule
}
