package dump_test

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/dump"
)

// TestElectron checks the module list and memory against the facts
// recorded for the Electron dump.
func TestElectron(t *testing.T) {
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
		Modules []map[string]any `json:"modules"`
	}
	if err := json.Unmarshal(b, &facts); err != nil {
		t.Fatal(err)
	}
	var mods []target.Module
	if err := d.Modules(func(m target.Module) bool { mods = append(mods, m); return true }); err != nil {
		t.Fatal(err)
	}
	if len(mods) != len(facts.Modules) || len(mods) != 58 {
		t.Fatalf("%d modules, the facts list %d", len(mods), len(facts.Modules))
	}
	bases := map[uint64]target.Module{}
	for _, m := range mods {
		bases[m.Base] = m
	}
	for _, fm := range facts.Modules {
		base := num(t, fm["base"])
		m, ok := bases[base]
		if !ok {
			t.Errorf("no module at %#x (%v)", base, fm["name"])
			continue
		}
		if m.Path != fm["name"] || m.Size != num(t, fm["size"]) || uint64(m.TimeDateStamp) != num(t, fm["timestamp"]) {
			t.Errorf("module at %#x = %s size %#x; facts %v size %v", base, m.Path, m.Size, fm["name"], fm["size"])
		}
	}
	// The memory: the JIT code's UNWIND_INFO the dump captured.
	var magic [2]byte
	if n, err := d.ReadMemory(magic[:], 0x1FCAA0000C); err != nil || n != 2 || magic != [2]byte{9, 0} {
		t.Errorf("UNWIND_INFO bytes at 0x1FCAA0000C = % x, %v", magic, err)
	}
}

func num(t *testing.T, v any) uint64 {
	switch v := v.(type) {
	case float64:
		return uint64(v)
	case string:
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("not a number: %v", v)
	return 0
}
