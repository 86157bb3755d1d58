package jitgen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/fntable/fntable/unwindinfo"
)

// Image layout constants.
const (
	numHandlers = 4  // handler stubs at the start of the image
	numSlots    = 8  // 8-byte slots for jmp [rip+disp32]
	codeAlign   = 16 // alignment of functions and cold fragments
	int3        = 0xcc
)

// Build generates cfg.Functions functions with rng and lays them out in an
// image: handler stubs and jump slots, the primary entries (each followed
// by the fragments placed next to it), the other fragments, the
// UNWIND_INFO blocks (4-byte aligned, with the handler data after the
// handler RVA) and the sorted RUNTIME_FUNCTION table.
func Build(cfg Config, rng *rand.Rand) *Image {
	if cfg.Functions <= 0 {
		cfg.Functions = DefaultFunctions
	}
	if cfg.Base == 0 {
		cfg.Base = DefaultBase
	}
	if cfg.Executable {
		cfg.Omit |= ExecutableOmits
	}
	g := &gen{cfg: &cfg, rng: rng, nfn: cfg.Functions, nslots: numSlots}
	fbs := make([]*fbuild, cfg.Functions)
	for i := range fbs {
		fbs[i] = g.function(i)
	}

	img := &Image{Base: cfg.Base, owners: map[uint32]owner{}}
	var buf []byte
	align := func(n int, fill byte) {
		for len(buf)%n != 0 {
			buf = append(buf, fill)
		}
	}
	for range numHandlers {
		img.Handlers = append(img.Handlers, uint32(len(buf)))
		buf = append(buf, 0x31, 0xc0, 0xc3) // xor eax, eax; ret
		align(codeAlign, int3)
	}
	for range numSlots {
		img.Slots = append(img.Slots, uint32(len(buf)))
		buf = binary.LittleEndian.AppendUint64(buf, rng.Uint64())
	}
	align(codeAlign, int3)

	// Code. Each entry that an epilog leaves through a thunk is followed
	// by one: a jmp rel32 to some function, outside every entry.
	begin := map[*ebuild]uint32{}
	thunk := map[*ebuild]uint32{}
	type thunkFix struct {
		at     uint32
		target int
	}
	var thunkFixes []thunkFix
	place := func(b *fbuild, e *ebuild) {
		begin[e] = uint32(len(buf))
		buf = append(buf, e.code...)
		if e.thunk {
			e.thunkPad = rng.IntN(8)
			for range e.thunkPad {
				buf = append(buf, int3)
			}
			thunk[e] = uint32(len(buf))
			t := b.otherFunction()
			if t < 0 {
				t = b.f.ID
			}
			thunkFixes = append(thunkFixes, thunkFix{uint32(len(buf)) + 1, t})
			buf = append(buf, 0xe9, 0, 0, 0, 0)
		}
	}
	for _, b := range fbs {
		for _, e := range b.es {
			if e.idx == 0 || e.adjacent {
				place(b, e)
			}
		}
		align(codeAlign, int3)
	}
	for _, b := range fbs {
		for _, e := range b.es[1:] {
			if !e.adjacent {
				place(b, e)
				align(codeAlign, int3)
			}
		}
	}
	for _, t := range thunkFixes {
		next := t.at + 4
		binary.LittleEndian.PutUint32(buf[t.at:], begin[fbs[t.target].es[0]]-next)
	}

	// Unwind information: first the addresses, since chained entries
	// name their parents', then the bytes.
	align(4, 0)
	infoRVA := map[*ebuild]uint32{}
	infoSize := func(b *fbuild, e *ebuild) uint32 {
		n := uint32(e.info.Size())
		if e.idx == 0 {
			n += uint32(len(b.f.HandlerData))
		}
		return (n + 3) &^ 3
	}
	at := uint32(len(buf))
	for _, b := range fbs {
		for _, e := range b.es {
			infoRVA[e] = at
			at += infoSize(b, e)
		}
	}
	for _, b := range fbs {
		for _, e := range b.es {
			if e.idx == 0 {
				if e.info.Flags.HasHandler() {
					e.info.Handler = img.Handlers[rng.IntN(len(img.Handlers))]
				}
			} else {
				p := b.es[e.parent]
				e.info.Chained = unwindinfo.RuntimeFunction{BeginAddress: begin[p], EndAddress: begin[p] + uint32(len(p.code)), UnwindData: infoRVA[p]}
			}
			var err error
			if buf, err = e.info.Append(buf); err != nil {
				panic(fmt.Sprintf("jitgen: encode generated unwind info: %v", err))
			}
			if e.idx == 0 {
				buf = append(buf, b.f.HandlerData...)
			}
			align(4, 0)
			if uint32(len(buf)) != infoRVA[e]+infoSize(b, e) {
				panic("jitgen: unwind info size mismatch")
			}
		}
	}

	// The function table.
	for _, b := range fbs {
		for _, e := range b.es {
			img.Table = append(img.Table, unwindinfo.RuntimeFunction{BeginAddress: begin[e], EndAddress: begin[e] + uint32(len(e.code)), UnwindData: infoRVA[e]})
		}
	}
	slices.SortFunc(img.Table, func(a, b unwindinfo.RuntimeFunction) int { return int(a.BeginAddress) - int(b.BeginAddress) })
	img.TableRVA = uint32(len(buf))
	for _, rf := range img.Table {
		buf = rf.Append(buf)
	}

	// Fixups, and the final instruction addresses and texts.
	for _, b := range fbs {
		for _, e := range b.es {
			base := begin[e]
			for _, fx := range e.fixes {
				in := &e.insts[fx.inst]
				var target uint32
				switch fx.sym.kind {
				case symInst:
					te := b.es[fx.sym.lab.entry]
					if fx.sym.lab.inst < 0 || fx.sym.lab.inst >= len(te.insts) {
						panic("jitgen: unbound label")
					}
					target = begin[te] + te.insts[fx.sym.lab.inst].RVA
				case symFunc:
					target = begin[fbs[fx.sym.fn].es[0]]
				case symThunk:
					target = thunk[b.es[fx.sym.entry]]
				case symSlot:
					target = img.Slots[fx.sym.k]
				}
				next := base + in.RVA + uint32(in.Len)
				disp := int64(target) - int64(next)
				switch fx.size {
				case 1:
					if disp < -128 || disp > 127 {
						panic(fmt.Sprintf("jitgen: rel8 displacement %d out of range", disp))
					}
					buf[base+uint32(fx.at)] = byte(int8(disp))
				case 4:
					binary.LittleEndian.PutUint32(buf[base+uint32(fx.at):], uint32(int32(disp)))
				}
				in.Target, in.HasTarget = target, true
				if fx.rip {
					in.Asm = fmt.Sprintf(fx.tmpl, fmt.Sprintf("[rip+%#x]", uint32(int32(disp))))
				} else {
					in.Asm = fmt.Sprintf(fx.tmpl, fmt.Sprintf("%#x", target))
				}
			}
		}
	}
	for _, b := range fbs {
		for _, e := range b.es {
			for i := range e.insts {
				e.insts[i].RVA += begin[e]
			}
		}
	}

	img.Bytes = buf
	for _, b := range fbs {
		f := b.f
		for i, e := range b.es {
			ent := Entry{Begin: begin[e], End: begin[e] + uint32(len(e.code)), InfoRVA: infoRVA[e], Info: e.info,
				Code: buf[begin[e] : begin[e]+uint32(len(e.code)) : begin[e]+uint32(len(e.code))], Insts: e.insts}
			if i == 0 {
				f.Entry = ent
			} else {
				f.Fragments[i-1].Entry = ent
			}
		}
		for k := range f.Epilogs {
			d := &f.Epilogs[k]
			e := b.es[d.Fragment+1]
			d.Start += begin[e]
			d.End += begin[e]
			d.V2Start += begin[e]
			if in, ok := entryOf(f, d.Fragment).InstAt(lastInst(entryOf(f, d.Fragment), d.End)); ok && in.HasTarget {
				d.Target = in.Target
			}
		}
		img.Functions = append(img.Functions, f)
		for _, e := range f.Entries() {
			img.owners[e.Begin] = owner{f, e}
		}
	}
	return img
}

// entryOf returns the entry of f for a Fragment index (-1: primary).
func entryOf(f *Function, frag int) *Entry {
	if frag < 0 {
		return &f.Entry
	}
	return &f.Fragments[frag].Entry
}

// lastInst returns the RVA of the instruction of e that ends at end.
func lastInst(e *Entry, end uint32) uint32 {
	for i := len(e.Insts) - 1; i >= 0; i-- {
		if e.Insts[i].RVA+uint32(e.Insts[i].Len) == end {
			return e.Insts[i].RVA
		}
	}
	return end
}
