package minidump

import (
	"testing"

	"github.com/fntable/fntable/internal/winetest"
)

// BenchmarkElectron opens the Electron dump and decodes every stream this
// package knows, and builds its memory index.
func BenchmarkElectron(b *testing.B) {
	path := winetest.Testdata(b, "minidumps/electron-node-minidump-windows-x64.dmp")
	b.ReportAllocs()
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		for name, call := range accessors(f) {
			if err := call(); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
		}
		if _, err := f.Memory64List(); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Memory(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkReadMemory reads 8-byte stack slots of the Electron dump's
// threads through Memory, as an unwinder does.
func BenchmarkReadMemory(b *testing.B) {
	f := openDump(b, "electron-node-minidump-windows-x64.dmp")
	threads, err := f.Threads()
	if err != nil {
		b.Fatal(err)
	}
	mem, err := f.Memory()
	if err != nil {
		b.Fatal(err)
	}
	var p [8]byte
	for b.Loop() {
		for _, th := range threads {
			for off := uint64(0); off+8 <= uint64(th.Stack.Memory.DataSize) && off < 512; off += 8 {
				if _, err := mem.ReadMemory(p[:], th.Stack.StartOfMemoryRange+off); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
