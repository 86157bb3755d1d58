package dump_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"testing"
	"unicode/utf16"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/unwind"
)

// TestElectronThreads checks the threads and their registers against the
// facts recorded for the Electron dump.
func TestElectronThreads(t *testing.T) {
	path := winetest.Testdata(t, "minidumps/electron-node-minidump-windows-x64.dmp")
	d, err := dump.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := os.ReadFile(winetest.Testdata(t, "expected/electron-node-minidump-windows-x64.dmp.facts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var facts struct {
		Threads []map[string]any `json:"threads"`
	}
	if err := json.Unmarshal(b, &facts); err != nil {
		t.Fatal(err)
	}
	threads, err := d.Threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) != len(facts.Threads) || len(threads) == 0 {
		t.Fatalf("%d threads, the facts list %d", len(threads), len(facts.Threads))
	}
	byID := map[int]target.Thread{}
	for i, th := range threads {
		if i > 0 && th.ID <= threads[i-1].ID {
			t.Errorf("threads out of order: %d after %d", th.ID, threads[i-1].ID)
		}
		byID[th.ID] = th
	}
	for _, ft := range facts.Threads {
		id := int(num(t, ft["thread_id"]))
		if _, ok := byID[id]; !ok {
			t.Errorf("thread %d is missing", id)
			continue
		}
		// The thread list's registers; those of the faulting thread are
		// checked by TestSharedExceptions.
		var ctx unwind.Context
		if err := d.ThreadListContext(id, &ctx); err != nil {
			t.Errorf("thread %d: %v", id, err)
			continue
		}
		if ctx.Rip != num(t, ft["rip"]) || ctx.Rsp != num(t, ft["rsp"]) || ctx.Rbp != num(t, ft["rbp"]) {
			t.Errorf("thread %d: rip %#x rsp %#x rbp %#x; facts %v", id, ctx.Rip, ctx.Rsp, ctx.Rbp, ft)
		}
		// Without CONTEXT_FLOATING_POINT asked for, XMM is left alone.
		if want := num(t, ft["context_flags"]) &^ (unwind.CONTEXT_FLOATING_POINT &^ unwind.CONTEXT_AMD64); uint64(ctx.ContextFlags) != want {
			t.Errorf("thread %d: ContextFlags %#x, want %#x", id, ctx.ContextFlags, want)
		}
		full := unwind.Context{ContextFlags: unwind.CONTEXT_FULL}
		if err := d.ThreadListContext(id, &full); err != nil || uint64(full.ContextFlags) != num(t, ft["context_flags"]) || full.Rip != ctx.Rip {
			t.Errorf("thread %d: full context: %v, flags %#x", id, err, full.ContextFlags)
		}
	}
	if err := d.ThreadContext(1, &unwind.Context{}); err == nil {
		t.Error("ThreadContext of a thread not in the dump succeeded")
	}
	if err := d.ThreadListContext(1, &unwind.Context{}); err == nil {
		t.Error("ThreadListContext of a thread not in the dump succeeded")
	}
}

// TestThreadNames builds a small Linux-style dump: the thread whose ID is
// the process's comes first, names come from the ThreadNamesStream, and a
// thread whose context is out of the file carries an error.
func TestThreadNames(t *testing.T) {
	const pid = 300
	le := binary.LittleEndian
	var body bytes.Buffer
	body.Write(make([]byte, 32+4*12)) // header and directory, filled in below
	at := func() uint32 { return uint32(body.Len()) }
	ctxRVA := at()
	ctx := make([]byte, unwind.WindowsContextSize)
	le.PutUint32(ctx[0x30:], unwind.CONTEXT_CONTROL|unwind.CONTEXT_INTEGER)
	le.PutUint64(ctx[0xf8:], 0x401000) // Rip
	body.Write(ctx)
	nameRVA := at()
	name := utf16.Encode([]rune("worker"))
	binary.Write(&body, le, uint32(2*len(name)))
	binary.Write(&body, le, name)
	binary.Write(&body, le, uint16(0))
	// Thread list: 400 (context), 300 (the main thread), 350 (context past EOF).
	listRVA := at()
	binary.Write(&body, le, uint32(3))
	for _, th := range []struct {
		id       uint32
		size, at uint32
	}{{400, uint32(len(ctx)), ctxRVA}, {pid, uint32(len(ctx)), ctxRVA}, {350, uint32(len(ctx)), 1 << 20}} {
		binary.Write(&body, le, []uint32{th.id, 0, 0, 0})
		binary.Write(&body, le, uint64(0))                // Teb
		binary.Write(&body, le, []uint32{0, 0, 0, 0})     // Stack: start (u64), size, rva
		binary.Write(&body, le, []uint32{th.size, th.at}) // ThreadContext
	}
	listSize := at() - listRVA
	namesRVA := at()
	binary.Write(&body, le, uint32(1))
	binary.Write(&body, le, uint32(400))
	binary.Write(&body, le, uint64(nameRVA))
	namesSize := at() - namesRVA
	miscRVA := at()
	binary.Write(&body, le, []uint32{24, minidump.MINIDUMP_MISC1_PROCESS_ID, pid, 0, 0, 0})
	b := body.Bytes()
	le.PutUint32(b[0:], 0x504d444d) // MDMP
	le.PutUint32(b[4:], 0xa793)
	le.PutUint32(b[8:], 3)
	le.PutUint32(b[12:], 32)
	for i, d := range [][3]uint32{
		{uint32(minidump.ThreadListStream), listSize, listRVA},
		{uint32(minidump.ThreadNamesStream), namesSize, namesRVA},
		{uint32(minidump.MiscInfoStream), 24, miscRVA},
	} {
		le.PutUint32(b[32+12*i:], d[0])
		le.PutUint32(b[32+12*i+4:], d[1])
		le.PutUint32(b[32+12*i+8:], d[2])
	}
	f, err := minidump.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	d, err := dump.New(f)
	if err != nil {
		t.Fatal(err)
	}
	threads, err := d.Threads()
	if err == nil {
		t.Error("no error for the context past the end of the file")
	}
	if len(threads) != 3 || threads[0].ID != pid || threads[1].ID != 350 || threads[2].ID != 400 {
		t.Fatalf("threads %+v", threads)
	}
	if threads[2].Name != "worker" || threads[0].Name != "" {
		t.Errorf("names: %+v", threads)
	}
	if threads[1].Err == nil {
		t.Error("the thread without a context has no Err")
	}
	var c unwind.Context
	if err := d.ThreadContext(400, &c); err != nil || c.Rip != 0x401000 {
		t.Errorf("ThreadContext(400) = %v, rip %#x", err, c.Rip)
	}
	if err := d.ThreadContext(350, &c); err == nil {
		t.Error("ThreadContext of the thread without a context succeeded")
	}
	var _ target.Threads = d
}
