package symhandler_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/symhandler"
)

// TestBuildIDDirectory finds a stripped binary's debug file by build ID,
// in a global debug directory and in a search-path directory, where the
// debuglink cannot lead (the binary is copied elsewhere without it).
func TestBuildIDDirectory(t *testing.T) {
	stripped, debug := symtest.SplitDebug(t)
	ids := symtest.BuildIDDir(t)
	exe := filepath.Join(t.TempDir(), "split")
	if err := os.WriteFile(exe, mustRead(t, stripped), 0o755); err != nil {
		t.Fatal(err)
	}
	pc := symbolAddr(t, debug, "main")
	for _, cfg := range []symhandler.Config{
		{DebugDirs: []string{ids}},
		{SearchPath: ids},
	} {
		h := newHandler(t, cfg)
		r := newRecorder(t, h)
		m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
		if err != nil {
			t.Fatal(err)
		}
		if s, _, ok := h.FromAddr(pc); !ok || s.Name != "main" {
			t.Fatalf("%+v: FromAddr(main) = %+v, %v", cfg, s, ok)
		}
		if info := m.Info(); filepath.Dir(filepath.Dir(filepath.Dir(info.DebugFile))) != ids || len(info.BuildID) == 0 {
			t.Errorf("%+v: debug file %s, build ID %x", cfg, info.DebugFile, info.BuildID)
		}
		got := r.take(true)
		if last := got[len(got)-1]; last != "CBA_DEFERRED_SYMBOL_LOAD_COMPLETE split file=split type=dia debug="+filepath.Base(m.Info().DebugFile) {
			t.Errorf("%+v: callbacks %q", cfg, got)
		}
	}
	// Neither directory: no symbols.
	h := newHandler(t, symhandler.Config{})
	h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if _, _, ok := h.FromAddr(pc); ok {
		t.Error("symbols without a debug file")
	}
}
