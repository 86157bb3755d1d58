package unwind

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
)

// TestContextFromDumps decodes the thread contexts of real Windows x64
// minidumps and checks them against the independently extracted facts.
func TestContextFromDumps(t *testing.T) {
	for _, name := range []string{"breakpad-tiny-exe-fastfail.dmp", "breakpad-write_av_non_canonical.dmp", "breakpad-tiny-exe-with-cet-xsave.dmp", "electron-node-minidump-windows-x64.dmp"} {
		t.Run(name, func(t *testing.T) {
			dump, err := os.ReadFile(winetest.Testdata(t, "minidumps/"+name))
			if err != nil {
				t.Fatal(err)
			}
			var facts struct {
				Threads []struct {
					ContextSize  int    `json:"context_size"`
					ContextFlags string `json:"context_flags"`
					RIP, RSP     string
					RBP          string
				} `json:"threads"`
			}
			fb, err := os.ReadFile(winetest.Testdata(t, "expected/"+name+".facts.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(fb, &facts); err != nil {
				t.Fatal(err)
			}
			le := binary.LittleEndian
			n := le.Uint32(dump[8:])
			dir := le.Uint32(dump[12:])
			var threads []byte
			for i := uint32(0); i < n; i++ {
				e := dump[dir+12*i:]
				if le.Uint32(e) == 3 { // ThreadListStream
					threads = dump[le.Uint32(e[8:]):][:le.Uint32(e[4:])]
				}
			}
			count := int(le.Uint32(threads))
			if count != len(facts.Threads) {
				t.Fatalf("%d threads, facts say %d", count, len(facts.Threads))
			}
			for i := 0; i < count; i++ {
				th := threads[4+48*i:]
				size, rva := le.Uint32(th[0x28:]), le.Uint32(th[0x2c:])
				raw := dump[rva : rva+size]
				var c Context
				if err := c.UnmarshalWindows(raw); err != nil {
					t.Fatal(err)
				}
				f := facts.Threads[i]
				want := func(s string) uint64 { v, _ := strconv.ParseUint(s, 0, 64); return v }
				if int(size) != f.ContextSize || uint64(c.ContextFlags) != want(f.ContextFlags) ||
					c.Rip != want(f.RIP) || c.Rsp != want(f.RSP) || c.Rbp != want(f.RBP) {
					t.Errorf("thread %d: size %d flags %#x rip %#x rsp %#x rbp %#x; facts %+v", i, size, c.ContextFlags, c.Rip, c.Rsp, c.Rbp, f)
				}
				var back Context
				if err := back.UnmarshalWindows(c.MarshalWindows()); err != nil || back != c {
					t.Errorf("thread %d: round trip changed the context", i)
				}
				// PutWindows over the original record reproduces it exactly.
				again := append([]byte(nil), raw...)
				if err := c.PutWindows(again); err != nil || string(again) != string(raw) {
					t.Errorf("thread %d: PutWindows changed the record", i)
				}
			}
		})
	}
	var c Context
	if err := c.UnmarshalWindows(make([]byte, 100)); err == nil {
		t.Error("short context accepted")
	}
}
