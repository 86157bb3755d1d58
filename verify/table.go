package verify

import (
	"debug/pe"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/fntable/fntable/peimage"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// Table checks a function table: the entries fns, whose RVAs are relative
// to base, and every entry's code and unwind information, read from
// c.Memory. An entry must lie in [lo, hi) (RVAs; hi 0 means no bound) and,
// when c.Executable is set, in executable memory. All-zero entries, which
// some linkers leave, are skipped. If c.Functions is nil the table itself
// serves as the function table.
//
// The entries of one function (a primary entry and the chained entries
// that lead to it) are checked in table order, so that a fragment starts
// with the state its parent's code reaches it with; with c.Workers > 1
// and no c.MaxProblems, functions are checked on that many goroutines.
// The report is the same either way.
func (c *Checker) Table(base uint64, fns []unwindinfo.RuntimeFunction, lo, hi uint32) (Report, error) {
	rep := Report{Problems: []Problem{}}
	cc := *c
	if cc.Functions == nil {
		cc.Functions = unwind.NewSortedTable(base, fns)
	}
	entries := map[uint32]unwindinfo.RuntimeFunction{}
	for _, fn := range fns {
		if fn != (unwindinfo.RuntimeFunction{}) {
			entries[fn.BeginAddress] = fn
		}
	}
	// The table checks, and which entries have code to check and of
	// which function.
	pre := make([][]Problem, len(fns))
	check := make([]bool, len(fns))
	primary := make([]uint32, len(fns))
	add := func(i int, kind Kind, format string, args ...any) {
		pre[i] = append(pre[i], Problem{Function: base + uint64(fns[i].BeginAddress), Kind: kind, Message: fmt.Sprintf(format, args...)})
	}
	var prev unwindinfo.RuntimeFunction
	scratch := new(fnCheck)
	for i, fn := range fns {
		if fn == (unwindinfo.RuntimeFunction{}) {
			continue
		}
		if i > 0 && prev != (unwindinfo.RuntimeFunction{}) {
			switch {
			case fn.BeginAddress < prev.BeginAddress:
				add(i, KindTableOrder, "entry %d [%#x, %#x) comes after [%#x, %#x): the table is not sorted", i, fn.BeginAddress, fn.EndAddress, prev.BeginAddress, prev.EndAddress)
			case fn.BeginAddress < prev.EndAddress:
				add(i, KindTableOverlap, "entry %d [%#x, %#x) overlaps [%#x, %#x)", i, fn.BeginAddress, fn.EndAddress, prev.BeginAddress, prev.EndAddress)
			}
		}
		prev = fn
		switch {
		case fn.EndAddress <= fn.BeginAddress:
			add(i, KindTableRange, "entry %d [%#x, %#x) is empty", i, fn.BeginAddress, fn.EndAddress)
			continue
		case fn.BeginAddress < lo || hi != 0 && fn.EndAddress > hi:
			add(i, KindTableRange, "entry %d [%#x, %#x) lies outside the code range [%#x, %#x)", i, fn.BeginAddress, fn.EndAddress, lo, hi)
			continue
		case c.Executable != nil && (!c.Executable(base+uint64(fn.BeginAddress)) || !c.Executable(base+uint64(fn.EndAddress)-1)):
			add(i, KindTableRange, "entry %d [%#x, %#x) is not in executable memory", i, fn.BeginAddress, fn.EndAddress)
			continue
		}
		check[i], primary[i] = true, fn.BeginAddress
		scratch.reset(&cc, nil, base, fn)
		if !fn.Indirect() {
			if info, err := scratch.readInfo(fn.UnwindData); err == nil {
				if info.Flags&unwindinfo.UNW_FLAG_CHAININFO != 0 {
					p, ok := entries[info.Chained.BeginAddress]
					if !ok || p != info.Chained {
						add(i, KindChain, "chained to [%#x, %#x) unwind %#x, which is not an entry of the table", info.Chained.BeginAddress, info.Chained.EndAddress, info.Chained.UnwindData)
					}
				} else if info.Flags.HasHandler() && c.Executable != nil && !c.Executable(base+uint64(info.Handler)) {
					add(i, KindHandler, "handler %#x is not in executable memory", info.Handler)
				}
			}
		}
		if c.Memory != nil {
			if p, err := unwind.PrimaryEntry(c.Memory, base, fn); err == nil {
				primary[i] = p.BeginAddress
			}
		}
	}
	// The entry checks.
	reps := make([]Report, len(fns))
	errs := make([]error, len(fns))
	run := func(group []int, scratch *fnCheck) {
		var fl flows
		for _, i := range group {
			reps[i], errs[i] = cc.function(nil, base, fns[i], &fl, scratch)
		}
	}
	merge := func(i int) bool {
		rep.Problems = append(rep.Problems, pre[i]...)
		if errs[i] != nil {
			rep.Problems = append(rep.Problems, Problem{Function: base + uint64(fns[i].BeginAddress), Kind: KindUnwindInfo, Message: errs[i].Error()})
		}
		rep.Add(reps[i])
		if c.MaxProblems > 0 && len(rep.Problems) >= c.MaxProblems {
			rep.Problems = rep.Problems[:c.MaxProblems]
			rep.Truncated = true
			return false
		}
		return true
	}
	if c.Workers <= 1 || c.MaxProblems > 0 {
		// In table order, stopping at MaxProblems: one function's entries
		// are still checked in order, each with the states of the
		// function's entries before it.
		flowsOf := map[uint32]*flows{}
		for i := range fns {
			if check[i] {
				fl := flowsOf[primary[i]]
				if fl == nil {
					fl = new(flows)
					flowsOf[primary[i]] = fl
				}
				reps[i], errs[i] = cc.function(nil, base, fns[i], fl, scratch)
			}
			if !merge(i) {
				return rep, nil
			}
		}
		return rep, nil
	}
	groupOf := map[uint32]int{}
	var groups [][]int
	for i := range fns {
		if !check[i] {
			continue
		}
		g, ok := groupOf[primary[i]]
		if !ok {
			g = len(groups)
			groupOf[primary[i]] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	next := make(chan []int)
	var wg sync.WaitGroup
	for range min(c.Workers, len(groups)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch := new(fnCheck)
			for g := range next {
				run(g, scratch)
			}
		}()
	}
	for _, g := range groups {
		next <- g
	}
	close(next)
	wg.Wait()
	for i := range fns {
		if !merge(i) {
			break
		}
	}
	return rep, nil
}

// Image checks the function table of the PE32+ x64 image in r, mapped at
// its preferred base, on GOMAXPROCS goroutines: entries must lie in
// executable sections, and so must handlers. The image is read into memory first (its headers and
// sections, up to [MaxImageSize] bytes; a larger one is read as needed).
func Image(r io.ReaderAt, maxProblems int) (Report, error) {
	f, err := peimage.NewFile(r)
	if err != nil {
		return Report{Problems: []Problem{}}, err
	}
	pf, err := pe.NewFile(r)
	if err != nil {
		return Report{Problems: []Problem{}}, fmt.Errorf("read section table: %w", err)
	}
	base := f.ImageBase()
	exec := executable(pf)
	c := &Checker{Memory: f.Memory(base), MaxProblems: maxProblems, Workers: runtime.GOMAXPROCS(0)}
	c.Executable = func(addr uint64) bool { return addr >= base && addr-base < 1<<32 && exec(uint32(addr-base)) }
	if m := mapImage(f, pf); m != nil {
		c.Memory = m
	}
	return c.Table(base, f.Functions(), 0, f.SizeOfImage())
}

// MaxImageSize bounds the bytes of an image [Image] reads into memory.
const MaxImageSize = 1 << 30

// mapImage reads the headers and sections of f into memory at its
// preferred base, or returns nil if they are larger than MaxImageSize or
// cannot be read. Bytes outside them stay unmapped, as in f.Memory.
func mapImage(f *peimage.File, pf *pe.File) *unwind.SplicedMemory {
	type span struct{ rva, size uint32 }
	var spans []span
	if oh, ok := pf.OptionalHeader.(*pe.OptionalHeader64); ok {
		spans = append(spans, span{0, oh.SizeOfHeaders})
	}
	for _, s := range pf.Sections {
		spans = append(spans, span{s.VirtualAddress, max(s.VirtualSize, s.Size)})
	}
	total := uint64(0)
	for _, s := range spans {
		total += uint64(s.size)
	}
	if total > MaxImageSize {
		return nil
	}
	m := new(unwind.SplicedMemory)
	for _, s := range spans {
		if s.size == 0 || uint64(s.rva)+uint64(s.size) > uint64(f.SizeOfImage()) {
			continue
		}
		b := make([]byte, s.size)
		n, _ := f.ReadRVA(b, s.rva)
		if n > 0 {
			m.Add(f.ImageBase()+uint64(s.rva), b[:n])
		}
	}
	return m
}

func executable(pf *pe.File) func(rva uint32) bool {
	type span struct{ lo, hi uint32 }
	var spans []span
	for _, s := range pf.Sections {
		if s.Characteristics&pe.IMAGE_SCN_MEM_EXECUTE != 0 {
			spans = append(spans, span{s.VirtualAddress, s.VirtualAddress + max(s.VirtualSize, s.Size)})
		}
	}
	return func(rva uint32) bool {
		for _, s := range spans {
			if rva >= s.lo && rva < s.hi {
				return true
			}
		}
		return false
	}
}
