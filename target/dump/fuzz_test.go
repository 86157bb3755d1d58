package dump_test

import (
	"bytes"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/unwind"
)

// FuzzDump opens arbitrary bytes as a dump target and uses every part of
// it a stack walk uses: threads and their contexts (the exception's
// included), modules, memory, the published lists and the function
// tables. Nothing may panic or hang, whatever the dump holds.
func FuzzDump(f *testing.F) {
	var buf bytes.Buffer
	if _, err := minidump.Write(&buf, linuxContent(), minidump.WriteOptions{}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	winetest.AddSeeds(f, "minidumps/*.dmp", 64<<10) // larger dumps slow the fuzzing down
	f.Fuzz(func(t *testing.T, b []byte) {
		mf, err := minidump.NewFile(bytes.NewReader(b))
		if err != nil {
			return
		}
		d, err := dump.New(mf)
		if err != nil {
			return
		}
		_ = d.Warnings()
		if e := d.Exception(); e != nil {
			_ = e.String()
		}
		threads, _ := d.Threads()
		var ctx unwind.Context
		for _, th := range threads {
			d.ThreadContext(th.ID, &ctx)
			d.ThreadListContext(th.ID, &ctx)
		}
		var p [64]byte
		d.Modules(func(m target.Module) bool {
			d.ReadMemory(p[:], m.Base)
			return true
		})
		d.ReadMemory(p[:], ctx.Rsp)
		d.ReadMemory(p[:], ctx.Rip)
		d.PublishedLists()
		d.FunctionTables()
		_ = d.ProcessID()
	})
}
