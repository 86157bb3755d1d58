package cfi

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/unwind"
)

const (
	libcPath = "/lib/x86_64-linux-gnu/libc.so.6"
	ldsoPath = "/lib64/ld-linux-x86-64.so.2"
	testBias = 0x7f1234500000 // load bias of the synthetic images
)

func openSystem(t testing.TB, path string) *File {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		testenv.Unavailable(t, "needs %s: %v", path, err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// testContext returns a context whose registers hold distinct values.
func testContext() unwind.Context {
	var ctx unwind.Context
	for r := range 16 {
		ctx.SetReg(dwarfToContext[r], 0x1111_0000_0000_0000+uint64(r)*0x1_0001)
	}
	ctx.FsBase, ctx.GsBase = 0xf5, 0x65
	return ctx
}

func putU64(b []byte, off uint64, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

// TestStepRows unwinds a synthetic frame at the first address of every
// row of every FDE of libc and ld.so whose rules are register-based: the
// registers hold distinct values, the stack holds distinct saved values
// where the rules say, and Step, which finds the FDE through
// .eh_frame_hdr, must give them back.
func TestStepRows(t *testing.T) {
	for _, path := range []string{libcPath, ldsoPath} {
		f := openSystem(t, path)
		if err := f.load(); err != nil || f.hdr == nil {
			t.Fatalf("%s: no .eh_frame_hdr table", path)
		}
		const stackBase, stackSize = 0x7ffd_0000_0000, 0x10000
		frames, skipped, ends := 0, 0, 0
		err := f.FDEs(func(fd FDE) bool {
			rows, err := f.RowsOf(fd)
			if err != nil {
				t.Errorf("%s+%#x: %v", fd.Section, fd.Off, err)
				return true
			}
			for i, row := range rows {
				if row.Loc >= fd.End || (i+1 < len(rows) && rows[i+1].Loc == row.Loc) {
					continue
				}
				if !stepRow(t, f, fd, row, stackBase, stackSize, &ends) {
					skipped++
					continue
				}
				frames++
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d frames unwound (%d outermost), %d rows with expression or register rules skipped", path, frames, ends, skipped)
		if frames < 1000 {
			t.Errorf("only %d frames", frames)
		}
	}
}

func stepRow(t *testing.T, f *File, fd FDE, row Row, stackBase, stackSize uint64, ends *int) bool {
	if row.CFA.Kind != RuleCFA || row.CFA.Reg >= 16 {
		return false
	}
	for _, r := range row.Regs {
		switch r.Kind {
		case RuleExpression, RuleValExpression, RuleRegister:
			return false
		}
	}
	ctx := testContext()
	cfa := stackBase + stackSize/2
	ctx.SetReg(dwarfToContext[row.CFA.Reg], cfa-uint64(row.CFA.Offset))
	ctx.Rip = row.Loc + testBias
	stack := make([]byte, stackSize)
	want := ctx
	want.Rsp = cfa
	for r, rule := range row.Regs {
		switch rule.Kind {
		case RuleOffset:
			v := 0x5a5a_0000_0000_0000 + uint64(r)
			putU64(stack, cfa+uint64(rule.Offset)-stackBase, v)
			if r == RegRA {
				want.Rip = v
			} else {
				want.SetReg(dwarfToContext[r], v)
			}
		case RuleValOffset:
			want.SetReg(dwarfToContext[r], cfa+uint64(rule.Offset))
		}
	}
	var mem unwind.SplicedMemory
	mem.Add(stackBase, stack)
	got := ctx
	res, ok, err := f.Step(&got, testBias, ctx.Rip, &mem)
	if err != nil || !ok {
		t.Errorf("%s+%#x at %#x: Step: ok=%v, %v", fd.Section, fd.Off, row.Loc, ok, err)
		return true
	}
	if row.Regs[fd.RAReg].Kind == RuleUndefined {
		// The outermost frame (clone, _start): End, and ctx unchanged.
		*ends++
		want = ctx
	}
	if res.CFA != cfa || res.End != (row.Regs[fd.RAReg].Kind == RuleUndefined) || res.Signal {
		t.Errorf("%s+%#x at %#x: %+v, want CFA %#x", fd.Section, fd.Off, row.Loc, res, cfa)
	}
	if got != want {
		t.Errorf("%s+%#x at %#x:\ngot  %+v\nwant %+v", fd.Section, fd.Off, row.Loc, got, want)
	}
	return true
}

// ucontext offsets (glibc sysdeps/unix/sysv/linux/x86_64/ucontext_i.sym):
// uc_mcontext.gregs starts at 40, in the order of REG_R8 ... REG_RIP.
var gregOrder = []int{RegR8, 9, 10, 11, 12, 13, 14, RegR15, RegRDI, RegRSI, RegRBP, RegRBX, RegRDX, RegRAX, RegRCX, RegRSP, RegRA}

// TestStepSignalFrame unwinds glibc's __restore_rt, whose FDE (CIE
// augmentation "zRS") recovers the CFA and every register from the
// ucontext on the stack with DW_CFA_def_cfa_expression and
// DW_CFA_expression.
func TestStepSignalFrame(t *testing.T) {
	f := openSystem(t, libcPath)
	var sig *FDE
	f.FDEs(func(fd FDE) bool {
		if fd.Signal {
			sig = &fd
			return false
		}
		return true
	})
	if sig == nil {
		t.Fatal("no signal frame FDE in libc")
	}
	const uc = 0x7ffe_0000_1000
	mem := make([]byte, 0x400)
	want := testContext()
	for i, r := range gregOrder {
		v := 0x0bad_0000_0000_0000 + uint64(i)<<8
		putU64(mem, 40+8*uint64(i), v)
		if r == RegRA {
			want.Rip = v
		} else {
			want.SetReg(dwarfToContext[r], v)
		}
	}
	var sm unwind.SplicedMemory
	sm.Add(uc, mem)
	// The handler returned into __restore_rt: rsp points at the ucontext.
	ctx := testContext()
	ctx.Rsp = uc
	ctx.Rip = sig.Begin + 1 + testBias // __restore_rt follows a nop the FDE covers
	got := ctx
	res, ok, err := f.Step(&got, testBias, ctx.Rip, &sm)
	if err != nil || !ok {
		t.Fatalf("Step: %v, %v", ok, err)
	}
	if !res.Signal || res.End || res.CFA != want.Rsp {
		t.Errorf("result %+v, want Signal and CFA %#x", res, want.Rsp)
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// Without the ucontext in memory, the error says what was unreadable.
	var empty unwind.SplicedMemory
	got = ctx
	_, ok, err = f.Step(&got, testBias, ctx.Rip, &empty)
	var ue *unwind.UnmappedError
	if !ok || !errors.Is(err, unwind.ErrShortRead) || !errors.As(err, &ue) || ue.Addr != uc+160 {
		t.Errorf("Step without memory: ok=%v, %v", ok, err)
	}
	if got != ctx {
		t.Error("a failed Step changed the context")
	}
}

// TestStepNoFDE: an address no FDE covers is not an error.
func TestStepNoFDE(t *testing.T) {
	f := openSystem(t, libcPath)
	ctx := testContext()
	for _, pc := range []uint64{0, 1, testBias - 1, ^uint64(0)} {
		if _, ok, err := f.Step(&ctx, testBias, pc, nil); ok || err != nil {
			t.Errorf("Step(%#x) = %v, %v", pc, ok, err)
		}
	}
}

// TestConcurrentLookups looks up every FDE of a fresh File from several
// goroutines at once, through .eh_frame_hdr and through the index (run
// with -race).
func TestConcurrentLookups(t *testing.T) {
	var begins []uint64
	openSystem(t, libcPath).FDEs(func(fd FDE) bool {
		if fd.Begin < fd.End {
			begins = append(begins, fd.Begin)
		}
		return true
	})
	f := openSystem(t, libcPath)
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i, pc := range begins {
				var err error
				if (i+g)%2 == 0 {
					_, _, err = f.lookup(pc)
				} else {
					f.load()
					var fd *fde
					fd, err = f.eh.search(pc)
					if err == nil && fd == nil {
						err = errors.New("not found")
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
