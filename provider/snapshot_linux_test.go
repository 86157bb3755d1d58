//go:build linux

package provider

import (
	"os"
	"testing"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/unwindinfo"
)

// TestSnapshot resolves a callback table that a registry of this process
// published, read back through functable/remote as another process would
// read it: the provider gets the address of the published record, and
// finds its metadata through the record's Context.
func TestSnapshot(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newFixture(t)
			tg := newTarget(t)
			lib := f.install(t, f.good, "provider.so")
			tg.table(lib, answerMeta(goodEntries...)) // the metadata, at tg.addr+metaOff

			reg, err := functable.New(functable.Options{Publish: true})
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Close()
			cb := func(uint64, any) *unwindinfo.RuntimeFunction { return nil }
			ft, err := reg.InstallFunctionTableCallback(tg.addr|3, tg.addr, codeMax, cb, nil, lib)
			if err != nil {
				t.Fatal(err)
			}
			if err := ft.PublishNativeCallback(0, tg.addr+metaOff); err != nil {
				t.Fatal(err)
			}
			maps, err := remote.Find(os.Getpid())
			if err != nil || len(maps) == 0 {
				t.Fatalf("find published lists: %v, %v", maps, err)
			}
			mem, err := procmem.Open(os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			defer mem.Close()
			var snap *remote.Snapshot
			for _, mp := range maps {
				s, err := remote.Read(mem, mp)
				if err == nil && s.Table(tg.addr+codeMin) != nil {
					snap = s
				}
			}
			if snap == nil {
				t.Fatal("the callback table is in no published list")
			}
			snap.UseProvider(os.Getpid(), &Resolver{Trust: f.trust(t, lib), Isolate: m.isolate})
			fn, base, ok := snap.LookupFunctionEntry(tg.addr + codeMin + 0x110)
			if !ok || base != tg.addr || *fn != goodEntries[1] {
				t.Fatalf("LookupFunctionEntry = %v, %#x, %v; want %v", fn, base, ok, goodEntries[1])
			}
			res := snap.Resolve(snap.Table(tg.addr + codeMin))
			if res.Err != nil || !res.Loaded || res.Entries != len(goodEntries) || res.Isolated != m.isolate {
				t.Errorf("resolution = %+v", res)
			}
		})
	}
}
