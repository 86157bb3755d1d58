package symsrv

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/testenv"
)

// unavailable skips the test, or fails it under CI (see internal/testenv).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

// needCmd returns the path of a program, or skips (fails under CI) naming
// the Debian package that has it.
func needCmd(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, "needs %s (apt-get install -y --no-install-recommends %s): %v", name, pkg, err)
	}
	return p
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

var buildIDLine = regexp.MustCompile(`Build ID: ([0-9a-f]+)`)

// readelfBuildID returns a file's build ID as binutils' readelf prints it.
func readelfBuildID(t testing.TB, path string) string {
	t.Helper()
	m := buildIDLine.FindStringSubmatch(run(t, "readelf", "-n", path))
	if m == nil {
		t.Fatalf("readelf -n %s: no build id", path)
	}
	return m[1]
}

// elfFile is a file that the debuginfod fixture serves.
type elfFile struct {
	path string // the file debuginfod indexes
	id   string // its build ID, from readelf
	raw  []byte // its bytes
}

func (f elfFile) buildID(t testing.TB) []byte {
	b, err := hex.DecodeString(f.id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is one debuginfod server over a few freshly compiled programs,
// shared by the tests of this package and stopped by TestMain.
type fixture struct {
	url string // the server, http://127.0.0.1:PORT

	// small: one unstripped program with DWARF, served as both debuginfo
	// and executable. splitExe/splitDebug: a stripped program and its
	// objcopy --only-keep-debug file (same build ID). big: an unstripped
	// program with 4 MiB of initialized data, for progress and canceling.
	small, splitExe, splitDebug, big elfFile
}

var (
	fixtureOnce sync.Once
	theFixture  *fixture
	fixtureErr  string // why there is no fixture: a missing tool ("skip: ...") or a failure
	fixtureStop func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureStop != nil {
		fixtureStop()
	}
	os.Exit(code)
}

// debuginfodFixture starts the shared server on first use.
func debuginfodFixture(t testing.TB) *fixture {
	t.Helper()
	fixtureOnce.Do(func() { theFixture, fixtureErr = startFixture() })
	if theFixture == nil {
		if after, ok := strings.CutPrefix(fixtureErr, "skip: "); ok {
			unavailable(t, "%s", after)
		}
		t.Fatal(fixtureErr)
	}
	return theFixture
}

const debianPackages = "debuginfod elfutils gcc binutils"

func startFixture() (*fixture, string) {
	for _, c := range []string{"debuginfod", "gcc", "objcopy", "strip", "readelf"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Sprintf("skip: needs %s (apt-get install -y --no-install-recommends %s): %v", c, debianPackages, err)
		}
	}
	dir, err := os.MkdirTemp("", "symsrv-debuginfod-")
	if err != nil {
		return nil, err.Error()
	}
	fx, stop, err := buildAndServe(dir)
	if err != nil {
		stop()
		os.RemoveAll(dir)
		return nil, err.Error()
	}
	fixtureStop = func() { stop(); os.RemoveAll(dir) }
	return fx, ""
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func buildAndServe(dir string) (*fixture, func(), error) {
	stop := func() {}
	src := filepath.Join(dir, "src")
	files := filepath.Join(dir, "files")
	for _, d := range []string{src, files} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, stop, err
		}
	}
	programs := map[string]string{
		"small.c": "#include <stdio.h>\nstatic int twice(int x) { return 2 * x; }\nint main(int argc, char **argv) { printf(\"%d\\n\", twice(argc)); return 0; }\n",
		"split.c": "#include <stdlib.h>\nint work(int n) { int s = 0; for (int i = 0; i < n; i++) s += i * i; return s; }\nint main(int argc, char **argv) { return work(argc > 1 ? atoi(argv[1]) : 3) & 1; }\n",
		// 4 MiB of initialized, read-only data: the file is that large.
		"big.c": "const char big[4 << 20] = {1, 2, 3};\nint main(int argc, char **argv) { return big[argc]; }\n",
	}
	for name, text := range programs {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			return nil, stop, err
		}
	}
	cc := func(name, out string) error {
		return sh("gcc", "-g", "-O1", "-Wl,--build-id", "-o", out, filepath.Join(src, name))
	}
	steps := []func() error{
		func() error { return cc("small.c", filepath.Join(files, "small")) },
		func() error { return cc("big.c", filepath.Join(files, "big")) },
		func() error { return cc("split.c", filepath.Join(src, "split")) },
		func() error {
			return sh("objcopy", "--only-keep-debug", filepath.Join(src, "split"), filepath.Join(files, "split.debug"))
		},
		func() error {
			return sh("strip", "--strip-debug", "-o", filepath.Join(files, "split"), filepath.Join(src, "split"))
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, stop, err
		}
	}
	load := func(name string) (elfFile, error) {
		p := filepath.Join(files, name)
		out, err := exec.Command("readelf", "-n", p).Output()
		if err != nil {
			return elfFile{}, fmt.Errorf("readelf -n %s: %v", p, err)
		}
		m := buildIDLine.FindSubmatch(out)
		if m == nil {
			return elfFile{}, fmt.Errorf("readelf -n %s: no build id", p)
		}
		raw, err := os.ReadFile(p)
		return elfFile{path: p, id: string(m[1]), raw: raw}, err
	}
	fx := &fixture{}
	for _, x := range []struct {
		dst  *elfFile
		name string
	}{{&fx.small, "small"}, {&fx.splitExe, "split"}, {&fx.splitDebug, "split.debug"}, {&fx.big, "big"}} {
		f, err := load(x.name)
		if err != nil {
			return nil, stop, err
		}
		*x.dst = f
	}
	if fx.splitExe.id != fx.splitDebug.id {
		return nil, stop, fmt.Errorf("split and split.debug have build ids %s and %s", fx.splitExe.id, fx.splitDebug.id)
	}

	// Start debuginfod on a free loopback port; another process may take
	// the port between the probe and the bind, so try a few times.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, stop, err
		}
		logf, err := os.Create(filepath.Join(dir, "debuginfod.log"))
		if err != nil {
			return nil, stop, err
		}
		cmd := exec.Command("debuginfod", "-F", files, "-p", fmt.Sprint(port),
			"-d", filepath.Join(dir, "db.sqlite"), "-c", "1")
		cmd.Stdout, cmd.Stderr = logf, logf
		dieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, stop, err
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }()
		stop = func() {
			cmd.Process.Kill()
			<-exited
		}
		fx.url = fmt.Sprintf("http://127.0.0.1:%d", port)
		lastErr = waitReady(fx, exited, filepath.Join(dir, "debuginfod.log"))
		if lastErr == nil {
			return fx, stop, nil
		}
		stop()
		stop = func() {}
	}
	return nil, stop, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits until /metrics answers and every file is served: the
// scan is done when the build IDs resolve.
func waitReady(fx *fixture, exited chan struct{}, logPath string) error {
	deadline := time.Now().Add(60 * time.Second)
	urls := []string{
		fx.url + "/buildid/" + fx.small.id + "/debuginfo",
		fx.url + "/buildid/" + fx.splitExe.id + "/executable",
		fx.url + "/buildid/" + fx.splitDebug.id + "/debuginfo",
		fx.url + "/buildid/" + fx.big.id + "/executable",
	}
	// debuginfod answers HEAD with 400, so this polls with GET.
	metrics := false
	ok := map[string]bool{}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("debuginfod exited early:\n%s", log)
		default:
		}
		if !metrics {
			if resp, err := http.Get(fx.url + "/metrics"); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				metrics = resp.StatusCode == 200 && bytes.Contains(body, []byte("scanned_files_total"))
			}
		}
		for _, u := range urls {
			if !metrics || ok[u] {
				continue
			}
			if resp, err := http.Get(u); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok[u] = resp.StatusCode == 200
			}
		}
		if len(ok) == len(urls) && !slices.Contains(slices.Collect(maps.Values(ok)), false) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(logPath)
	return fmt.Errorf("debuginfod at %s not ready after 60 s:\n%s", fx.url, log)
}

// proxy is a reverse proxy in front of the real debuginfod that can
// misbehave in the ways a network and a server do.
type proxy struct {
	srv      *http.Server
	url      string
	rp       *httputil.ReverseProxy
	requests atomic.Int64

	mu   sync.Mutex
	mode proxyMode
}

type proxyMode struct {
	status      int           // answer with this status instead of proxying
	delay       time.Duration // before the response starts
	chunk       int           // write the body in chunks of this many bytes...
	chunkDelay  time.Duration // ...with this pause before each
	cutAfter    int64         // abort the connection after this many body bytes (0: no)
	shrink      bool          // serve the first half of the file as a complete response
	redirectTo  string        // serve this build ID's file instead of the one asked for
	noLength    bool          // drop Content-Length (the body goes chunked)
	noSize      bool          // drop debuginfod's X-Debuginfod-Size too
	onlyBuildID string        // misbehave only for requests naming this build ID ("" = all)
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.FlushInterval = -1
	p.rp.ErrorLog = log.New(io.Discard, "", 0)
	p.rp.ModifyResponse = func(resp *http.Response) error {
		m := p.modeFor(resp.Request.URL.Path)
		if m.noLength {
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
		}
		if m.noSize {
			resp.Header.Del("X-Debuginfod-Size")
		}
		if !m.shrink || resp.StatusCode != 200 {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b = b[:len(b)/2]
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.srv = &http.Server{Handler: p, ErrorLog: log.New(io.Discard, "", 0)}
	go p.srv.Serve(l)
	p.url = "http://" + l.Addr().String()
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func (p *proxy) set(m proxyMode) {
	p.mu.Lock()
	p.mode = m
	p.mu.Unlock()
}

func (p *proxy) modeFor(path string) proxyMode {
	p.mu.Lock()
	m := p.mode
	p.mu.Unlock()
	if m.onlyBuildID != "" && !strings.Contains(path, "/"+m.onlyBuildID+"/") {
		return proxyMode{}
	}
	return m
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	m := p.modeFor(r.URL.Path)
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-r.Context().Done():
			return
		}
	}
	if m.status != 0 {
		http.Error(w, http.StatusText(m.status), m.status)
		return
	}
	if m.redirectTo != "" {
		parts := strings.Split(r.URL.Path, "/") // "", "buildid", ID, kind
		if len(parts) == 4 {
			parts[2] = m.redirectTo
			r.URL.Path = strings.Join(parts, "/")
		}
	}
	if m.chunk > 0 || m.cutAfter > 0 {
		w = &misbehavingWriter{ResponseWriter: w, ctx: r.Context(), m: m}
	}
	p.rp.ServeHTTP(w, r)
}

var errCut = errors.New("connection cut by the test proxy")

// misbehavingWriter slows a body down or cuts it off. When it returns an
// error, the reverse proxy aborts the connection (http.ErrAbortHandler),
// so the client sees a body shorter than its Content-Length.
type misbehavingWriter struct {
	http.ResponseWriter
	ctx     context.Context
	m       proxyMode
	written int64
}

func (w *misbehavingWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := len(b)
		if w.m.chunk > 0 {
			k = min(k, w.m.chunk)
			select {
			case <-time.After(w.m.chunkDelay):
			case <-w.ctx.Done():
				return n, w.ctx.Err()
			}
		}
		if w.m.cutAfter > 0 && w.written+int64(k) > w.m.cutAfter {
			k = int(w.m.cutAfter - w.written)
			m, _ := w.ResponseWriter.Write(b[:k])
			w.written += int64(m)
			w.Flush()
			return n + m, errCut
		}
		m, err := w.ResponseWriter.Write(b[:k])
		n += m
		w.written += int64(m)
		if err != nil {
			return n, err
		}
		w.Flush()
		b = b[k:]
	}
	return n, nil
}

func (w *misbehavingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// cacheFiles lists the regular files under dir, relative and
// slash-separated, temporary files included.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkCacheOnly fails unless the cache holds exactly the given files,
// each with the given bytes: nothing truncated, wrong or left over.
func checkCacheOnly(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	got := cacheFiles(t, dir)
	if len(got) != len(want) {
		t.Fatalf("cache holds %q, want exactly %d files", got, len(want))
	}
	for _, rel := range got {
		w, ok := want[rel]
		if !ok {
			t.Fatalf("cache holds unexpected %s (all: %q)", rel, got)
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, w) {
			t.Fatalf("cache file %s: %d bytes that differ from the %d expected", rel, len(b), len(w))
		}
	}
}
