//go:build linux

package remote_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/unwindinfo"
)

// The torn-read test: a writer process adds, grows and deletes tables
// whose contents are a pure function of their slot and registration
// number, while this process takes snapshots and checks that each table
// in each of them is one the writer registered, whole.

const (
	writerEnv   = "FNTABLE_TORN_WRITER"
	writerOps   = 100000 // operations the writer performs
	slots       = 48
	slotBase    = 0x100000000
	slotSpan    = 0x1000000 // address space of a slot
	growRange   = 0x10000   // range of a growable table
	maxRegCount = 0xffff    // registration numbers are encoded in 16 bits
)

// Kinds of slot, by slot number modulo 4.
const (
	kindSorted = iota
	kindUnsorted
	kindGrowable
	kindCallback
)

// tableBase is the base address of registration c of slot s.
func tableBase(s int, c uint32) uint64 {
	return slotBase + uint64(s)*slotSpan + uint64(c%16)*growRange
}

// unwindData identifies entry k of registration c of slot s.
func unwindData(s int, c uint32, k int) uint32 { return uint32(s)<<24 | (c&maxRegCount)<<8 | uint32(k) }

// staticEntries returns the entries of registration c of a static slot,
// sorted.
func staticEntries(s int, c uint32) []unwindinfo.RuntimeFunction {
	n := 1 + (s*7+int(c))%24
	e := make([]unwindinfo.RuntimeFunction, n)
	for k := range e {
		e[k] = rf(uint32(k)*0x40, uint32(k)*0x40+0x20+c%16, unwindData(s, c, k))
	}
	return e
}

// growMax is the maximum count of a growable slot's tables.
func growMax(s int) int { return 4 + s%29 }

// growEntries returns the whole array of registration c of a growable slot.
func growEntries(s int, c uint32) []unwindinfo.RuntimeFunction {
	e := make([]unwindinfo.RuntimeFunction, growMax(s))
	for k := range e {
		e[k] = rf(uint32(k)*0x40, uint32(k)*0x40+0x30, unwindData(s, c, k))
	}
	return e
}

// callbackLength and callbackDll describe registration c of a callback slot.
func callbackLength(c uint32) uint32     { return 0x1000 + c%16*0x100 }
func callbackDll(s int, c uint32) string { return fmt.Sprintf("/opt/jit/provider-%d-%d.so", s, c) }

// TestHelperWriter is the writer process of TestTornReads.
func TestHelperWriter(t *testing.T) {
	if os.Getenv(writerEnv) != "1" {
		t.Skip("writer process of TestTornReads")
	}
	r, err := functable.New(functable.Options{Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in := bufio.NewReader(os.Stdin)
	fmt.Println("ready")
	if _, err := in.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	type slot struct {
		t   *functable.Table
		c   uint32 // registrations so far
		buf []unwindinfo.RuntimeFunction
	}
	var st [slots]slot
	var adds, grows, deletes int
	rng := rand.New(rand.NewPCG(1, 2))
	noop := func(uint64, any) *unwindinfo.RuntimeFunction { return nil }
	for ops := 0; ops < writerOps; ops++ {
		s := rng.IntN(slots)
		sl := &st[s]
		var err error
		switch {
		case sl.t == nil:
			sl.c++
			c := sl.c
			base := tableBase(s, c)
			switch s % 4 {
			case kindSorted:
				sl.t, err = r.AddFunctionTable(staticEntries(s, c), base)
			case kindUnsorted:
				e := staticEntries(s, c)
				for i, j := 0, len(e)-1; i < j; i, j = i+1, j-1 {
					e[i], e[j] = e[j], e[i]
				}
				if len(e) == 1 {
					// An empty entry (dropped) before it makes it unsorted.
					e = append([]unwindinfo.RuntimeFunction{rf(0x1000, 0x1000, 0)}, e...)
				}
				sl.t, err = r.AddFunctionTable(e, base)
			case kindGrowable:
				sl.buf = growEntries(s, c)
				m := growMax(s)
				sl.t, err = r.AddGrowableFunctionTable(sl.buf, uint32(int(c)*3%(m+1)), uint32(m), base, base+growRange)
			case kindCallback:
				sl.t, err = r.InstallFunctionTableCallback(base|3, base, callbackLength(c), noop, nil, callbackDll(s, c))
			}
			adds++
		case sl.t.Growable() && int(sl.t.EntryCount()) < growMax(s) && rng.IntN(3) != 0:
			n := int(sl.t.EntryCount())
			err = r.GrowFunctionTable(sl.t, uint32(n+1+rng.IntN(growMax(s)-n)))
			grows++
		default:
			err = r.DeleteFunctionTable(sl.t)
			sl.t = nil
			deletes++
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The final state, for the reader to compare with its last snapshot.
	var final []string
	for s := range st {
		if sl := &st[s]; sl.t != nil {
			final = append(final, fmt.Sprintf("%d:%d:%d", s, sl.c, sl.t.EntryCount()))
		}
	}
	fmt.Printf("done ops=%d adds=%d grows=%d deletes=%d final=%s\n", adds+grows+deletes, adds, grows, deletes, strings.Join(final, ","))
	io.Copy(io.Discard, in) // until the reader is done
}

// checker verifies snapshots: each table whole, and no snapshot older than
// the one before it.
type checker struct {
	lastC     [slots]uint32 // registration number last seen per slot (0: none known)
	lastCount [slots]uint32 // entry count of that registration (growable)
}

// slotOf returns the slot and registration number (mod 16) of a base.
func slotOf(base uint64) (s int, c16 uint32, err error) {
	if base < slotBase || (base-slotBase)%growRange != 0 || (base-slotBase)/slotSpan >= slots {
		return 0, 0, fmt.Errorf("base %#x is no slot's", base)
	}
	return int((base - slotBase) / slotSpan), uint32((base - slotBase) % slotSpan / growRange), nil
}

// regOf returns the registration number of slot s that entry 0 names.
func regOf(s int, e unwindinfo.RuntimeFunction) (uint32, error) {
	if int(e.UnwindData>>24) != s {
		return 0, fmt.Errorf("entry 0 %+v belongs to slot %d", e, e.UnwindData>>24)
	}
	return e.UnwindData >> 8 & maxRegCount, nil
}

func sameEntries(got, want []unwindinfo.RuntimeFunction) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("entry %d is %+v, want %+v", i, got[i], want[i])
		}
	}
	return nil
}

// table checks one table and returns its slot, registration number (0 if
// it cannot be known) and count.
func (ck *checker) table(tb *remote.Table) (s int, c uint32, err error) {
	s, c16, err := slotOf(tb.BaseAddress)
	if err != nil {
		return 0, 0, err
	}
	if int(tb.EntryCount) != len(tb.Entries) {
		return 0, 0, fmt.Errorf("count %d with %d entries", tb.EntryCount, len(tb.Entries))
	}
	switch s % 4 {
	case kindSorted, kindUnsorted:
		want := functable.RF_SORTED
		if s%4 == kindUnsorted {
			want = functable.RF_UNSORTED
		}
		if tb.Type != want || tb.Growable || len(tb.Entries) == 0 {
			return 0, 0, fmt.Errorf("static table of type %v growable %v with %d entries", tb.Type, tb.Growable, len(tb.Entries))
		}
		if c, err = regOf(s, tb.Entries[0]); err != nil {
			return 0, 0, err
		}
		e := staticEntries(s, c)
		last := e[len(e)-1]
		switch {
		case tb.MaximumEntryCount != tb.EntryCount:
			return 0, 0, fmt.Errorf("static table with room for %d", tb.MaximumEntryCount)
		case tb.MinimumAddress != tb.BaseAddress || tb.MaximumAddress != tb.BaseAddress+uint64(last.EndAddress):
			return 0, 0, fmt.Errorf("range [%#x, %#x)", tb.MinimumAddress, tb.MaximumAddress)
		}
		if err := sameEntries(tb.Entries, e); err != nil {
			return 0, 0, err
		}
	case kindGrowable:
		m := uint32(growMax(s))
		switch {
		case tb.Type != functable.RF_SORTED || !tb.Growable:
			return 0, 0, fmt.Errorf("growable table of type %v growable %v", tb.Type, tb.Growable)
		case tb.MaximumEntryCount != m || tb.EntryCount > m:
			return 0, 0, fmt.Errorf("growable table of %d entries of %d, want at most %d", tb.EntryCount, tb.MaximumEntryCount, m)
		case tb.MinimumAddress != tb.BaseAddress || tb.MaximumAddress != tb.BaseAddress+growRange:
			return 0, 0, fmt.Errorf("range [%#x, %#x)", tb.MinimumAddress, tb.MaximumAddress)
		}
		if tb.EntryCount > 0 {
			if c, err = regOf(s, tb.Entries[0]); err != nil {
				return 0, 0, err
			}
			if err := sameEntries(tb.Entries, growEntries(s, c)[:tb.EntryCount]); err != nil {
				return 0, 0, err
			}
		}
	case kindCallback:
		if tb.Type != functable.RF_CALLBACK || len(tb.Entries) != 0 || tb.MaximumEntryCount != 0 {
			return 0, 0, fmt.Errorf("callback table of type %v with %d entries", tb.Type, tb.MaximumEntryCount)
		}
		var s2 int
		if _, err := fmt.Sscanf(tb.OutOfProcessCallbackDll, "/opt/jit/provider-%d-%d.so", &s2, &c); err != nil || s2 != s {
			return 0, 0, fmt.Errorf("dll %q in slot %d", tb.OutOfProcessCallbackDll, s)
		}
		switch {
		case tb.OutOfProcessCallbackDll != callbackDll(s, c):
			return 0, 0, fmt.Errorf("dll %q", tb.OutOfProcessCallbackDll)
		case tb.Identifier() != tableBase(s, c)|3:
			return 0, 0, fmt.Errorf("identifier %#x", tb.Identifier())
		case tb.MinimumAddress != tb.BaseAddress || tb.MaximumAddress != tb.BaseAddress+uint64(callbackLength(c)):
			return 0, 0, fmt.Errorf("range [%#x, %#x)", tb.MinimumAddress, tb.MaximumAddress)
		}
	}
	if c != 0 && tableBase(s, c) != tb.BaseAddress {
		return 0, 0, fmt.Errorf("registration %d at base %#x (registration mod 16 %d)", c, tb.BaseAddress, c16)
	}
	return s, c, nil
}

// snapshot checks a snapshot.
func (ck *checker) snapshot(snap *remote.Snapshot) error {
	var seen [slots]bool
	for i := range snap.Tables {
		tb := &snap.Tables[i]
		s, c, err := ck.table(tb)
		if err != nil {
			return fmt.Errorf("table %d at %#x: %w", i, tb.Record, err)
		}
		if seen[s] {
			return fmt.Errorf("two tables of slot %d", s)
		}
		seen[s] = true
		if c == 0 {
			continue
		}
		switch {
		case c < ck.lastC[s]:
			return fmt.Errorf("slot %d: registration %d after %d", s, c, ck.lastC[s])
		case c == ck.lastC[s] && tb.EntryCount < ck.lastCount[s]:
			return fmt.Errorf("slot %d registration %d: %d entries after %d", s, c, tb.EntryCount, ck.lastCount[s])
		}
		ck.lastC[s], ck.lastCount[s] = c, tb.EntryCount
	}
	return nil
}

// TestTornReads runs a writer process and reads its list while it
// changes: no snapshot may hold a table the writer never registered.
func TestTornReads(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), writerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if t.Failed() {
			cmd.Process.Kill()
		}
		cmd.Wait()
	}()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := <-lines; l != "ready" {
		t.Fatalf("writer said %q", l)
	}
	ms, err := remote.Find(cmd.Process.Pid)
	if err != nil || len(ms) != 1 {
		t.Fatalf("lists of the writer: %+v %v", ms, err)
	}
	mem, err := procmem.Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var ck checker
	var snapshots, retries, maxRetries, inconsistent, tables int
	take := func() *remote.Snapshot {
		s, err := remote.Read(mem, ms[0])
		if errors.Is(err, remote.ErrInconsistent) {
			inconsistent++
			return nil
		}
		if err != nil {
			t.Fatalf("snapshot %d: %v", snapshots, err)
		}
		if err := ck.snapshot(s); err != nil {
			t.Fatalf("snapshot %d (generation %d, %d retries): torn: %v", snapshots, s.Generation, s.Retries, err)
		}
		snapshots++
		retries += s.Retries
		maxRetries = max(maxRetries, s.Retries)
		tables += len(s.Tables)
		return s
	}
	start := time.Now()
	fmt.Fprintln(stdin, "go")
	var done string
	for done == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the writer ended early")
			}
			done = l
		default:
			take()
		}
	}
	elapsed := time.Since(start)
	var ops, adds, grows, deletes int
	var final string
	if _, err := fmt.Sscanf(done, "done ops=%d adds=%d grows=%d deletes=%d final=%s", &ops, &adds, &grows, &deletes, &final); err != nil && !strings.HasSuffix(done, "final=") {
		t.Fatalf("writer said %q: %v", done, err)
	}
	// The writer is idle now: the last snapshot is its final state.
	last := take()
	if last == nil {
		t.Fatal("no consistent snapshot of an idle writer")
	}
	// Compare slot, base (the registration number mod 16) and count.
	var got, want []string
	for i := range last.Tables {
		tb := &last.Tables[i]
		s, _, _ := slotOf(tb.BaseAddress)
		got = append(got, fmt.Sprintf("%d:%#x:%d", s, tb.BaseAddress, tb.EntryCount))
	}
	for _, f := range strings.Split(final, ",") {
		var s int
		var c, n uint32
		if f == "" {
			continue
		}
		if _, err := fmt.Sscanf(f, "%d:%d:%d", &s, &c, &n); err != nil {
			t.Fatalf("writer's final state %q: %v", f, err)
		}
		want = append(want, fmt.Sprintf("%d:%#x:%d", s, tableBase(s, c), n))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("final snapshot %v, writer has %v", got, want)
	}
	t.Logf("writer: %d operations (%d adds, %d grows, %d deletes) in %v; reader: %d snapshots (%d tables), %d retries (at most %d for one snapshot), %d reads gave up",
		ops, adds, grows, deletes, elapsed.Round(time.Millisecond), snapshots, tables, retries, maxRetries, inconsistent)
	if ops < writerOps {
		t.Errorf("writer did %d operations", ops)
	}
	if snapshots < 100 {
		t.Errorf("only %d snapshots", snapshots)
	}
}
