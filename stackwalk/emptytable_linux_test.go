package stackwalk_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/capture"
	"github.com/fntable/fntable/internal/demotarget"
	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/target/dump"
)

// TestDumpEmptyCallbackTable captures the demo target without a provider,
// so its callback table goes into the dump without entries, and walks
// the thread parked in that table's code offline: the walk ends at its
// first frame, and the error says that the frame is in the callback
// table, whose entries the dump does not hold, and names the provider.
func TestDumpEmptyCallbackTable(t *testing.T) {
	if _, err := demotarget.Compiler(); err != nil {
		testenv.Unavailable(t, "needs a C compiler for the demo target's provider: %v", err)
	}
	lib, err := demotarget.BuildProvider(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := demotarget.Start(context.Background(), demotarget.Options{Provider: lib, Lifetime: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	th, tab := p.Report.Thread(demotarget.ThreadCallback), p.Report.Table(demotarget.TableCallback)
	if th == nil || tab == nil {
		t.Fatalf("the demo target reports no callback thread or table: %+v", p.Report)
	}
	dmp := filepath.Join(t.TempDir(), "demo.dmp")
	sum, err := capture.WriteFile(p.Pid, dmp, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Unresolved != 1 {
		t.Fatalf("%d callback tables written without entries, want 1", sum.Unresolved)
	}
	d, err := dump.Open(dmp)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s, err := stackwalk.NewSources(d, stackwalk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := walkAll(t, s, threadContext(t, d, th.Tid))
	if len(frames) == 0 || uint64(tab.Min) > frames[0].PC || frames[0].PC >= uint64(tab.Max) {
		t.Fatalf("thread %d: %d frames, %v; want the first in the callback table [%#x, %#x):%s", th.Tid, len(frames), err, tab.Min, tab.Max, formatFrames(frames))
	}
	var fe *stackwalk.FrameError
	if len(frames) != 1 || !errors.As(err, &fe) || fe.Frame != 0 || !errors.Is(err, stackwalk.ErrNoUnwinder) {
		t.Fatalf("thread %d: %d frames, %v; want 1 frame and ErrNoUnwinder at frame 0:%s", th.Tid, len(frames), err, formatFrames(frames))
	}
	want := fmt.Sprintf("in callback table %#x [%#x, %#x), whose entries the dump does not hold: its provider %s gave none", uint64(tab.Identifier), uint64(tab.Min), uint64(tab.Max), lib)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("walk ended with\n\t%v\nwant it to say\n\t%s", err, want)
	}
	t.Logf("walk ended with %v", err)
}
