//go:build linux

package main

import (
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/unwindinfo"
)

// BenchmarkTablesCommand runs "fntable tables PID" (text and JSON) on a
// process that publishes 10,000 static tables of 8 entries: this process,
// read through /proc/PID/maps and process_vm_readv as another process
// would.
func BenchmarkTablesCommand(b *testing.B) {
	reg, err := functable.New(functable.Options{Publish: true})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	entries := make([]unwindinfo.RuntimeFunction, 8)
	for i := range entries {
		entries[i] = unwindinfo.RuntimeFunction{BeginAddress: uint32(i) * 0x100, EndAddress: uint32(i)*0x100 + 0x80, UnwindData: 0x800 + uint32(i)*8}
	}
	const n = 10000
	for i := range n {
		if _, err := reg.AddFunctionTable(entries, 0x7e0000000000+uint64(i)*0x1000); err != nil {
			b.Fatal(err)
		}
	}
	pid := strconv.Itoa(os.Getpid())
	for _, format := range []string{"text", "json"} {
		b.Run("format="+format, func(b *testing.B) {
			args := []string{"tables", pid}
			if format == "json" {
				args = []string{"tables", "--json", pid}
			}
			for b.Loop() {
				if status := run(args, io.Discard, io.Discard); status != 0 {
					b.Fatalf("status %d", status)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/table")
		})
	}
}
