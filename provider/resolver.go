package provider

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/unwindinfo"
)

// ExportName is the name of the export a provider library must have:
// OUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK_EXPORT_NAME of winnt.h.
const ExportName = "OutOfProcessFunctionTableCallback"

// DefaultTimeout is the time an isolated provider call may take when
// [Resolver.Timeout] is zero.
const DefaultTimeout = 2 * time.Second

// Resolver resolves callback tables by calling their provider libraries:
// it implements [remote.Provider]. The zero value reads the default trust
// list at its first use and calls providers in-process.
//
// A Resolver is safe for concurrent use; set its fields before the first
// call and do not copy it after. Calls into one library are serialized
// (in-process) and each isolated call runs in a helper process of its
// own, so calls for different libraries, or isolated calls, run in
// parallel.
type Resolver struct {
	// Trust decides which libraries may be loaded. Nil means
	// LoadTrust(TrustOptions{}), loaded at the first call; if that
	// fails, every call fails with its error.
	Trust *Trust
	// Isolate runs each call in a helper process (fntable's
	// --isolate-providers): a crash, exit or hang of the provider ends
	// that process, not the caller. See [HelperMain].
	Isolate bool
	// Timeout bounds an isolated call, from the start of the helper to
	// its answer; 0 means DefaultTimeout. The helper is killed when it
	// expires.
	Timeout time.Duration
	// Executable is the program run as the helper: it must call
	// [HelperMain] when [IsHelper] is true. "" means os.Executable().
	Executable string
	// Logf, when not nil, receives a line for each refused library and
	// for what a helper process wrote to its stdout or stderr. It is
	// called from the goroutine that called ResolveCallbackTable.
	Logf func(format string, args ...any)

	trustOnce sync.Once
	trust     *Trust
	trustErr  error
}

var _ remote.Provider = (*Resolver)(nil)

// getTrust returns the trust list, loading the default one once.
func (r *Resolver) getTrust() (*Trust, error) {
	r.trustOnce.Do(func() {
		r.trust = r.Trust
		if r.trust == nil {
			r.trust, r.trustErr = LoadTrust(TrustOptions{})
		}
	})
	return r.trust, r.trustErr
}

func (r *Resolver) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// ResolveCallbackTable calls the provider library callback table t of
// process pid names (t.OutOfProcessCallbackDll), if the trust list allows
// it, with TableAddress t.Record, and returns the entries it gave once
// they pass every check: status, count (at most [MaxEntries]), array,
// each entry non-empty, sorted, not overlapping, inside the table's
// range, and its unwind data in readable memory of process pid (from
// /proc/PID/maps). Otherwise it returns no entries and Resolution.Err
// says why; the error matches one of [ErrUntrusted], [ErrLoad],
// [ErrStatus], [ErrBadResult], [ErrCrashed], [ErrTimeout] or
// [ErrUnsupportedOS].
func (r *Resolver) ResolveCallbackTable(pid int, t *remote.Table) ([]unwindinfo.RuntimeFunction, remote.Resolution) {
	path := t.OutOfProcessCallbackDll
	res := remote.Resolution{Provider: path, Isolated: r.Isolate}
	fail := func(err error) ([]unwindinfo.RuntimeFunction, remote.Resolution) {
		res.Err = fmt.Errorf("callback table %#x: %s: %w", t.FunctionTable, path, err)
		return nil, res
	}
	if path == "" {
		res.Err = fmt.Errorf("callback table %#x: %w library named", t.FunctionTable, remote.ErrNoProvider)
		return nil, res
	}
	trust, err := r.getTrust()
	if err != nil {
		return fail(err)
	}
	d := trust.Check(path)
	if !d.Trusted {
		r.logf("provider %s refused: %s", path, d.Reason)
		return fail(errorf(ErrUntrusted, "not trusted: %s", d.Reason))
	}
	res.Trusted = true
	start := time.Now()
	var a answer
	if r.Isolate {
		a, res.Loaded, err = r.callIsolated(trust, d, pid, t.Record)
	} else {
		var lib *library
		lib, err = loadLibrary(d, trust.uid, true)
		if err == nil {
			res.Loaded = true
			a, err = lib.call(pid, t.Record)
		}
	}
	res.Duration = time.Since(start)
	if err != nil {
		return fail(err)
	}
	if err := a.check(); err != nil {
		return fail(err)
	}
	if len(a.entries) == 0 {
		return nil, res
	}
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return fail(errorf(ErrBadResult, "check provider result: %v", err))
	}
	rs, err := readableRegions(maps)
	maps.Close()
	if err != nil {
		return fail(errorf(ErrBadResult, "check provider result: read maps of process %d: %v", pid, err))
	}
	if err := checkEntries(t, a.entries, rs); err != nil {
		return fail(err)
	}
	res.Entries = len(a.entries)
	return a.entries, res
}
