package main

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/fntable/fntable/capture"
	"github.com/fntable/fntable/target/dump"
)

// BenchmarkCapture writes a dump of the demo target (its callback table
// resolved through the provider, in-process), without --full.
func BenchmarkCapture(b *testing.B) {
	p, r := dumpDemo(b)
	path := filepath.Join(b.TempDir(), "demo.dmp")
	var size int64
	for b.Loop() {
		sum, err := capture.WriteFile(p.Pid, path, capture.Options{Provider: r})
		if err != nil {
			b.Fatal(err)
		}
		size = sum.Size
	}
	b.ReportMetric(float64(size), "bytes/dump")
}

// BenchmarkDumpWalk opens a dump of the demo target and walks all its
// threads, without symbols.
func BenchmarkDumpWalk(b *testing.B) {
	p, r := dumpDemo(b)
	path := filepath.Join(b.TempDir(), "demo.dmp")
	if _, err := capture.WriteFile(p.Pid, path, capture.Options{Provider: r}); err != nil {
		b.Fatal(err)
	}
	p.Close()
	empty := b.TempDir()
	for b.Loop() {
		d, err := dump.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.LoadImages(b.Context(), dump.ImageOptions{SearchPath: empty}); err != nil {
			b.Fatal(err)
		}
		if _, err := walkDump(d, stackConfig{maxFrames: 1024}, io.Discard); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}
