package verify

import (
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/fntable/fntable/peimage"
)

// checkFile checks one PE image file.
func checkFile(t testing.TB, name string) (Report, bool) {
	f, err := peimage.Open(name)
	if err != nil {
		return Report{}, false
	}
	defer f.Close()
	fh, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	exec, err := ExecutableSections(fh)
	if err != nil {
		return Report{}, false
	}
	rep, err := Image(f, exec, 0)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return rep, true
}

// wineImages runs TestWineImages: it takes minutes (every x64 DLL Wine
// ships, about 170,000 functions), and reports rather than asserts while
// its findings are not all explained (see the package documentation).
var wineImages = flag.Bool("wine-images", false, "run TestWineImages over every x64 DLL Wine ships")

// TestWineImages verifies every x64 DLL Wine ships and logs what it finds
// (go test ./verify -run WineImages -wine-images -v).
func TestWineImages(t *testing.T) {
	if !*wineImages {
		t.Skip("takes minutes; run with -wine-images")
	}
	files, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/*.dll")
	if len(files) == 0 {
		t.Skip("Wine's x64 DLLs are not installed")
	}
	var total Report
	kinds := map[Kind]int{}
	flagged := map[string]bool{}
	for _, name := range files {
		rep, ok := checkFile(t, name)
		if !ok {
			continue
		}
		total.Functions += rep.Functions
		total.Instructions += rep.Instructions
		for _, p := range rep.Problems {
			kinds[p.Kind]++
			key := filepath.Base(name) + " " + p.String()
			if !flagged[filepath.Base(name)+string(rune(0))+p.String()[:18]] {
				t.Logf("%s [%s]", key, p.Kind)
			}
			flagged[filepath.Base(name)+string(rune(0))+p.String()[:18]] = true
		}
	}
	var ks []string
	for k, n := range kinds {
		ks = append(ks, string(k)+"="+itoa(n))
	}
	sort.Strings(ks)
	t.Logf("%d images, %d functions, %d instructions, %d flagged functions; %v", len(files), total.Functions, total.Instructions, len(flagged), ks)
}

func itoa(n int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}
