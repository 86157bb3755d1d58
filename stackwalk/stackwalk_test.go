package stackwalk_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/unwind"
)

const (
	stackLo = 0x7ffd00000000
	stackHi = stackLo + 0x10000
)

// fpStack lays out a frame-pointer chain: frames[i] is the saved rbp and
// return address pair at rbps[i].
func fpStack(t *testing.T, rbps []uint64, rets []uint64) *unwind.SplicedMemory {
	t.Helper()
	b := make([]byte, stackHi-stackLo)
	for i, fp := range rbps {
		next := uint64(0)
		if i+1 < len(rbps) {
			next = rbps[i+1]
		}
		binary.LittleEndian.PutUint64(b[fp-stackLo:], next)
		binary.LittleEndian.PutUint64(b[fp-stackLo+8:], rets[i])
	}
	m := &unwind.SplicedMemory{}
	m.Add(stackLo, b)
	return m
}

func walkAll(t *testing.T, s *stackwalk.Sources, ctx unwind.Context) ([]stackwalk.Frame, error) {
	t.Helper()
	var frames []stackwalk.Frame
	w := s.Walk(ctx)
	for w.Next() {
		frames = append(frames, w.Frame())
	}
	return frames, w.Err()
}

func TestFramePointerChain(t *testing.T) {
	rbps := []uint64{stackLo + 0x100, stackLo + 0x180, stackLo + 0x400}
	rets := []uint64{0x401111, 0x402222, 0}
	mem := fpStack(t, rbps, rets)
	s, err := stackwalk.NewSources(nil, stackwalk.Options{Memory: mem})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := walkAll(t, s, unwind.Context{Rip: 0x400500, Rsp: stackLo + 0x80, Rbp: rbps[0]})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	want := []struct {
		pc, sp, sym uint64
		how         stackwalk.How
	}{
		{0x400500, stackLo + 0x80, 0x400500, stackwalk.HowContext},
		{0x401111, rbps[0] + 16, 0x401110, stackwalk.HowFP},
		{0x402222, rbps[1] + 16, 0x402221, stackwalk.HowFP},
	}
	if len(frames) != len(want) {
		t.Fatalf("got %d frames %+v, want %d", len(frames), frames, len(want))
	}
	for i, w := range want {
		f := frames[i]
		if f.PC != w.pc || f.SP != w.sp || f.SymbolPC != w.sym || f.How != w.how {
			t.Errorf("frame %d = pc %#x sp %#x sym %#x %v, want pc %#x sp %#x sym %#x %v", i, f.PC, f.SP, f.SymbolPC, f.How, w.pc, w.sp, w.sym, w.how)
		}
		if f.CFA != rbps[i]+16 {
			t.Errorf("frame %d: cfa %#x, want %#x", i, f.CFA, rbps[i]+16)
		}
	}
}

func TestGuards(t *testing.T) {
	t.Run("stack pointer goes down", func(t *testing.T) {
		// The second frame's saved rbp points below it.
		rbps := []uint64{stackLo + 0x200, stackLo + 0x100}
		mem := fpStack(t, rbps, []uint64{0x401111, 0x402222})
		s, _ := stackwalk.NewSources(nil, stackwalk.Options{Memory: mem})
		frames, err := walkAll(t, s, unwind.Context{Rip: 0x400500, Rsp: stackLo + 0x1f0, Rbp: rbps[0]})
		var fe *stackwalk.FrameError
		if !errors.As(err, &fe) || fe.Frame != 1 {
			t.Fatalf("walk ended with %v after %d frames, want a FrameError at frame 1", err, len(frames))
		}
		if len(frames) != 2 {
			t.Errorf("got %d frames, want the 2 before the error", len(frames))
		}
	})
	t.Run("frame limit", func(t *testing.T) {
		var rbps, rets []uint64
		for i := range 40 {
			rbps = append(rbps, stackLo+0x100+uint64(i)*0x40)
			rets = append(rets, 0x401000+uint64(i))
		}
		mem := fpStack(t, rbps, rets)
		s, _ := stackwalk.NewSources(nil, stackwalk.Options{Memory: mem, MaxFrames: 10})
		frames, err := walkAll(t, s, unwind.Context{Rip: 0x400500, Rsp: stackLo + 0x80, Rbp: rbps[0]})
		if !errors.Is(err, stackwalk.ErrTooManyFrames) || len(frames) != 10 {
			t.Fatalf("walk gave %d frames and %v, want 10 and ErrTooManyFrames", len(frames), err)
		}
	})
	t.Run("unreadable stack", func(t *testing.T) {
		s, _ := stackwalk.NewSources(nil, stackwalk.Options{Memory: &unwind.SplicedMemory{}})
		frames, err := walkAll(t, s, unwind.Context{Rip: 0x400500, Rsp: stackLo + 0x80, Rbp: stackLo + 0x100})
		if err == nil || !errors.Is(err, unwind.ErrShortRead) || len(frames) != 1 {
			t.Fatalf("walk gave %d frames and %v, want 1 and a short read", len(frames), err)
		}
	})
	t.Run("no unwinder", func(t *testing.T) {
		s, _ := stackwalk.NewSources(nil, stackwalk.Options{Memory: &unwind.SplicedMemory{}})
		_, err := walkAll(t, s, unwind.Context{Rip: 0x400500, Rsp: stackLo + 0x80, Rbp: 0})
		if !errors.Is(err, stackwalk.ErrNoUnwinder) {
			t.Fatalf("walk ended with %v, want ErrNoUnwinder", err)
		}
	})
}

// FuzzWalk walks random stacks: every walk ends, with or without an
// error, within the frame limit, and nothing panics.
func FuzzWalk(f *testing.F) {
	f.Add([]byte{0x10, 0x01, 0, 0, 0, 0, 0, 0}, uint64(0x400000), uint64(0x10))
	f.Add(make([]byte, 256), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, stack []byte, rip, rbpOff uint64) {
		mem := &unwind.SplicedMemory{}
		mem.Add(stackLo, stack)
		s, err := stackwalk.NewSources(nil, stackwalk.Options{Memory: mem, MaxFrames: 64})
		if err != nil {
			t.Fatal(err)
		}
		w := s.Walk(unwind.Context{Rip: rip, Rsp: stackLo, Rbp: stackLo + rbpOff%uint64(len(stack)+16)})
		n := 0
		for w.Next() {
			n++
		}
		if n > 64 {
			t.Fatalf("%d frames past the limit", n)
		}
	})
}
