package dump_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/unwind"
)

// pattern returns n bytes starting at seed.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// linuxContent is a dump as "fntable dump" writes one: threads with their
// stacks (the memory at the end of the file), a module, no exception.
func linuxContent() *minidump.Content {
	return &minidump.Content{
		ProcessID: 100,
		Threads: []minidump.WriteThread{
			{ID: 100, Context: contextAt(0x401000, 0x7000), Stack: minidump.MemorySource{Addr: 0x7000, Size: 0x100, Data: pattern(1, 0x100)}},
			{ID: 101, Context: contextAt(0x402000, 0x9000), Stack: minidump.MemorySource{Addr: 0x9000, Size: 0x100, Data: pattern(2, 0x100)}},
			{ID: 102, Context: contextAt(0x403000, 0xb000), Stack: minidump.MemorySource{Addr: 0xb000, Size: 0x100, Data: pattern(3, 0x100)}},
		},
		Modules: []minidump.WriteModule{{Base: 0x400000, Size: 0x10000, Name: "/usr/bin/app"}},
	}
}

// TestCutByOneByte: a dump missing its last byte is walked as lldb walks
// it: every thread with its registers, the memory the file still holds,
// and the range cut short reported as a warning.
func TestCutByOneByte(t *testing.T) {
	_, b := writeDump(t, linuxContent())
	d := openBytes(t, b[:len(b)-1])
	threads, err := d.Threads()
	if err != nil || len(threads) != 3 {
		t.Fatalf("Threads = %v, %v", threads, err)
	}
	for _, th := range threads {
		var c unwind.Context
		if err := d.ThreadContext(th.ID, &c); err != nil || c.Rip == 0 {
			t.Errorf("thread %d: %v, rip %#x", th.ID, err, c.Rip)
		}
	}
	// The last stack lost its last byte only.
	p := make([]byte, 0x100)
	if n, err := d.ReadMemory(p[:0xff], 0xb000); err != nil || n != 0xff || !bytes.Equal(p[:0xff], pattern(3, 0xff)) {
		t.Errorf("ReadMemory of the cut stack = %d, %v", n, err)
	}
	if n, err := d.ReadMemory(p, 0xb000); n != 0xff || !errors.Is(err, minidump.ErrShortRead) {
		t.Errorf("ReadMemory of the missing byte = %d, %v", n, err)
	}
	if n, err := d.ReadMemory(p, 0x7000); err != nil || n != 0x100 {
		t.Errorf("ReadMemory of the first stack = %d, %v", n, err)
	}
	w := d.Warnings()
	if len(w) != 1 || !errors.Is(w[0], minidump.ErrTruncated) || !strings.HasPrefix(w[0].Error(), "dump memory: ") {
		t.Errorf("warnings %v, want one truncated memory range", w)
	}
}

// TestCutAnywhere cuts a written dump at every length: New either fails
// (the header or directory is gone) or keeps what the rest holds; nothing
// panics, and the threads are those the cut leaves in the thread list.
func TestCutAnywhere(t *testing.T) {
	_, b := writeDump(t, linuxContent())
	f, err := minidump.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tl, _ := f.Stream(minidump.ThreadListStream)
	listAt := int(tl.Location.Rva)
	for n := 0; n < len(b); n++ {
		f, err := minidump.NewFile(bytes.NewReader(b[:n]))
		if err != nil {
			continue
		}
		d, err := dump.New(f)
		if err != nil {
			t.Fatalf("cut at %d: New: %v", n, err)
		}
		threads, terr := d.Threads()
		want := 0
		if n > listAt+4 {
			want = min(3, (n-listAt-4)/48)
		}
		if len(threads) != want {
			t.Fatalf("cut at %d: %d threads, want %d (%v)", n, len(threads), want, terr)
		}
		if want < 3 && want > 0 && !errors.Is(terr, minidump.ErrTruncated) {
			t.Errorf("cut at %d: Threads error %v, want a truncation", n, terr)
		}
		for _, th := range threads {
			d.ThreadContext(th.ID, &unwind.Context{})
			d.ThreadListContext(th.ID, &unwind.Context{})
		}
		d.Warnings()
		d.Close()
	}
}

// TestCutThreadList cuts the Electron dump inside its thread list: the
// threads before the cut are listed (without registers, whose records
// were further on), with a truncation error under the threads' prefix.
func TestCutThreadList(t *testing.T) {
	b, err := os.ReadFile(winetest.Testdata(t, "minidumps/electron-node-minidump-windows-x64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	const listAt = 1800 // the ThreadListStream's RVA (facts.json)
	d := openBytes(t, b[:listAt+4+5*48+20])
	threads, err := d.Threads()
	if len(threads) != 5 || !errors.Is(err, minidump.ErrTruncated) || !strings.HasPrefix(err.Error(), "dump threads: ") {
		t.Fatalf("Threads = %d threads, %v; want 5 and a truncation", len(threads), err)
	}
	for _, th := range threads {
		if th.Err == nil {
			t.Errorf("thread %d has registers the cut file does not hold", th.ID)
		}
	}
	// Cut by one byte, everything is there but the last byte.
	d = openBytes(t, b[:len(b)-1])
	threads, err = d.Threads()
	if len(threads) != 14 || err != nil {
		t.Errorf("Threads of the dump cut by a byte = %d threads, %v", len(threads), err)
	}
	var c unwind.Context
	if err := d.ThreadContext(6068, &c); err != nil || c.Rip != 0x7ff7215f8da4 {
		t.Errorf("ThreadContext(6068) = %v, rip %#x", err, c.Rip)
	}
}

// TestBadThreadCount: a thread list whose count is larger than its
// stream is reported as a thread list error, not a memory one, and the
// threads the stream holds are kept.
func TestBadThreadCount(t *testing.T) {
	_, b := writeDump(t, linuxContent())
	f, err := minidump.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tl, _ := f.Stream(minidump.ThreadListStream)
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[tl.Location.Rva:], 1000)
	d := openBytes(t, b)
	threads, err := d.Threads()
	if len(threads) != 3 || !errors.Is(err, minidump.ErrMalformed) || !strings.HasPrefix(err.Error(), "dump threads: ") {
		t.Fatalf("Threads = %v, %v; want 3 threads and a thread list error", threads, err)
	}
	for _, th := range threads {
		if err := d.ThreadContext(th.ID, &unwind.Context{}); err != nil {
			t.Errorf("thread %d: %v", th.ID, err)
		}
	}
	for _, w := range d.Warnings() {
		if strings.Contains(w.Error(), "thread list") {
			t.Errorf("warning %v: the thread list's error is Threads's", w)
		}
	}
	var p [0x100]byte
	if n, err := d.ReadMemory(p[:], 0x9000); n != 0x100 || err != nil {
		t.Errorf("ReadMemory of a stack = %d, %v", n, err)
	}
}
