package cfi

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/internal/testenv"
)

// vdso returns the address range of this process's vDSO.
func vdso(t *testing.T) (start, end uint64) {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		testenv.Unavailable(t, "needs /proc/self/maps: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 6 && f[5] == "[vdso]" {
			lo, hi, _ := strings.Cut(f[0], "-")
			s, _ := strconv.ParseUint(lo, 16, 64)
			e, _ := strconv.ParseUint(hi, 16, 64)
			return s, e
		}
	}
	testenv.Unavailable(t, "no [vdso] in /proc/self/maps")
	return 0, 0
}

// TestVDSO reads this process's vDSO from memory, through a Cache, and
// compares its FDEs with readelf's view of a copy on disk.
func TestVDSO(t *testing.T) {
	start, end := vdso(t)
	p, err := procmem.Open(os.Getpid())
	if err != nil {
		testenv.Unavailable(t, "cannot read own memory: %v", err)
	}
	defer p.Close()
	var c Cache
	defer c.Close()
	f, err := c.OpenMemory(p, start)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.BuildID()) == 0 {
		t.Error("vDSO without build ID")
	}
	if g, err := c.OpenMemory(p, start); err != nil || g != f {
		t.Errorf("second OpenMemory = %p, %v; want the cached %p", g, err, f)
	}
	n := 0
	if err := f.FDEs(func(fd FDE) bool {
		n++
		if _, ok, err := f.Lookup(fd.Begin); !ok || err != nil {
			t.Errorf("Lookup(%#x) = %v, %v", fd.Begin, ok, err)
		}
		return true
	}); err != nil || n == 0 {
		t.Fatalf("%d FDEs, %v", n, err)
	}
	img := make([]byte, end-start)
	if _, err := p.ReadMemory(img, start); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vdso.so")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	st := diffFile(t, path)
	t.Logf("vdso: %d FDEs, %d rows compared", st.fdes, st.rows)
}

// TestCache shares one File per build ID, and per path.
func TestCache(t *testing.T) {
	var c Cache
	defer c.Close()
	a, err := c.Open(libcPath)
	if err != nil {
		testenv.Unavailable(t, "needs %s: %v", libcPath, err)
	}
	// The same file under another name: same build ID, same File.
	link := filepath.Join(t.TempDir(), "libc-link.so")
	if err := os.Symlink(libcPath, link); err != nil {
		t.Fatal(err)
	}
	b, err := c.Open(link)
	if err != nil || b != a {
		t.Errorf("Open(link) = %p, %v; want %p", b, err, a)
	}
	if b, _ := c.Open(libcPath); b != a {
		t.Error("second Open gave another File")
	}
	if _, err := c.Open(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file opened")
	}
}
