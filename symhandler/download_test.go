package symhandler_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/symhandler"
)

// bigSources is a program with enough functions that its debug file spans
// several progress steps.
func bigSources() map[string]string {
	var b strings.Builder
	b.WriteString("int compute(int x);\n")
	for i := range 800 {
		fmt.Fprintf(&b, "int f%d(int x) { int y = x * %d; for (int i = 0; i < x; i++) y += i ^ %d; return y; }\n", i, i, i)
	}
	b.WriteString("int compute(int x) { return f1(x) + f2(x); }\nint main(int c, char **v) { return compute(c); }\n")
	return map[string]string{"big.c": b.String()}
}

// serveDebuginfod starts the real debuginfod over dir on a free loopback
// port and returns its URL once it serves buildID.
func serveDebuginfod(t *testing.T, dir, buildID string) string {
	t.Helper()
	testenv.Tool(t, "debuginfod")
	state := t.TempDir()
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		log, err := os.Create(filepath.Join(state, "log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("debuginfod", "-F", dir, "-p", fmt.Sprint(port), "-d", filepath.Join(state, "db.sqlite"), "-c", "1", "-t", "0")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); log.Close(); close(exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		url := fmt.Sprintf("http://127.0.0.1:%d", port)
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			resp, err := http.Get(url + "/buildid/" + buildID + "/debuginfo") // debuginfod answers GET only
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return url
				}
			}
		}
		cmd.Process.Kill()
	}
	b, _ := os.ReadFile(filepath.Join(state, "log"))
	t.Fatalf("debuginfod did not serve build ID %s:\n%s", buildID, b)
	return ""
}

// slowProxy forwards to url, sending response bodies 16 KiB every 20 ms.
func slowProxy(t *testing.T, target string) http.Handler {
	u, err := neturl.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		resp.Body = &slowBody{resp.Body}
		return nil
	}
	return p
}

type slowBody struct{ io.ReadCloser }

func (b *slowBody) Read(p []byte) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return b.ReadCloser.Read(p[:min(len(p), 16<<10)])
}

func TestDownload(t *testing.T) {
	dir := t.TempDir()
	objcopy := testenv.Tool(t, "objcopy")
	exe := buildC(t, dir, "big", bigSources(), "-g", "-O0", "-Wl,--build-id")
	served := t.TempDir()
	debug := filepath.Join(served, "big.debug")
	run(t, dir, objcopy, "--only-keep-debug", exe, debug)
	run(t, dir, objcopy, "--strip-all", exe)
	id := fmt.Sprintf("%x", identBuildID(t, exe))
	t0 := time.Now()
	url := serveDebuginfod(t, served, id)
	t.Logf("built and served in %v", time.Since(t0))
	cache := t.TempDir()
	path := "cache*" + cache + ";debuginfod*" + url
	pc := symbolAddr(t, debug, "compute")
	info, _ := os.Stat(debug)

	// Cancel in the middle of the download, from the callback; the
	// download goes through a proxy that sends 16 KiB every 20 ms, so that
	// it is still running when the callback answers.
	slow := httptest.NewServer(slowProxy(t, url))
	defer slow.Close()
	h := newHandler(t, symhandler.Config{SearchPath: "cache*" + cache + ";debuginfod*" + slow.URL})
	r := newRecorder(t, h)
	var progress atomic.Int32
	r.answer[symhandler.CBA_EVENT] = func(_ *symhandler.Handler, data any) bool {
		if e := data.(*symhandler.CBAEvent); e.Progress != nil && e.Progress.Stage == "download" {
			progress.Add(1)
		}
		return true
	}
	r.answer[symhandler.CBA_DEFERRED_SYMBOL_LOAD_CANCEL] = func(*symhandler.Handler, any) bool { return progress.Load() >= 1 }
	m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := h.FromAddr(pc); ok {
		t.Fatal("a canceled download resolved")
	}
	want(t, r.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START big file=big",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL big file=big",
		"CBA_CHECK_ENGOPT_DISALLOW_NETWORK_PATHS",
		"PROGRESS")
	if ents, _ := filepath.Glob(filepath.Join(cache, "*", "*")); len(ents) != 0 {
		t.Errorf("a canceled download left %q in the cache", ents)
	}
	if m.Info().Type != symhandler.SymDeferred {
		t.Errorf("module %v after a canceled download", m.Info().Type)
	}

	t.Logf("canceled download at %v", time.Since(t0))
	// Download, with progress reaching the file's size.
	if err := h.SetSearchPath(path); err != nil {
		t.Fatal(err)
	}
	var last symhandler.Progress
	var steps int
	r.answer[symhandler.CBA_DEFERRED_SYMBOL_LOAD_CANCEL] = nil
	r.answer[symhandler.CBA_EVENT] = func(_ *symhandler.Handler, data any) bool {
		if e := data.(*symhandler.CBAEvent); e.Progress != nil && e.Progress.Stage == "download" {
			if e.Progress.Done < last.Done {
				t.Errorf("progress went back from %d to %d", last.Done, e.Progress.Done)
			}
			last = *e.Progress
			steps++
		}
		return false
	}
	s, _, ok := h.FromAddr(pc)
	if !ok || s.Name != "compute" {
		t.Fatalf("FromAddr(compute) after download = %+v, %v", s, ok)
	}
	// Progress is sent every 64 KiB as the download advances, but a fast
	// loopback transfer may end before the first one is delivered; the
	// last always reports the whole file.
	if steps < 1 || last.Done != info.Size() || last.Total != info.Size() {
		t.Errorf("%d progress steps, last %+v; the file has %d bytes", steps, last, info.Size())
	}
	got := r.take(true)
	want(t, got,
		"CBA_DEFERRED_SYMBOL_LOAD_START big file=big",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL big file=big",
		"CBA_CHECK_ENGOPT_DISALLOW_NETWORK_PATHS",
		"PROGRESS",
		"CBA_EVENT info code=3",
		"PROGRESS",
		"CBA_DEFERRED_SYMBOL_LOAD_COMPLETE big file=big type=dia debug=debuginfo")
	if mi := m.Info(); !strings.HasPrefix(mi.DebugFile, cache) {
		t.Errorf("debug file %s is not in the cache %s", mi.DebugFile, cache)
	}

	t.Logf("downloaded at %v", time.Since(t0))
	// A callback that disallows network paths keeps the handler local.
	h3 := newHandler(t, symhandler.Config{SearchPath: "cache*" + t.TempDir() + ";debuginfod*" + url})
	r3 := newRecorder(t, h3)
	r3.answer[symhandler.CBA_CHECK_ENGOPT_DISALLOW_NETWORK_PATHS] = func(*symhandler.Handler, any) bool { return true }
	h3.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if _, _, ok := h3.FromAddr(pc); ok {
		t.Error("symbols downloaded although the callback disallowed network paths")
	}
	want(t, r3.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START big file=big",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL big file=big",
		"CBA_CHECK_ENGOPT_DISALLOW_NETWORK_PATHS",
		"CBA_DEFERRED_SYMBOL_LOAD_FAILURE big file=big")

	// With SYMOPT_SECURE no server is asked.
	h2 := newHandler(t, symhandler.Config{SearchPath: "cache*" + t.TempDir() + ";debuginfod*" + url,
		Options: symhandler.DefaultOptions | symhandler.SYMOPT_SECURE})
	h2.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if _, _, ok := h2.FromAddr(pc); ok {
		t.Error("SYMOPT_SECURE downloaded symbols")
	}
}

// TestDisableSymsrvTimeout: a server that takes longer to answer than
// the client's timeout (DEBUGINFOD_TIMEOUT) fails the download, unless
// SYMOPT_DISABLE_SYMSRV_TIMEOUT is set.
func TestDisableSymsrvTimeout(t *testing.T) {
	dir := t.TempDir()
	objcopy := testenv.Tool(t, "objcopy")
	exe := buildC(t, dir, "prog", progSources, "-g", "-O0", "-Wl,--build-id")
	debug := filepath.Join(dir, "prog.debug")
	run(t, dir, objcopy, "--only-keep-debug", exe, debug)
	run(t, dir, objcopy, "--strip-all", exe)
	id := fmt.Sprintf("%x", identBuildID(t, exe))
	pc := symbolAddr(t, debug, "compute")
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/buildid/"+id+"/debuginfo" {
			http.NotFound(w, r)
			return
		}
		time.Sleep(1500 * time.Millisecond)
		http.ServeFile(w, r, debug)
	}))
	defer slow.Close()
	t.Setenv("DEBUGINFOD_URLS", slow.URL)
	t.Setenv("DEBUGINFOD_TIMEOUT", "1")
	t.Setenv("DEBUGINFOD_RETRY_LIMIT", "0")
	t.Setenv("_NT_SYMBOL_PATH", "")
	for _, untimed := range []bool{false, true} {
		t.Setenv("DEBUGINFOD_CACHE_PATH", t.TempDir())
		opts := symhandler.DefaultOptions
		if untimed {
			opts |= symhandler.SYMOPT_DISABLE_SYMSRV_TIMEOUT
		}
		h, err := symhandler.New(symhandler.Config{Options: opts, DebugDirs: []string{}}) // the path from the environment
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
		if err != nil {
			t.Fatal(err)
		}
		h.FromAddr(pc)
		if got := m.Info().DebugFile != ""; got != untimed {
			t.Errorf("untimed=%v: debug file %q", untimed, m.Info().DebugFile)
		}
	}
}
