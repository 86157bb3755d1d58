package remote

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// Provider resolves callback tables (RF_CALLBACK): it gets their entries
// from the out-of-process provider library each one names, the way a
// Windows debugger calls the OutOfProcessFunctionTableCallback export of a
// table's OutOfProcessCallbackDll. Package provider implements it, with
// the trust list that decides which libraries may be loaded.
type Provider interface {
	// ResolveCallbackTable returns the entries of callback table t of
	// process pid (pid as the caller sees it, not Snapshot.Pid): RVAs from
	// t.BaseAddress, sorted, inside [t.MinimumAddress,
	// t.MaximumAddress). It returns no entries and says why in
	// Resolution.Err when it cannot, or when the provider's answer fails a
	// check. It must be safe for concurrent use.
	ResolveCallbackTable(pid int, t *Table) ([]unwindinfo.RuntimeFunction, Resolution)
}

// Resolution says what became of a callback table's provider.
type Resolution struct {
	Provider string        // the library asked for: the table's OutOfProcessCallbackDll
	Trusted  bool          // its path is on the trust list
	Loaded   bool          // the library was loaded and its export found
	Isolated bool          // the provider ran in a helper process
	Entries  int           // entries accepted
	Duration time.Duration // time spent in the provider
	Err      error         // why there are no entries, or nil
}

// ErrNoProvider: a callback table names no provider library, or no
// Provider was given.
var ErrNoProvider = errors.New("no out-of-process provider")

// resolution is the outcome of resolving one callback table, shared by
// the copies of its Table.
type resolution struct {
	once    sync.Once
	done    atomic.Bool // set when once has run
	res     Resolution
	entries []unwindinfo.RuntimeFunction
	sorted  *unwind.SortedTable
}

// UseProvider makes the snapshot resolve its callback tables through p,
// lazily: the first lookup of a PC in a callback table's range, or a call
// of [Snapshot.Resolve], calls p once for that table; later lookups use
// the entries it returned. pid is the process as the caller sees it. Call
// it before the snapshot is used concurrently.
func (s *Snapshot) UseProvider(pid int, p Provider) {
	s.provider, s.providerPid = p, pid
}

// Resolve resolves callback table t of the snapshot (once; later calls
// return the same answer) and says what happened. It returns a Resolution
// with ErrNoProvider when the snapshot has no Provider or t names no
// library, and a zero Resolution for tables that are not callback tables.
func (s *Snapshot) Resolve(t *Table) Resolution {
	if t.res == nil {
		return Resolution{}
	}
	t.res.once.Do(func() {
		r := t.res
		defer r.done.Store(true)
		r.res.Provider = t.OutOfProcessCallbackDll
		switch {
		case t.OutOfProcessCallbackDll == "":
			r.res.Err = fmt.Errorf("callback table %#x: %w library named", t.FunctionTable, ErrNoProvider)
			return
		case s.provider == nil:
			r.res.Err = fmt.Errorf("callback table %#x: %w configured", t.FunctionTable, ErrNoProvider)
			return
		}
		entries, res := s.provider.ResolveCallbackTable(s.providerPid, t)
		res.Provider = t.OutOfProcessCallbackDll
		if res.Err == nil {
			if err := checkEntries(t, entries); err != nil {
				res.Err, entries = err, nil
			}
		} else {
			entries = nil
		}
		res.Entries = len(entries)
		r.res, r.entries = res, entries
		if len(entries) > 0 {
			r.sorted = unwind.NewSortedTable(t.BaseAddress, entries)
		}
	})
	return t.res.res
}

// Resolution returns what resolving callback table t gave, if it has been
// resolved.
func (t *Table) Resolution() (Resolution, []unwindinfo.RuntimeFunction, bool) {
	if t.res == nil {
		return Resolution{}, nil, false
	}
	if !t.res.done.Load() {
		return Resolution{}, nil, false
	}
	return t.res.res, t.res.entries, true
}

// checkEntries is the snapshot's own check of a provider's answer, in
// case a Provider does not check: sorted, not overlapping, inside the
// table's range.
func checkEntries(t *Table, entries []unwindinfo.RuntimeFunction) error {
	var prevEnd uint32
	for i, e := range entries {
		begin, end := t.BaseAddress+uint64(e.BeginAddress), t.BaseAddress+uint64(e.EndAddress)
		switch {
		case e.EndAddress <= e.BeginAddress:
			return fmt.Errorf("callback table %#x: provider entry %d is empty or reversed [%#x, %#x)", t.FunctionTable, i, e.BeginAddress, e.EndAddress)
		case i > 0 && e.BeginAddress < prevEnd:
			return fmt.Errorf("callback table %#x: provider entries %d and %d are unsorted or overlap", t.FunctionTable, i-1, i)
		case begin < t.MinimumAddress || end > t.MaximumAddress:
			return fmt.Errorf("callback table %#x: provider entry %d [%#x, %#x) is outside the table's range [%#x, %#x)", t.FunctionTable, i, begin, end, t.MinimumAddress, t.MaximumAddress)
		}
		prevEnd = e.EndAddress
	}
	return nil
}

// callbackLookup answers a lookup in callback table t.
func (s *Snapshot) callbackLookup(t *Table, pc uint64) (*unwindinfo.RuntimeFunction, uint64, bool) {
	if s.provider == nil || t.Type != functable.RF_CALLBACK {
		return nil, 0, false
	}
	s.Resolve(t)
	if t.res.sorted == nil {
		return nil, 0, false
	}
	return t.res.sorted.LookupFunctionEntry(pc)
}
