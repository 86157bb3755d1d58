package remote_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/unwindinfo"
)

// answer is a Provider that gives fixed entries and counts its calls.
type answer struct {
	entries []unwindinfo.RuntimeFunction
	err     error
	calls   atomic.Int32
	pid     atomic.Int64
}

func (a *answer) ResolveCallbackTable(pid int, t *remote.Table) ([]unwindinfo.RuntimeFunction, remote.Resolution) {
	a.calls.Add(1)
	a.pid.Store(int64(pid))
	return a.entries, remote.Resolution{Trusted: true, Loaded: true, Err: a.err}
}

// TestProviderResolution publishes a callback table and resolves it
// through a Provider: lazily, once for many concurrent lookups, with the
// snapshot's own checks of the answer.
func TestProviderResolution(t *testing.T) {
	r, m := newList(t)
	mem := selfMemory(t)
	const base = 0x7f0000200000
	if _, err := r.InstallFunctionTableCallback(base|3, base, 0x1000,
		func(uint64, any) *unwindinfo.RuntimeFunction { return nil }, nil, "/opt/jit/libprovider.so"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.InstallFunctionTableCallback(base+0x10003, base+0x10000, 0x1000,
		func(uint64, any) *unwindinfo.RuntimeFunction { return nil }, nil, ""); err != nil {
		t.Fatal(err)
	}
	good := []unwindinfo.RuntimeFunction{rf(0x10, 0x20, 0x800), rf(0x20, 0x40, 0x810)}
	cases := []struct {
		name    string
		entries []unwindinfo.RuntimeFunction
		err     error
		wantErr string // "" for none
	}{
		{"good", good, nil, ""},
		{"failure", good, errors.New("provider said no"), "provider said no"},
		{"unsorted", []unwindinfo.RuntimeFunction{rf(0x20, 0x40, 0x810), rf(0x10, 0x20, 0x800)}, nil, "unsorted or overlap"},
		{"overlap", []unwindinfo.RuntimeFunction{rf(0x10, 0x30, 0x800), rf(0x20, 0x40, 0x810)}, nil, "unsorted or overlap"},
		{"empty entry", []unwindinfo.RuntimeFunction{rf(0x10, 0x10, 0x800)}, nil, "empty or reversed"},
		{"outside", []unwindinfo.RuntimeFunction{rf(0x10, 0x2000, 0x800)}, nil, "outside the table's range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := remote.Read(mem, m)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, ok := s.LookupFunctionEntry(base + 0x18); ok {
				t.Fatal("a callback table answered without a provider")
			}
			p := &answer{entries: c.entries, err: c.err}
			s.UseProvider(4242, p)
			cb := s.Table(base)
			if _, _, done := cb.Resolution(); done {
				t.Fatal("resolved before any lookup")
			}
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					fn, b, ok := s.LookupFunctionEntry(base + 0x18)
					if c.wantErr == "" && (!ok || b != base || *fn != good[0]) {
						t.Errorf("lookup: %v %#x %v", fn, b, ok)
					}
					if c.wantErr != "" && ok {
						t.Errorf("lookup answered %v from a rejected result", fn)
					}
				})
			}
			wg.Wait()
			if n := p.calls.Load(); n != 1 || p.pid.Load() != 4242 {
				t.Errorf("provider called %d times with pid %d, want once with 4242", n, p.pid.Load())
			}
			res, entries, done := cb.Resolution()
			if !done || res.Provider != "/opt/jit/libprovider.so" || !res.Trusted || !res.Loaded {
				t.Errorf("resolution %+v done %v", res, done)
			}
			if c.wantErr == "" {
				if res.Err != nil || res.Entries != 2 || len(entries) != 2 {
					t.Errorf("resolution %+v, %d entries", res, len(entries))
				}
			} else if res.Err == nil || !strings.Contains(res.Err.Error(), c.wantErr) || res.Entries != 0 || entries != nil {
				t.Errorf("resolution %+v, want an error with %q and no entries", res, c.wantErr)
			}
			// The table that names no provider is never passed to it.
			other := s.Table(base + 0x10000)
			if res := s.Resolve(other); !errors.Is(res.Err, remote.ErrNoProvider) {
				t.Errorf("table without a provider: %+v", res)
			}
			if n := p.calls.Load(); n != 1 {
				t.Errorf("provider called %d times", n)
			}
		})
	}
}
