package verify

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchImages adds images to BenchmarkImage, for example the largest image
// the README's figures are measured on.
var benchImages = flag.String("bench-images", "", "comma-separated PE `files` for BenchmarkImage besides the shared and Wine images")

// BenchmarkImage checks the whole function table of PE images, as
// "fntable verify IMAGE" does after opening the file, and reports
// functions verified per second.
func BenchmarkImage(b *testing.B) {
	var names []string
	if *benchImages != "" {
		names = strings.Split(*benchImages, ",")
	}
	// The shared MSVC image, from this package's directory.
	names = append(names, filepath.Join("..", "..", "shared", "testdata", "pe", "symbolic-CrashWithException.exe"))
	if dir := wineDLLDir(); dir != "" {
		names = append(names, filepath.Join(dir, "ntdll.dll"), filepath.Join(dir, "msvcr120.dll"))
	}
	for _, name := range names {
		b.Run(filepath.Base(name), func(b *testing.B) {
			f, err := os.ReadFile(name)
			if err != nil {
				b.Skip(err)
			}
			r := bytes.NewReader(f)
			var rep Report
			for b.Loop() {
				if rep, err = Image(r, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rep.Functions)*float64(b.N)/b.Elapsed().Seconds(), "functions/s")
			b.ReportMetric(float64(rep.Functions), "functions")
		})
	}
}
