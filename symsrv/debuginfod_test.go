package symsrv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// client returns a client for one debuginfod URL with a fresh cache and
// short retry delays.
func testClient(t *testing.T, urls ...string) (*Client, string) {
	t.Helper()
	cache := t.TempDir()
	c := &Client{CacheDir: cache, RetryDelay: 10 * time.Millisecond, Timeout: 20 * time.Second}
	for _, u := range urls {
		c.Elements = append(c.Elements, Element{Type: ElemDebuginfod, Path: u})
	}
	return c, cache
}

func TestDebuginfodFetch(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	c, cache := testClient(t, p.url)
	ctx := context.Background()
	cases := []struct {
		name string
		file elfFile
		kind Kind
		want elfFile // the file debuginfod should serve
	}{
		{"unstripped debuginfo", fx.small, KindDebuginfo, fx.small},
		{"unstripped executable", fx.small, KindExecutable, fx.small},
		{"split debuginfo", fx.splitExe, KindDebuginfo, fx.splitDebug},
		{"split executable", fx.splitExe, KindExecutable, fx.splitExe},
	}
	want := map[string][]byte{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, err := c.FetchDebuginfo(ctx, tc.file.buildID(t), tc.kind, nil)
			if err != nil {
				t.Fatal(err)
			}
			rel := tc.file.id + "/" + tc.kind.String()
			if path != filepath.Join(cache, filepath.FromSlash(rel)) {
				t.Errorf("path %s, want CACHE/%s", path, rel)
			}
			want[rel] = tc.want.raw
			if id := readelfBuildID(t, path); id != tc.file.id {
				t.Errorf("readelf says the cached file has build id %s, want %s", id, tc.file.id)
			}
		})
	}
	checkCacheOnly(t, cache, want)

	// A second round is served from the cache.
	before := p.requests.Load()
	for _, tc := range cases {
		if _, err := c.FetchDebuginfo(ctx, tc.file.buildID(t), tc.kind, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.requests.Load() - before; n != 0 {
		t.Errorf("%d requests for files in the cache", n)
	}
}

// progressLog records progress calls.
type progressLog struct {
	mu    sync.Mutex
	calls [][2]int64
	stop  func(done, total int64) bool // returns false to cancel; nil: never
}

func (l *progressLog) fn(done, total int64) bool {
	l.mu.Lock()
	l.calls = append(l.calls, [2]int64{done, total})
	l.mu.Unlock()
	return l.stop == nil || l.stop(done, total)
}

func TestDebuginfodProgress(t *testing.T) {
	fx := debuginfodFixture(t)
	c, _ := testClient(t, fx.url)
	var pl progressLog
	path, err := c.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindExecutable, pl.fn)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(fx.big.raw))
	if fi, err := os.Stat(path); err != nil || fi.Size() != size {
		t.Fatalf("cached file %v, %v; want %d bytes", fi, err, size)
	}
	calls := pl.calls
	if len(calls) < 2 {
		t.Fatalf("progress called %d times for %d bytes", len(calls), size)
	}
	// At most one call per 64 KiB, plus the final one.
	if max := size/progressStep + 1; int64(len(calls)) > max {
		t.Errorf("progress called %d times, want at most %d", len(calls), max)
	}
	prev := int64(-1)
	for i, c := range calls {
		if c[1] != size {
			t.Errorf("call %d: total %d, want the Content-Length %d", i, c[1], size)
		}
		if c[0] < prev || c[0] > size {
			t.Errorf("call %d: done %d after %d (size %d)", i, c[0], prev, size)
		}
		if i < len(calls)-1 && c[0]-prev < progressStep && prev >= 0 {
			t.Errorf("call %d: done %d only %d bytes after the previous call", i, c[0], c[0]-prev)
		}
		prev = c[0]
	}
	if last := calls[len(calls)-1]; last[0] != size {
		t.Errorf("last call %v, want done == total == %d", last, size)
	}
	t.Logf("%d progress calls for %d bytes", len(calls), size)
}

func TestDebuginfodCancel(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	// 16 KiB every 2 ms: about 1 s for the whole file, long enough to
	// cancel in the middle.
	slow := proxyMode{chunk: 16 << 10, chunkDelay: 2 * time.Millisecond}

	t.Run("progress", func(t *testing.T) {
		c, cache := testClient(t, p.url)
		p.set(slow)
		pl := progressLog{stop: func(done, total int64) bool { return done < 256<<10 }}
		_, err := c.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindExecutable, pl.fn)
		if !errors.Is(err, ErrCanceled) {
			t.Fatalf("error %v, want ErrCanceled", err)
		}
		last := pl.calls[len(pl.calls)-1]
		if last[0] >= last[1] {
			t.Fatalf("canceled at %v: not in the middle", last)
		}
		checkCacheOnly(t, cache, nil)

		// The next request succeeds.
		p.set(proxyMode{})
		path, err := c.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindExecutable, nil)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(path) != filepath.Join(cache, fx.big.id) {
			t.Errorf("path %s", path)
		}
		checkCacheOnly(t, cache, map[string][]byte{fx.big.id + "/executable": fx.big.raw})
	})

	t.Run("context", func(t *testing.T) {
		c, cache := testClient(t, p.url)
		p.set(slow)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var once sync.Once
		progress := func(done, total int64) bool {
			if done >= 128<<10 {
				once.Do(cancel)
			}
			return true
		}
		_, err := c.FetchDebuginfo(ctx, fx.big.buildID(t), KindDebuginfo, progress)
		if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want ErrCanceled and context.Canceled", err)
		}
		checkCacheOnly(t, cache, nil)

		// Already canceled: nothing is asked.
		before := p.requests.Load()
		if _, err := c.FetchDebuginfo(ctx, fx.small.buildID(t), KindDebuginfo, nil); !errors.Is(err, ErrCanceled) {
			t.Fatalf("error %v, want ErrCanceled", err)
		}
		if p.requests.Load() != before {
			t.Error("a canceled context still sent a request")
		}
	})
}

func TestDebuginfodServerDown(t *testing.T) {
	fx := debuginfodFixture(t)
	port, err := freePort() // nothing listens there once freePort returns
	if err != nil {
		t.Fatal(err)
	}
	down := "http://127.0.0.1:" + strconv.Itoa(port)
	c, cache := testClient(t, down)
	var logged []string
	c.Logf = func(format string, args ...any) { logged = append(logged, format) }
	_, err = c.FetchDebuginfo(context.Background(), fx.small.buildID(t), KindDebuginfo, nil)
	var se *ServerError
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want a *ServerError", err)
	}
	if se.Attempts != 1+DefaultRetries || se.Status != 0 || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %#v (%v): want %d attempts, status 0, connection refused", se, err, 1+DefaultRetries)
	}
	if errors.Is(err, ErrNotFound) {
		t.Error("a server that is down reads as not found")
	}
	if len(logged) != DefaultRetries {
		t.Errorf("%d retries logged, want %d", len(logged), DefaultRetries)
	}
	checkCacheOnly(t, cache, nil)

	// The next server in the path has it.
	c.Elements = append(c.Elements, Element{Type: ElemDebuginfod, Path: fx.url})
	c.Retries = -1
	if _, err := c.FetchDebuginfo(context.Background(), fx.small.buildID(t), KindDebuginfo, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDebuginfodRetries(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	id := fx.small.buildID(t)

	t.Run("503", func(t *testing.T) {
		c, cache := testClient(t, p.url)
		c.Retries = 3
		p.set(proxyMode{status: 503})
		before := p.requests.Load()
		_, err := c.FetchDebuginfo(context.Background(), id, KindDebuginfo, nil)
		var se *ServerError
		if !errors.As(err, &se) || se.Status != 503 || se.Attempts != 4 {
			t.Fatalf("error %v, want status 503 after 4 attempts", err)
		}
		if n := p.requests.Load() - before; n != 4 {
			t.Errorf("server saw %d requests, want 4", n)
		}
		checkCacheOnly(t, cache, nil)
		p.set(proxyMode{})
		if _, err := c.FetchDebuginfo(context.Background(), id, KindDebuginfo, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("403 is not retried", func(t *testing.T) {
		c, _ := testClient(t, p.url)
		p.set(proxyMode{status: 403})
		before := p.requests.Load()
		_, err := c.FetchDebuginfo(context.Background(), id, KindDebuginfo, nil)
		var se *ServerError
		if !errors.As(err, &se) || se.Status != 403 || se.Attempts != 1 {
			t.Fatalf("error %v, want status 403 after 1 attempt", err)
		}
		if n := p.requests.Load() - before; n != 1 {
			t.Errorf("server saw %d requests, want 1", n)
		}
	})

	t.Run("slow server", func(t *testing.T) {
		c, cache := testClient(t, p.url)
		c.Timeout = 150 * time.Millisecond
		c.Retries = 1
		p.set(proxyMode{delay: 2 * time.Second})
		start := time.Now()
		_, err := c.FetchDebuginfo(context.Background(), id, KindDebuginfo, nil)
		var se *ServerError
		if !errors.As(err, &se) || !errors.Is(err, ErrTimeout) || se.Attempts != 2 {
			t.Fatalf("error %v, want ErrTimeout after 2 attempts", err)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("gave up after %v, want about 2 x 150 ms", d)
		}
		checkCacheOnly(t, cache, nil)

		// A body that stalls trips the same timeout.
		p.set(proxyMode{chunk: 1 << 10, chunkDelay: time.Second})
		_, err = c.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindDebuginfo, nil)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("stalled body: error %v, want ErrTimeout", err)
		}
		checkCacheOnly(t, cache, nil)

		p.set(proxyMode{})
		if _, err := c.FetchDebuginfo(context.Background(), id, KindDebuginfo, nil); err != nil {
			t.Fatal(err)
		}
		checkCacheOnly(t, cache, map[string][]byte{fx.small.id + "/debuginfo": fx.small.raw})
	})
}

// TestDebuginfodNeverPoisoned serves bad bytes through the proxy and checks
// that the cache never holds them and that a later request succeeds.
func TestDebuginfodNeverPoisoned(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	good := map[string][]byte{fx.big.id + "/executable": fx.big.raw}
	cases := []struct {
		name     string
		mode     proxyMode
		requests int64 // with Retries = 2
		check    func(t *testing.T, err error)
	}{
		{"cut mid-body", proxyMode{cutAfter: 1 << 20}, 3, func(t *testing.T, err error) {
			var se *ServerError
			if !errors.As(err, &se) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v, want a *ServerError with io.ErrUnexpectedEOF", err)
			}
		}},
		{"short file", proxyMode{shrink: true}, 1, func(t *testing.T, err error) {
			var me *MismatchError
			if !errors.As(err, &me) || me.Got != "" || me.Want != fx.big.id {
				t.Errorf("error %v, want an unidentified *MismatchError", err)
			}
		}},
		{"another file", proxyMode{redirectTo: fx.small.id}, 1, func(t *testing.T, err error) {
			var me *MismatchError
			if !errors.As(err, &me) || me.Got != fx.small.id || me.Want != fx.big.id {
				t.Errorf("error %v, want a *MismatchError from %s to %s", err, fx.big.id, fx.small.id)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, cache := testClient(t, p.url)
			p.set(tc.mode)
			before := p.requests.Load()
			_, err := c.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindExecutable, nil)
			if err == nil {
				t.Fatal("bad file accepted")
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("error %v reads as not found", err)
			}
			tc.check(t, err)
			if n := p.requests.Load() - before; n != tc.requests {
				t.Errorf("server saw %d requests, want %d", n, tc.requests)
			}
			checkCacheOnly(t, cache, nil)

			p.set(proxyMode{})
			path, err := c.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindExecutable, nil)
			if err != nil {
				t.Fatalf("second request: %v", err)
			}
			if path != filepath.Join(cache, fx.big.id, "executable") {
				t.Errorf("path %s", path)
			}
			checkCacheOnly(t, cache, good)
		})
	}

	t.Run("bad file in the cache", func(t *testing.T) {
		c, cache := testClient(t, p.url)
		p.set(proxyMode{})
		bad := filepath.Join(cache, fx.big.id, "executable")
		for _, content := range [][]byte{fx.small.raw, fx.big.raw[:1000], nil} {
			if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(bad, content, 0o644); err != nil {
				t.Fatal(err)
			}
			before := p.requests.Load()
			path, err := c.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindExecutable, nil)
			if err != nil || path != bad {
				t.Fatalf("fetch over a bad cached file: %s, %v", path, err)
			}
			if p.requests.Load() == before {
				t.Error("the bad cached file was taken")
			}
			checkCacheOnly(t, cache, good)
		}
	})
}

func TestDebuginfodNotFound(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	c, cache := testClient(t, p.url)
	c.MissTTL = 1500 * time.Millisecond // long enough for the second fetch on a loaded machine
	unknown := []byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	fetch := func() error {
		_, err := c.FetchDebuginfo(context.Background(), unknown, KindDebuginfo, nil)
		return err
	}
	before := p.requests.Load()
	if err := fetch(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("error %v, want ErrNotFound", err)
	}
	if n := p.requests.Load() - before; n != 1 {
		t.Errorf("a 404 took %d requests, want 1 (not retried)", n)
	}
	if err := fetch(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("error %v, want ErrNotFound", err)
	}
	if n := p.requests.Load() - before; n != 1 {
		t.Errorf("the 404 was not remembered: %d requests", n)
	}
	time.Sleep(1700 * time.Millisecond)
	if err := fetch(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("error %v, want ErrNotFound", err)
	}
	if n := p.requests.Load() - before; n != 2 {
		t.Errorf("the 404 was remembered past MissTTL: %d requests, want 2", n)
	}
	checkCacheOnly(t, cache, nil)
}

// TestDebuginfodShared checks that concurrent requests share one download,
// and that one of them giving up does not stop it for the others.
func TestDebuginfodShared(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	c, cache := testClient(t, p.url)
	p.set(proxyMode{chunk: 64 << 10, chunkDelay: 5 * time.Millisecond})
	const n = 5
	var wg sync.WaitGroup
	paths := make([]string, n)
	errs := make([]error, n)
	logs := make([]progressLog, n)
	logs[0].stop = func(done, total int64) bool { return false } // gives up at once
	before := p.requests.Load()
	for i := range n {
		wg.Go(func() {
			paths[i], errs[i] = c.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindExecutable, logs[i].fn)
		})
	}
	wg.Wait()
	if !errors.Is(errs[0], ErrCanceled) {
		t.Errorf("request 0: %v, want ErrCanceled", errs[0])
	}
	for i := 1; i < n; i++ {
		if errs[i] != nil || paths[i] != filepath.Join(cache, fx.big.id, "executable") {
			t.Errorf("request %d: %s, %v", i, paths[i], errs[i])
		}
		if l := logs[i].calls; len(l) == 0 || l[len(l)-1][0] != int64(len(fx.big.raw)) {
			t.Errorf("request %d: progress %v does not end with the size", i, l)
		}
	}
	// One download, unless request 0 gave up before the others joined
	// and so canceled the first one.
	if got := p.requests.Load() - before; got != 1 && got != 2 {
		t.Errorf("%d requests for %d concurrent fetches", got, n)
	}
	checkCacheOnly(t, cache, map[string][]byte{fx.big.id + "/executable": fx.big.raw})
}

func TestDebuginfodSearchPath(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	down := "http://127.0.0.1:" + strconv.Itoa(port)
	cacheA, cacheB, debugDir := t.TempDir(), t.TempDir(), t.TempDir()

	// A debug-file directory in GDB's .build-id layout.
	bid := filepath.Join(debugDir, ".build-id", fx.splitDebug.id[:2], fx.splitDebug.id[2:]+".debug")
	if err := os.MkdirAll(filepath.Dir(bid), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fx.splitDebug.path, bid); err != nil {
		t.Fatal(err)
	}

	path := debugDir + ";cache*" + cacheA + ";debuginfod*" + down + ";debuginfod*" + p.url + ";cache*" + cacheB + ";debuginfod*" + fx.url
	els, err := ParsePath(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Elements: els, CacheDir: t.TempDir(), Retries: -1}
	ctx := context.Background()

	// From the directory, in place.
	got, err := c.FetchDebuginfo(ctx, fx.splitDebug.buildID(t), KindDebuginfo, nil)
	if err != nil || got != bid {
		t.Fatalf("debuginfo from the .build-id directory: %s, %v", got, err)
	}
	// The dead server fails, the proxy serves it into cache A.
	got, err = c.FetchDebuginfo(ctx, fx.small.buildID(t), KindExecutable, nil)
	if err != nil || got != filepath.Join(cacheA, fx.small.id, "executable") {
		t.Fatalf("executable through the proxy: %s, %v", got, err)
	}
	// The proxy serves a wrong file; the last server's copy goes to cache B.
	p.set(proxyMode{redirectTo: fx.small.id})
	var logged int
	c.Logf = func(string, ...any) { logged++ }
	got, err = c.FetchDebuginfo(ctx, fx.big.buildID(t), KindDebuginfo, nil)
	if err != nil || got != filepath.Join(cacheB, fx.big.id, "debuginfo") {
		t.Fatalf("debuginfo past a wrong server: %s, %v", got, err)
	}
	if logged == 0 {
		t.Error("the wrong file was not logged")
	}
	checkCacheOnly(t, cacheA, map[string][]byte{fx.small.id + "/executable": fx.small.raw})
	checkCacheOnly(t, cacheB, map[string][]byte{fx.big.id + "/debuginfo": fx.big.raw})

	// Found nowhere but some server failed: not ErrNotFound.
	_, err = c.FetchDebuginfo(ctx, []byte{1, 2, 3, 4}, KindDebuginfo, nil)
	var se *ServerError
	if err == nil || errors.Is(err, ErrNotFound) || !errors.As(err, &se) {
		t.Errorf("error %v, want the dead server's *ServerError", err)
	}
}

func TestDebuginfodURLsFromEnv(t *testing.T) {
	fx := debuginfodFixture(t)
	cache := t.TempDir()
	t.Setenv("DEBUGINFOD_URLS", "http://127.0.0.1:1/ "+fx.url+"/")
	t.Setenv("DEBUGINFOD_CACHE_PATH", cache)
	t.Setenv("DEBUGINFOD_TIMEOUT", "5")
	t.Setenv("DEBUGINFOD_RETRY_LIMIT", "0")
	t.Setenv("_NT_SYMBOL_PATH", "")
	t.Setenv("_NT_ALT_SYMBOL_PATH", "")
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	path, err := c.FetchDebuginfo(context.Background(), fx.splitExe.buildID(t), KindDebuginfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(cache, fx.splitExe.id, "debuginfo") {
		t.Errorf("path %s", path)
	}

	// A bare debuginfod element reads the same variable.
	c2 := &Client{Elements: []Element{{Type: ElemDebuginfod}}, CacheDir: cache, Retries: -1}
	path, err = c2.FetchDebuginfo(context.Background(), fx.splitExe.buildID(t), KindExecutable, nil)
	if err != nil || path != filepath.Join(cache, fx.splitExe.id, "executable") {
		t.Fatalf("bare debuginfod element: %s, %v", path, err)
	}
	// The zero Client searches nothing, not even $DEBUGINFOD_URLS.
	var zero Client
	if _, err := zero.FetchDebuginfo(context.Background(), fx.small.buildID(t), KindExecutable, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("zero client: %v, want ErrNotFound", err)
	}
	checkCacheOnly(t, cache, map[string][]byte{
		fx.splitExe.id + "/debuginfo":  fx.splitDebug.raw,
		fx.splitExe.id + "/executable": fx.splitExe.raw,
	})
}

// BenchmarkFetchCached measures a fetch served from the cache: the file
// is opened and its build ID checked on every hit.
func BenchmarkFetchCached(b *testing.B) {
	fx := debuginfodFixture(b)
	c := &Client{Elements: []Element{{Type: ElemDebuginfod, Path: fx.url}}, CacheDir: b.TempDir()}
	id := fx.splitDebug.buildID(b)
	if _, err := c.FetchDebuginfo(context.Background(), id, KindDebuginfo, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.FetchDebuginfo(context.Background(), id, KindDebuginfo, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDebuginfodLimits(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	id := fx.big.buildID(t)

	t.Run("MaxSize", func(t *testing.T) {
		c, cache := testClient(t, p.url)
		c.MaxSize = int64(len(fx.big.raw)) - 1
		p.set(proxyMode{})
		before := p.requests.Load()
		_, err := c.FetchDebuginfo(context.Background(), id, KindExecutable, nil)
		var se *ServerError
		if !errors.As(err, &se) || !errors.Is(err, ErrTooLarge) || se.Attempts != 1 {
			t.Fatalf("error %v, want ErrTooLarge after 1 attempt", err)
		}
		if n := p.requests.Load() - before; n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
		checkCacheOnly(t, cache, nil)
		c.MaxSize = int64(len(fx.big.raw))
		if _, err := c.FetchDebuginfo(context.Background(), id, KindExecutable, nil); err != nil {
			t.Fatalf("file of exactly MaxSize: %v", err)
		}
	})

	t.Run("MaxTime", func(t *testing.T) {
		c, cache := testClient(t, p.url)
		c.MaxTime = 200 * time.Millisecond
		p.set(proxyMode{chunk: 16 << 10, chunkDelay: 5 * time.Millisecond}) // about 1.3 s
		before := p.requests.Load()
		_, err := c.FetchDebuginfo(context.Background(), id, KindExecutable, nil)
		var se *ServerError
		if !errors.As(err, &se) || !errors.Is(err, ErrTimeout) || se.Attempts != 1 {
			t.Fatalf("error %v, want ErrTimeout after 1 attempt", err)
		}
		if n := p.requests.Load() - before; n != 1 {
			t.Errorf("%d requests, want 1 (MaxTime is not retried)", n)
		}
		checkCacheOnly(t, cache, nil)
	})

	t.Run("stale temporary files", func(t *testing.T) {
		c, cache := testClient(t, p.url)
		p.set(proxyMode{})
		dir := filepath.Join(cache, fx.big.id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		old := filepath.Join(dir, ".executable.123.part")
		fresh := filepath.Join(dir, ".executable.456.part")
		for _, p := range []string{old, fresh} {
			if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		past := time.Now().Add(-2 * stalePart)
		if err := os.Chtimes(old, past, past); err != nil {
			t.Fatal(err)
		}
		if _, err := c.FetchDebuginfo(context.Background(), id, KindExecutable, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale temporary file left: %v", err)
		}
		if _, err := os.Stat(fresh); err != nil {
			t.Errorf("another download's temporary file removed: %v", err)
		}
	})
}

// TestElfutilsCache checks that elfutils' debuginfod client and this one
// share a cache: each finds what the other downloaded, without a server.
func TestElfutilsCache(t *testing.T) {
	fx := debuginfodFixture(t)
	find := needCmd(t, "debuginfod-find", debianPackages)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	down := "http://127.0.0.1:" + strconv.Itoa(port)
	elfutils := func(cache, urls, kind, id string) (string, error) {
		cmd := exec.Command(find, kind, id)
		cmd.Env = append(os.Environ(), "DEBUGINFOD_CACHE_PATH="+cache, "DEBUGINFOD_URLS="+urls, "DEBUGINFOD_PROGRESS=", "DEBUGINFOD_VERBOSE=")
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}

	// Ours downloads, elfutils finds it with only a dead server to ask.
	c, cache := testClient(t, fx.url)
	ours, err := c.FetchDebuginfo(context.Background(), fx.splitExe.buildID(t), KindDebuginfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := elfutils(cache, down, "debuginfo", fx.splitExe.id)
	if err != nil || got != ours {
		t.Errorf("debuginfod-find in our cache: %q, %v; want %s", got, err, ours)
	}

	// elfutils downloads, ours finds it with only a dead server to ask.
	cache2 := t.TempDir()
	theirs, err := elfutils(cache2, fx.url, "executable", fx.big.id)
	if err != nil {
		t.Fatalf("debuginfod-find executable %s: %v", fx.big.id, err)
	}
	c2 := &Client{Elements: []Element{{Type: ElemDebuginfod, Path: down}}, CacheDir: cache2, Retries: -1}
	got, err = c2.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindExecutable, nil)
	if err != nil || got != theirs {
		t.Errorf("our fetch in elfutils' cache: %q, %v; want %s", got, err, theirs)
	}
}

// TestDebuginfodConcurrent runs many fetches of several files at once,
// some of them canceled at random points, and checks that every fetch
// either succeeds with the right file or reports cancellation, and that
// the cache ends up holding exactly the right files.
func TestDebuginfodConcurrent(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	p.set(proxyMode{chunk: 128 << 10, chunkDelay: time.Millisecond})
	c, cache := testClient(t, p.url)
	type want struct {
		f    elfFile
		kind Kind
		raw  []byte
	}
	files := []want{
		{fx.small, KindDebuginfo, fx.small.raw},
		{fx.splitExe, KindDebuginfo, fx.splitDebug.raw},
		{fx.splitExe, KindExecutable, fx.splitExe.raw},
		{fx.big, KindExecutable, fx.big.raw},
		{fx.big, KindDebuginfo, fx.big.raw},
	}
	const workers = 12
	var wg sync.WaitGroup
	errs := make(chan error, workers*len(files))
	for w := range workers {
		wg.Go(func() {
			for i := range files {
				fw := files[(i+w)%len(files)]
				ctx, cancel := context.WithCancel(context.Background())
				progress := func(done, total int64) bool {
					if w%3 == 0 && done >= int64(w)<<16 {
						cancel()
					}
					return w%4 != 1 || done < 256<<10
				}
				path, err := c.FetchDebuginfo(ctx, fw.f.buildID(t), fw.kind, progress)
				cancel()
				switch {
				case errors.Is(err, ErrCanceled):
				case err != nil:
					errs <- err
				default:
					b, rerr := os.ReadFile(path)
					if rerr != nil || !bytes.Equal(b, fw.raw) {
						errs <- fmt.Errorf("%s %v: %s holds %d bytes that are not the file (%v)", fw.f.id, fw.kind, path, len(b), rerr)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Whatever was canceled, a last sequential round completes the cache.
	all := map[string][]byte{}
	for _, fw := range files {
		if _, err := c.FetchDebuginfo(context.Background(), fw.f.buildID(t), fw.kind, nil); err != nil {
			t.Fatal(err)
		}
		all[fw.f.id+"/"+fw.kind.String()] = fw.raw
	}
	checkCacheOnly(t, cache, all)
}

// TestDebuginfodProgressUnknownSize serves the file without a
// Content-Length: the total is then debuginfod's X-Debuginfod-Size, or -1
// without it, and the final call still has done == total.
func TestDebuginfodProgressUnknownSize(t *testing.T) {
	fx := debuginfodFixture(t)
	p := newProxy(t, fx.url)
	size := int64(len(fx.big.raw))
	for _, tc := range []struct {
		name  string
		mode  proxyMode
		total int64
	}{
		{"X-Debuginfod-Size", proxyMode{noLength: true}, size},
		{"no size at all", proxyMode{noLength: true, noSize: true}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cache := testClient(t, p.url)
			p.set(tc.mode)
			var pl progressLog
			if _, err := c.FetchDebuginfo(context.Background(), fx.big.buildID(t), KindExecutable, pl.fn); err != nil {
				t.Fatal(err)
			}
			n := len(pl.calls)
			if n < 2 {
				t.Fatalf("progress calls %v", pl.calls)
			}
			for _, call := range pl.calls[:n-1] {
				if call[1] != tc.total {
					t.Fatalf("call %v: total, want %d", call, tc.total)
				}
			}
			if last := pl.calls[n-1]; last != [2]int64{size, size} {
				t.Errorf("last call %v, want done == total == %d", last, size)
			}
			checkCacheOnly(t, cache, map[string][]byte{fx.big.id + "/executable": fx.big.raw})
		})
	}
}

// BenchmarkDownload measures a whole download of the 4 MiB file from the
// local debuginfod into an empty cache: request, copy, identity check,
// fsync and rename.
func BenchmarkDownload(b *testing.B) {
	fx := debuginfodFixture(b)
	id := fx.big.buildID(b)
	b.SetBytes(int64(len(fx.big.raw)))
	for b.Loop() {
		c := &Client{Elements: []Element{{Type: ElemDebuginfod, Path: fx.url}}, CacheDir: b.TempDir()}
		if _, err := c.FetchDebuginfo(context.Background(), id, KindExecutable, nil); err != nil {
			b.Fatal(err)
		}
	}
}
