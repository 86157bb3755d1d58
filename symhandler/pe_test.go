package symhandler_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/symfile/pesym"
	"github.com/fntable/fntable/symhandler"
)

// TestPEFromSymbolStore loads a PE module that is not on disk, as a dump's
// module list names it (a Windows path, a timestamp and a size): the
// handler fetches the image from a Microsoft-layout symbol store over
// HTTP, checks it, and reads its symbols.
func TestPEFromSymbolStore(t *testing.T) {
	src := winetest.Testdata(t, "pe/go-gcc-amd64-mingw-exec")
	f, err := pesym.Open(src, symfileOptions())
	if err != nil {
		t.Fatal(err)
	}
	id := f.Ident()
	syms := f.Symbols()
	f.Close()
	const name = "gcc-amd64-mingw-exec.exe"
	store := t.TempDir()
	dir := filepath.Join(store, name, fmt.Sprintf("%08X%x", id.TimeDateStamp, id.SizeOfImage))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), mustRead(t, src), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(store)))
	defer srv.Close()

	const base = 0x140000000
	h := newHandler(t, symhandler.Config{SearchPath: "srv*" + t.TempDir() + "*" + srv.URL})
	r := newRecorder(t, h)
	m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{
		ImageName: `C:\Program Files\app\` + name, Base: base, Size: uint64(id.SizeOfImage), TimeDateStamp: id.TimeDateStamp})
	if err != nil {
		t.Fatal(err)
	}
	var fn string
	var addr uint64
	for _, s := range syms {
		if s.Size > 4 && !strings.HasPrefix(s.Name, "sub_") {
			fn, addr = s.Name, s.Addr-id.LinkBase+base
			break
		}
	}
	got, d, ok := h.FromAddr(addr + 2)
	if !ok || got.RawName != fn || d != 2 || got.Module != name {
		t.Fatalf("FromAddr(%s+2) = %+v +%d, %v", fn, got, d, ok)
	}
	lines := r.take(true)
	if lines[0] != "CBA_DEFERRED_SYMBOL_LOAD_START "+name+` file=C:\Program Files\app\`+name ||
		!strings.HasPrefix(lines[len(lines)-1], "CBA_DEFERRED_SYMBOL_LOAD_COMPLETE") {
		t.Errorf("callbacks %q", lines)
	}
	if info := m.Info(); info.TimeDateStamp != id.TimeDateStamp || info.NumSyms != len(syms) {
		t.Errorf("module info %+v", info)
	}

	// A store whose file has another timestamp is refused.
	h2 := newHandler(t, symhandler.Config{SearchPath: "srv*" + t.TempDir() + "*" + srv.URL})
	h2.LoadModule(context.Background(), symhandler.LoadRequest{
		ImageName: `C:\app\` + name, Base: base, Size: uint64(id.SizeOfImage), TimeDateStamp: id.TimeDateStamp + 1})
	if _, _, ok := h2.FromAddr(addr); ok {
		t.Error("an image with the wrong timestamp was used")
	}
}
