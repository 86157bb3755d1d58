package dump_test

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/unwind"
)

// dumpFacts is the part of a shared dump's facts.json these tests use.
type dumpFacts struct {
	Threads   []map[string]any `json:"threads"`
	Exception map[string]any   `json:"exception"`
}

func readFacts(t *testing.T, name string) dumpFacts {
	t.Helper()
	b, err := os.ReadFile(winetest.Testdata(t, "expected/"+name+".facts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f dumpFacts
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSharedExceptions checks, on the shared x64 dumps, that the thread
// an ExceptionStream names is given the exception's registers (as lldb
// and WinDbg's .ecxr show it), that the thread list's stay available, and
// that the exception is exposed as the facts record it.
func TestSharedExceptions(t *testing.T) {
	for _, name := range []string{
		"electron-node-minidump-windows-x64.dmp",
		"breakpad-tiny-exe-fastfail.dmp",
		"breakpad-write_av_non_canonical.dmp",
		"breakpad-tiny-exe-with-cet-xsave.dmp", // no exception stream
	} {
		t.Run(name, func(t *testing.T) {
			d, err := dump.Open(winetest.Testdata(t, "minidumps/"+name))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			facts := readFacts(t, name)
			if w := d.Warnings(); w != nil {
				t.Errorf("warnings for a sound dump: %v", w)
			}
			listed := map[int]map[string]any{}
			for _, ft := range facts.Threads {
				listed[int(num(t, ft["thread_id"]))] = ft
			}
			e := d.Exception()
			fe := facts.Exception
			if fe == nil {
				if e != nil {
					t.Fatalf("Exception() = %+v for a dump without an exception stream", e)
				}
			} else {
				if e == nil {
					t.Fatal("Exception() = nil")
				}
				var params []uint64
				for _, p := range fe["params"].([]any) {
					params = append(params, num(t, p))
				}
				if e.ThreadID != int(num(t, fe["thread_id"])) || uint64(e.Code) != num(t, fe["code"]) ||
					uint64(e.Flags) != num(t, fe["flags"]) || e.Address != num(t, fe["address"]) ||
					!slices.Equal(e.Parameters, params) || !e.HasContext {
					t.Errorf("Exception() = %+v; facts %v", e, fe)
				}
				var ctx unwind.Context
				if err := d.ThreadContext(e.ThreadID, &ctx); err != nil {
					t.Fatal(err)
				}
				if ctx.Rip != num(t, fe["context_rip"]) || ctx.Rsp != num(t, fe["context_rsp"]) {
					t.Errorf("ThreadContext(%d): rip %#x rsp %#x; the exception's context has rip %v rsp %v",
						e.ThreadID, ctx.Rip, ctx.Rsp, fe["context_rip"], fe["context_rsp"])
				}
			}
			// Every other thread, and the faulting one through
			// ThreadListContext, has the thread list's registers.
			for id, ft := range listed {
				var lc unwind.Context
				if err := d.ThreadListContext(id, &lc); err != nil {
					t.Fatal(err)
				}
				if lc.Rip != num(t, ft["rip"]) || lc.Rsp != num(t, ft["rsp"]) {
					t.Errorf("ThreadListContext(%d): rip %#x rsp %#x; facts %v", id, lc.Rip, lc.Rsp, ft)
				}
				if e != nil && id == e.ThreadID {
					continue
				}
				var c unwind.Context
				if err := d.ThreadContext(id, &c); err != nil || c != lc {
					t.Errorf("thread %d: ThreadContext differs from ThreadListContext (%v)", id, err)
				}
			}
		})
	}
}

// TestElectronException is the case of the Electron dump: its faulting
// thread 6068 starts where lldb starts it, at the access violation in
// electron.exe, not in ntdll where the dump writer waited.
func TestElectronException(t *testing.T) {
	d, err := dump.Open(winetest.Testdata(t, "minidumps/electron-node-minidump-windows-x64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	e := d.Exception()
	if e == nil {
		t.Fatal("no exception")
	}
	if got, want := e.String(), "exception 0xc0000005 at 0x7ff7215f8da4 in thread 6068"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	var ctx, list unwind.Context
	if err := d.ThreadContext(6068, &ctx); err != nil || ctx.Rip != 0x7ff7215f8da4 || ctx.Rsp != 0x6399daca18 {
		t.Errorf("ThreadContext(6068) = %v: rip %#x rsp %#x, want rip 0x7ff7215f8da4 rsp 0x6399daca18", err, ctx.Rip, ctx.Rsp)
	}
	if err := d.ThreadListContext(6068, &list); err != nil || list.Rip != 0x7fff672a59a4 {
		t.Errorf("ThreadListContext(6068) = %v: rip %#x, want 0x7fff672a59a4 (ntdll)", err, list.Rip)
	}
	// The caller's copy is its own.
	e.Parameters[0] = 99
	if d.Exception().Parameters[0] != 1 {
		t.Error("Exception() shares its Parameters")
	}
}

// writeDump writes c with minidump.Write and opens it with dump.New.
func writeDump(t *testing.T, c *minidump.Content) (*dump.Dump, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := minidump.Write(&buf, c, minidump.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return openBytes(t, buf.Bytes()), buf.Bytes()
}

// openBytes opens b with dump.New, failing the test on an error.
func openBytes(t *testing.T, b []byte) *dump.Dump {
	t.Helper()
	f, err := minidump.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	d, err := dump.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// contextAt returns an x64 CONTEXT record with rip and rsp.
func contextAt(rip, rsp uint64) []byte {
	c := unwind.Context{ContextFlags: unwind.CONTEXT_FULL, Rip: rip, Rsp: rsp}
	return c.MarshalWindows()
}

// TestWrittenException writes dumps with an ExceptionStream through
// minidump.Write, as a crash handler would, and checks which registers
// each thread is given.
func TestWrittenException(t *testing.T) {
	threads := []minidump.WriteThread{
		{ID: 10, Context: contextAt(0x401000, 0x7000)},
		{ID: 11, Context: contextAt(0x402000, 0x8000), Name: "crasher"},
	}
	exc := func(tid uint32, ctx []byte) *minidump.WriteException {
		return &minidump.WriteException{ThreadID: tid, Code: 0xc0000005, Address: 0x403000,
			Parameters: []uint64{1, 0xdead}, Context: ctx}
	}
	rip := func(t *testing.T, d *dump.Dump, tid int, list bool) uint64 {
		t.Helper()
		var c unwind.Context
		get := d.ThreadContext
		if list {
			get = d.ThreadListContext
		}
		if err := get(tid, &c); err != nil {
			t.Errorf("thread %d (thread list %v): %v", tid, list, err)
		}
		return c.Rip
	}
	ids := func(d *dump.Dump) []int {
		th, _ := d.Threads()
		var out []int
		for _, x := range th {
			out = append(out, x.ID)
		}
		return out
	}

	t.Run("listed thread", func(t *testing.T) {
		d, _ := writeDump(t, &minidump.Content{Threads: threads, Exception: exc(11, contextAt(0x403000, 0x7ff0))})
		e := d.Exception()
		want := &dump.Exception{ThreadID: 11, Code: 0xc0000005, Address: 0x403000, Parameters: []uint64{1, 0xdead}, HasContext: true}
		if e == nil || e.ThreadID != want.ThreadID || e.Code != want.Code || e.Address != want.Address || !slices.Equal(e.Parameters, want.Parameters) || !e.HasContext {
			t.Errorf("Exception() = %+v, want %+v", e, want)
		}
		if got := rip(t, d, 11, false); got != 0x403000 {
			t.Errorf("ThreadContext(11).Rip = %#x, want the exception's 0x403000", got)
		}
		if got := rip(t, d, 11, true); got != 0x402000 {
			t.Errorf("ThreadListContext(11).Rip = %#x, want the thread list's 0x402000", got)
		}
		if got := rip(t, d, 10, false); got != 0x401000 {
			t.Errorf("ThreadContext(10).Rip = %#x", got)
		}
		if got := ids(d); !slices.Equal(got, []int{10, 11}) {
			t.Errorf("threads %v", got)
		}
		if w := d.Warnings(); w != nil {
			t.Errorf("warnings: %v", w)
		}
	})
	t.Run("unlisted thread", func(t *testing.T) {
		// The thread list lacks the thread that raised the exception:
		// it is listed all the same, with the exception's registers.
		d, _ := writeDump(t, &minidump.Content{Threads: threads, Exception: exc(12, contextAt(0x403000, 0x7ff0))})
		if got := ids(d); !slices.Equal(got, []int{10, 11, 12}) {
			t.Errorf("threads %v, want 10 11 12", got)
		}
		if got := rip(t, d, 12, false); got != 0x403000 {
			t.Errorf("ThreadContext(12).Rip = %#x", got)
		}
		if err := d.ThreadListContext(12, &unwind.Context{}); err == nil {
			t.Error("ThreadListContext of a thread the thread list lacks succeeded")
		}
	})
	t.Run("unusable context", func(t *testing.T) {
		// An exception context that is no CONTEXT: the thread list's is
		// used, and a warning says so.
		d, _ := writeDump(t, &minidump.Content{Threads: threads, Exception: exc(11, make([]byte, 64))})
		if e := d.Exception(); e == nil || e.HasContext {
			t.Errorf("Exception() = %+v, want one without Context", e)
		}
		if got := rip(t, d, 11, false); got != 0x402000 {
			t.Errorf("ThreadContext(11).Rip = %#x, want the thread list's 0x402000", got)
		}
		if w := d.Warnings(); len(w) != 1 {
			t.Errorf("warnings %v, want one about the exception context", w)
		}
	})
	t.Run("no exception", func(t *testing.T) {
		// As package capture writes them: every thread has its thread
		// list registers.
		d, _ := writeDump(t, &minidump.Content{Threads: threads})
		if e := d.Exception(); e != nil {
			t.Errorf("Exception() = %+v", e)
		}
		if rip(t, d, 11, false) != 0x402000 || rip(t, d, 10, false) != 0x401000 {
			t.Error("ThreadContext is not the thread list's")
		}
	})
}
