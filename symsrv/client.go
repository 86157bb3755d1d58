package symsrv

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fntable/fntable/symfile"
)

// Kind selects which of a build ID's files [Client.FetchDebuginfo] asks
// for: debuginfod's /buildid/HEX/debuginfo or /buildid/HEX/executable.
type Kind uint8

const (
	KindDebuginfo  Kind = iota // the separate debug file (or an unstripped binary)
	KindExecutable             // the executable or shared object itself
)

// String returns "debuginfo" or "executable", the last element of the
// debuginfod URL and the cache file name.
func (k Kind) String() string {
	switch k {
	case KindDebuginfo:
		return "debuginfo"
	case KindExecutable:
		return "executable"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

const (
	// progressStep is how many bytes a download advances between two
	// calls of a progress function.
	progressStep = 64 << 10

	// maxBuildIDLen bounds a build ID: GNU ld writes 20 bytes (sha1) or
	// 16 (md5, uuid), lld 8 (fast) to 20; 64 leaves room for custom ones.
	maxBuildIDLen = 64

	// maxRetryDelay caps the doubling delay between retries.
	maxRetryDelay = 10 * time.Second

	// maxMisses bounds the negative cache; past it, expired entries are
	// dropped, and if none are, the oldest-expiring half is.
	maxMisses = 4096

	// copyBufSize is the read buffer of downloads and copies.
	copyBufSize = 32 << 10

	// stalePart is the age after which a temporary download file is
	// taken to be left behind by a process that died, and removed. A live
	// download writes its file at least every Timeout.
	stalePart = time.Hour
)

// Client finds symbol files along a search path and downloads them from
// symbol servers into a cache. The zero value is ready to use and has an
// empty search path, so it finds nothing; [FromEnv] returns a client set
// up from the environment.
//
// A Client is safe for concurrent use. Concurrent requests for the same
// file share one search and one download. Its fields must not change after
// the first fetch, and a Client must not be copied after it.
//
// # Search order
//
// A fetch first looks for the file without the network, along the whole
// path: in plain directories, in the caches of the server elements, and in
// directory stores read in place. Then it asks the servers in path order.
// Every file found is checked before it is returned: an ELF file must have
// the requested NT_GNU_BUILD_ID, a PE image the TimeDateStamp and
// SizeOfImage, a PDB the GUID and age. A cached file that fails the check
// is removed (but empty files, which elfutils' client leaves as negative
// cache entries, are only passed over); a file in a plain directory that
// fails it is skipped.
//
// # Cache
//
// ELF files are cached in the layout of elfutils' debuginfod client,
// CACHE/BUILDID/debuginfo and CACHE/BUILDID/executable (BUILDID in
// lower-case hex), so that the two share a cache; PE images and PDBs in
// the layout of a Microsoft downstream store, CACHE/NAME/INDEX/NAME, as
// are ELF debug files from symbol stores (under their SSQP key). A
// download goes to a temporary file in the target directory, named
// .NAME.*.part; it is checked, synced and renamed into place, so the final
// path only ever holds a complete, checked file. A download that is
// canceled, cut short or fails the check leaves nothing behind; the
// temporary files of a process that died are removed by the next download
// of the same file once they are an hour old.
//
// Servers that answer 404 for a file are not asked for it again for
// MissTTL; this negative cache lives in the Client's memory only.
//
// # Failures
//
// A 404 or 410 is final for that server: the next one is asked. Server
// errors (5xx, 408, 429) and transport errors (connection refused or
// reset, a body cut short, no data for Timeout) are retried up to Retries
// times, after RetryDelay, doubling up to 10 s. A wrong file, a file over
// MaxSize and a download past MaxTime are not retried on the same server.
type Client struct {
	// Elements is the search path (see [ParsePath]). When it is empty,
	// nothing is searched, not even the environment's servers: a client
	// limited to local directories cannot reach the network by accident.
	Elements []Element

	// CacheDir is where server elements without a cache of their own
	// (cache*DIR, or a srv* downstream store) keep files. "" means
	// [DefaultCacheDir].
	CacheDir string

	// DebuginfodURLs are the servers of a bare "debuginfod" element. nil
	// means $DEBUGINFOD_URLS, read when a fetch starts.
	DebuginfodURLs []string

	// HTTP makes the requests; nil means http.DefaultClient.
	HTTP *http.Client

	// Timeout bounds the wait for data: for the response to start, and
	// then between two reads of the body. 0 means DefaultTimeout (90 s);
	// negative means no timeout. (elfutils' DEBUGINFOD_TIMEOUT instead
	// asks for 100 KiB per Timeout.)
	Timeout time.Duration

	// MaxTime bounds one request, download included, as elfutils'
	// DEBUGINFOD_MAXTIME; 0 means no limit. It is not retried.
	MaxTime time.Duration

	// MaxSize is the largest file downloaded, in bytes, as elfutils'
	// DEBUGINFOD_MAXSIZE; 0 means no limit.
	MaxSize int64

	// Retries is how many times a failed request is repeated. 0 means
	// DefaultRetries (2, as elfutils); negative means none.
	Retries int

	// RetryDelay is the wait before the first retry; it doubles for each
	// further one, up to 10 s. 0 means DefaultRetryDelay (250 ms).
	RetryDelay time.Duration

	// MissTTL is how long a server's 404 for a file is remembered. 0
	// means DefaultMissTTL (600 s, elfutils' cache_miss_s); negative
	// means not at all.
	MissTTL time.Duration

	// Logf, if not nil, receives one line per notable event: a retry, a
	// wrong file, a cached file removed. It is called from the goroutine
	// doing the search, without locks held.
	Logf func(format string, args ...any)

	mu      sync.Mutex
	flights map[string]*flight
	misses  map[string]time.Time // URL → when its 404 expires
}

// FetchDebuginfo returns the path of the ELF file of the given kind with
// build ID buildID, from a plain directory's .build-id tree, a cache, a
// debuginfod server, or (debug files only) a symbol store under the SSQP
// key _.debug/elf-buildid-sym-BUILDID/_.debug (see [Client] for the
// order).
//
// progress, if not nil, is called on the calling goroutine while a file is
// downloaded, with the bytes received and the Content-Length (-1 when the
// server does not say), at most once per 64 KiB, and once more when the
// file is complete, with done == total. A retry or the next server starts
// the count again from 0. Returning false cancels the request with
// [ErrCanceled] (as a nonzero return of elfutils'
// debuginfod_set_progressfn callback does); the return value of the
// final call is ignored. Canceling ctx cancels too. A download shared
// with other requests goes on while any of them still waits for it; when
// the last one gives up, the fetch returns once the download has stopped
// and its temporary file is gone.
// progress is not called when the file is found without a download.
//
// Errors: [ErrNotFound], [ErrCanceled], *[MismatchError] (only wrong files
// were found), *[ServerError]; several failures come joined.
func (c *Client) FetchDebuginfo(ctx context.Context, buildID []byte, kind Kind, progress func(done, total int64) bool) (string, error) {
	if len(buildID) == 0 || len(buildID) > maxBuildIDLen {
		return "", fmt.Errorf("fetch %v: invalid build id length %d", kind, len(buildID))
	}
	if kind != KindDebuginfo && kind != KindExecutable {
		return "", fmt.Errorf("fetch: invalid kind %v", kind)
	}
	id := hex.EncodeToString(buildID)
	want := append([]byte(nil), buildID...)
	q := &request{
		key:  "elf/" + id + "/" + kind.String(),
		what: kind.String() + " for build id " + id,
		elf:  true,
		id:   id,
		name: kind.String(),
		verify: func(path string) error {
			return verifyELF(path, want)
		},
	}
	return c.fetch(ctx, q, progress)
}

// FetchImage returns the path of the PE image name with the given
// TimeDateStamp and SizeOfImage (IMAGE_FILE_HEADER and
// IMAGE_OPTIONAL_HEADER), from a plain directory, a cache or a symbol
// store, where it is NAME/TTTTTTTTs/NAME with TTTTTTTT the TimeDateStamp
// in 8 upper-case hex digits and s the SizeOfImage in lower-case hex.
// name may be a Windows or POSIX path; only its last element is used.
// progress and the errors are as for [Client.FetchDebuginfo].
func (c *Client) FetchImage(ctx context.Context, name string, timeDateStamp, sizeOfImage uint32, progress func(done, total int64) bool) (string, error) {
	base, err := baseName(name)
	if err != nil {
		return "", fmt.Errorf("fetch image: %w", err)
	}
	id := imageID(timeDateStamp, sizeOfImage)
	q := &request{
		key:  "pe/" + base + "/" + id,
		what: "image " + base + " " + id,
		id:   id,
		name: base,
		verify: func(path string) error {
			return verifyPE(path, timeDateStamp, sizeOfImage)
		},
	}
	return c.fetch(ctx, q, progress)
}

// FetchPDB returns the path of the PDB that cv (a PE image's RSDS record)
// names, from a plain directory, a cache or a symbol store, where it is
// NAME/GGGG...GAGE/NAME: NAME is the last element of cv.Path, then the
// GUID in 32 upper-case hex digits (Data1, Data2 and Data3 as numbers,
// then Data4's bytes) and the age in upper-case hex. The file found must
// be a PDB 7.0 with that GUID and age (see [PDBInfo.MatchAge]).
// progress and the errors are as for [Client.FetchDebuginfo].
func (c *Client) FetchPDB(ctx context.Context, cv symfile.CodeView, progress func(done, total int64) bool) (string, error) {
	base, err := baseName(cv.Path)
	if err != nil {
		return "", fmt.Errorf("fetch pdb: %w", err)
	}
	id := pdbID(cv.GUID, cv.Age)
	q := &request{
		key:  "pdb/" + base + "/" + id,
		what: "pdb " + base + " " + id,
		id:   id,
		name: base,
		verify: func(path string) error {
			return verifyPDB(path, &cv)
		},
	}
	return c.fetch(ctx, q, progress)
}

// request is one file to find.
type request struct {
	key    string // flight key: the kind of file and its identity
	what   string // for messages
	elf    bool   // an ELF file by build ID; else a PE image or PDB by name and index
	id     string // ELF: lower-case hex build ID; PE/PDB: the store index
	name   string // ELF: "debuginfo" or "executable"; PE/PDB: the file name
	verify func(path string) error
}

// debuginfodRel is an ELF file's path in a debuginfod cache,
// slash-separated: BUILDID/debuginfo or BUILDID/executable.
func (q *request) debuginfodRel() string {
	return q.id + "/" + q.name
}

// debuginfodURL is an ELF file's URL on the debuginfod server base.
func (q *request) debuginfodURL(base string) string {
	return base + "/buildid/" + q.id + "/" + q.name
}

// ssqpBuildIDLen is the length to which the SSQP key of an ELF debug file
// pads a shorter build ID with zero bytes.
const ssqpBuildIDLen = 20

// storeRel is the file's path in a symbol store, slash-separated, or ""
// when stores do not index it. PE images and PDBs: NAME/INDEX/NAME. ELF
// debug files: the SSQP key _.debug/elf-buildid-sym-BUILDID/_.debug, with
// the build ID padded to 20 bytes (dotnet/symstore, "SSQP Key
// Conventions"), as Microsoft's server has .NET's Linux symbols. ELF
// executables are indexed by file name, which a build ID request lacks.
func (q *request) storeRel() string {
	if !q.elf {
		return q.name + "/" + q.id + "/" + q.name
	}
	if q.name != KindDebuginfo.String() {
		return ""
	}
	id := q.id
	for len(id) < 2*ssqpBuildIDLen {
		id += "00"
	}
	return "_.debug/elf-buildid-sym-" + id + "/_.debug"
}

// storeURL is the file's URL on the symbol server base.
func (q *request) storeURL(base string) string {
	parts := strings.Split(q.storeRel(), "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return base + "/" + strings.Join(parts, "/")
}

// inDir lists where a plain directory may hold the file. ELF: the
// .build-id tree of a debug-file directory (GDB's layout, as under
// /usr/lib/debug): .build-id/xx/rest.debug for debuginfo and
// .build-id/xx/rest for the executable. PE/PDB: DIR/NAME and the store
// layout DIR/NAME/INDEX/NAME.
func (q *request) inDir(dir string) []string {
	if q.elf {
		if len(q.id) < 3 {
			return nil
		}
		p := filepath.Join(dir, ".build-id", q.id[:2], q.id[2:])
		if q.name == KindDebuginfo.String() {
			p += ".debug"
		}
		return []string{p}
	}
	return []string{filepath.Join(dir, q.name), filepath.Join(dir, filepath.FromSlash(q.storeRel()))}
}

// local is a place to look without the network.
type local struct {
	path   string
	cached bool // in a cache or downstream store: removed when wrong
}

// remote is a place to get the file from, into the cache.
type remote struct {
	url    string   // an http(s) URL, or
	file   string   // a file in a directory store
	dest   string   // where the file goes
	copies []string // further downstream stores to fill
}

// plan lists where to look for q, in order.
func (c *Client) plan(q *request) ([]local, []remote) {
	var locals []local
	var remotes []remote
	seen := map[string]bool{}
	addLocal := func(p string, cached bool) {
		if p != "" && !seen[p] {
			seen[p] = true
			locals = append(locals, local{p, cached})
		}
	}
	in := func(dir, rel string) string {
		if dir == "" {
			return ""
		}
		return filepath.Join(dir, filepath.FromSlash(rel))
	}
	cur := c.cacheDir("")
	for _, e := range c.Elements {
		switch e.Type {
		case ElemCache:
			cur = c.cacheDir(e.Path)
		case ElemDir:
			if e.Path == "" {
				continue
			}
			for _, p := range q.inDir(e.Path) {
				addLocal(p, false)
			}
		case ElemDebuginfod:
			if !q.elf {
				continue
			}
			dest := in(cur, q.debuginfodRel())
			addLocal(dest, true)
			urls := []string{e.Path}
			if e.Path == "" {
				urls = c.DebuginfodURLs
				if urls == nil {
					urls = DebuginfodURLs()
				}
			}
			for _, u := range urls {
				if u = strings.TrimRight(u, "/"); u != "" {
					remotes = append(remotes, remote{url: q.debuginfodURL(u), dest: dest})
				}
			}
		case ElemSymbolServer:
			rel := q.storeRel()
			if rel == "" {
				continue
			}
			var stores []string
			for _, d := range e.Downstream {
				if d == "" {
					d = cur
				}
				if d != "" {
					stores = append(stores, in(d, rel))
				}
			}
			up := isURL(e.Path)
			if len(stores) == 0 && up {
				stores = []string{in(cur, rel)} // "" when there is no cache at all
			}
			for _, s := range stores {
				addLocal(s, true)
			}
			switch {
			case len(stores) == 0 && !up:
				addLocal(in(e.Path, rel), false) // a directory store read in place
			case len(stores) > 0 && up:
				remotes = append(remotes, remote{url: q.storeURL(e.Path), dest: stores[0], copies: stores[1:]})
			case len(stores) > 0:
				remotes = append(remotes, remote{file: in(e.Path, rel), dest: stores[0], copies: stores[1:]})
			}
		}
	}
	return locals, remotes
}

// cacheDir resolves a cache directory: dir, else CacheDir, else the default.
func (c *Client) cacheDir(dir string) string {
	if dir != "" {
		return dir
	}
	if c.CacheDir != "" {
		return c.CacheDir
	}
	return DefaultCacheDir()
}

func (c *Client) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// flight is one search shared by the requests for the same file.
type flight struct {
	ctx    context.Context // canceled when the last waiter gives up
	cancel context.CancelFunc
	done   chan struct{} // closed when path, err and size are set
	path   string
	err    error
	size   int64 // bytes downloaded when the file came from a download; -1 otherwise

	waiters int // guarded by Client.mu

	pmu      sync.Mutex
	subs     map[chan struct{}]struct{}
	cur      int64 // bytes received by the current attempt
	total    int64 // its expected size, or -1
	notified int64 // cur when the subscribers were last notified
}

// fetch joins or starts the flight for q and waits for it.
func (c *Client) fetch(ctx context.Context, q *request, progress func(done, total int64) bool) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", canceled(q, err)
	}
	c.mu.Lock()
	if c.flights == nil {
		c.flights = make(map[string]*flight)
	}
	f := c.flights[q.key]
	if f == nil {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{ctx: fctx, cancel: cancel, done: make(chan struct{}), size: -1, total: -1, subs: map[chan struct{}]struct{}{}}
		c.flights[q.key] = f
		go c.run(f, q)
	}
	f.waiters++
	c.mu.Unlock()

	var sub chan struct{}
	if progress != nil {
		sub = make(chan struct{}, 1)
		f.pmu.Lock()
		f.subs[sub] = struct{}{}
		f.pmu.Unlock()
	}
	lastDone, lastTotal := int64(-1), int64(-2)
	for {
		select {
		case <-f.done:
			if f.err == nil && progress != nil && f.size >= 0 {
				progress(f.size, f.size)
			}
			return f.path, f.err
		case <-ctx.Done():
			c.leave(q, f, sub)
			return "", canceled(q, ctx.Err())
		case <-sub:
			f.pmu.Lock()
			d, t := f.notified, f.total
			f.pmu.Unlock()
			if d == lastDone && t == lastTotal {
				continue
			}
			lastDone, lastTotal = d, t
			if !progress(d, t) {
				c.leave(q, f, sub)
				return "", canceled(q, errors.New("progress function returned false"))
			}
		}
	}
}

// leave withdraws a waiter that gives up. The last one to leave cancels
// the search and waits for it to clean up, so that a canceled download
// has left nothing behind when the fetch returns.
func (c *Client) leave(q *request, f *flight, sub chan struct{}) {
	if sub != nil {
		f.pmu.Lock()
		delete(f.subs, sub)
		f.pmu.Unlock()
	}
	c.mu.Lock()
	f.waiters--
	last := f.waiters == 0
	if last && c.flights[q.key] == f {
		delete(c.flights, q.key)
	}
	c.mu.Unlock()
	if last {
		f.cancel()
		<-f.done
	}
}

func canceled(q *request, cause error) error {
	return fmt.Errorf("fetch %s: %w: %w", q.what, ErrCanceled, cause)
}

// reset starts a new attempt of total bytes (-1 when unknown).
func (f *flight) reset(total int64) {
	f.pmu.Lock()
	f.cur, f.total, f.notified = 0, total, 0
	f.pmu.Unlock()
}

// advance records n more bytes and notifies the subscribers every
// progressStep bytes.
func (f *flight) advance(n int64) {
	f.pmu.Lock()
	f.cur += n
	if f.cur-f.notified >= progressStep {
		f.notified = f.cur
		for s := range f.subs {
			select {
			case s <- struct{}{}:
			default:
			}
		}
	}
	f.pmu.Unlock()
}

// run does the search for a flight and publishes its result.
func (c *Client) run(f *flight, q *request) {
	path, size, err := c.search(f, q)
	c.mu.Lock()
	if c.flights[q.key] == f {
		delete(c.flights, q.key)
	}
	c.mu.Unlock()
	f.path, f.size, f.err = path, size, err
	f.cancel()
	close(f.done)
}

// errNotHere is a place that does not have the file.
var errNotHere = errors.New("not here")

// search looks for q's file: first without the network, then on the
// servers. size is the number of bytes downloaded, or -1.
func (c *Client) search(f *flight, q *request) (path string, size int64, err error) {
	locals, remotes := c.plan(q)
	for _, l := range locals {
		if err := f.ctx.Err(); err != nil {
			return "", -1, canceled(q, err)
		}
		if c.checkLocal(q, l) {
			return l.path, -1, nil
		}
	}
	var errs []error
	for _, r := range remotes {
		if err := f.ctx.Err(); err != nil {
			return "", -1, canceled(q, err)
		}
		var n int64
		var err error
		if r.dest == "" {
			errs = append(errs, fmt.Errorf("fetch %s: no cache directory to download into (set CacheDir, DEBUGINFOD_CACHE_PATH or HOME)", r.url))
			continue
		}
		if r.url != "" {
			n, err = c.download(f, q, r)
		} else {
			n, err = c.copyStore(f, q, r)
		}
		if err == nil {
			for _, d := range r.copies {
				if _, cerr := c.install(f.ctx, q, d, r.dest, nil); cerr != nil {
					c.logf("symsrv: copy %s to %s: %v", r.dest, d, cerr)
				}
			}
			return r.dest, n, nil
		}
		if errors.Is(err, ErrCanceled) {
			return "", -1, err
		}
		if !errors.Is(err, errNotHere) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return "", -1, fmt.Errorf("fetch %s: %w", q.what, ErrNotFound)
	}
	return "", -1, fmt.Errorf("fetch %s: %w", q.what, errors.Join(errs...))
}

// checkLocal reports whether l holds the right file. A wrong file in a
// cache is removed, unless it was replaced meanwhile.
func (c *Client) checkLocal(q *request, l local) bool {
	fi, err := os.Stat(l.path)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if fi.Size() == 0 {
		// No symbol file is empty; elfutils' client leaves empty files as
		// its negative cache entries, which are its own to expire.
		return false
	}
	err = q.verify(l.path)
	if err == nil {
		return true
	}
	if !l.cached {
		c.logf("symsrv: skip %s: %v", l.path, err)
		return false
	}
	c.logf("symsrv: remove bad cached file %s: %v", l.path, err)
	if now, serr := os.Stat(l.path); serr == nil && os.SameFile(fi, now) {
		os.Remove(l.path)
	}
	return false
}

// copyStore copies the file from a directory store into the cache.
func (c *Client) copyStore(f *flight, q *request, r remote) (int64, error) {
	fi, err := os.Stat(r.file)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, errNotHere
	}
	return c.install(f.ctx, q, r.dest, r.file, f)
}

// retries and friends resolve the zero values of the Client's fields.
func (c *Client) retries() int {
	switch {
	case c.Retries < 0:
		return 0
	case c.Retries == 0:
		return DefaultRetries
	}
	return c.Retries
}

// Untimed returns a client with c's configuration but no time limits
// (Timeout negative, MaxTime 0), for SYMOPT_DISABLE_SYMSRV_TIMEOUT. The
// two clients do not share their requests in flight nor their memory of
// missing files.
func (c *Client) Untimed() *Client {
	return &Client{
		Elements: c.Elements, CacheDir: c.CacheDir, DebuginfodURLs: c.DebuginfodURLs, HTTP: c.HTTP,
		Timeout: -1, MaxSize: c.MaxSize, Retries: c.Retries, RetryDelay: c.RetryDelay,
		MissTTL: c.MissTTL, Logf: c.Logf,
	}
}

func (c *Client) timeout() time.Duration {
	switch {
	case c.Timeout < 0:
		return 0
	case c.Timeout == 0:
		return DefaultTimeout
	}
	return c.Timeout
}

func (c *Client) retryDelay(attempt int) time.Duration {
	d := c.RetryDelay
	if d <= 0 {
		d = DefaultRetryDelay
	}
	for range attempt {
		d *= 2
		if d >= maxRetryDelay {
			return maxRetryDelay
		}
	}
	return d
}

func (c *Client) missTTL() time.Duration {
	switch {
	case c.MissTTL < 0:
		return 0
	case c.MissTTL == 0:
		return DefaultMissTTL
	}
	return c.MissTTL
}

// missed reports whether u answered 404 within MissTTL.
func (c *Client) missed(u string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.misses[u]
	if ok && time.Now().After(exp) {
		delete(c.misses, u)
		ok = false
	}
	return ok
}

// miss remembers that u answered 404.
func (c *Client) miss(u string) {
	ttl := c.missTTL()
	if ttl == 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.misses == nil {
		c.misses = make(map[string]time.Time)
	}
	if len(c.misses) >= maxMisses {
		for k, exp := range c.misses {
			if now.After(exp) {
				delete(c.misses, k)
			}
		}
		if len(c.misses) >= maxMisses {
			// All still valid: forget an arbitrary half.
			n := 0
			for k := range c.misses {
				if n++; n > maxMisses/2 {
					break
				}
				delete(c.misses, k)
			}
		}
	}
	c.misses[u] = now.Add(ttl)
}

// download gets r.url into r.dest, retrying as the Client says.
func (c *Client) download(f *flight, q *request, r remote) (int64, error) {
	if c.missed(r.url) {
		return 0, errNotHere
	}
	retries := c.retries()
	for attempt := 0; ; attempt++ {
		n, err := c.attempt(f, q, r)
		var se *ServerError
		if !errors.As(err, &se) {
			return n, err
		}
		se.Attempts = attempt + 1
		if !se.retryable() || attempt >= retries {
			return 0, se
		}
		d := c.retryDelay(attempt)
		c.logf("symsrv: %v; retrying in %v", se, d)
		t := time.NewTimer(d)
		select {
		case <-f.ctx.Done():
			t.Stop()
			return 0, canceled(q, f.ctx.Err())
		case <-t.C:
		}
	}
}

// errMaxTime is the cause of a request that ran past MaxTime.
var errMaxTime = fmt.Errorf("%w: the download took longer than the time limit", ErrTimeout)

// attempt makes one request for r.url.
func (c *Client) attempt(f *flight, q *request, r remote) (int64, error) {
	ctx, cancel := context.WithCancelCause(f.ctx)
	defer cancel(nil)
	if c.MaxTime > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, c.MaxTime, errMaxTime)
		defer stop()
	}
	// The watchdog cancels the request when no data came for Timeout.
	var watchdog *time.Timer
	if to := c.timeout(); to > 0 {
		watchdog = time.AfterFunc(to, func() { cancel(ErrTimeout) })
		defer watchdog.Stop()
	}
	fail := func(err error) (int64, error) {
		if f.ctx.Err() != nil {
			return 0, canceled(q, f.ctx.Err())
		}
		if cause := context.Cause(ctx); cause == ErrTimeout || cause == errMaxTime {
			return 0, &ServerError{URL: r.url, Err: cause}
		}
		return 0, &ServerError{URL: r.url, Err: err}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return 0, &ServerError{URL: r.url, Err: err}
	}
	req.Header.Set("User-Agent", "fntable-symsrv/1")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		c.miss(r.url)
		return 0, errNotHere
	default:
		return 0, &ServerError{URL: r.url, Status: resp.StatusCode}
	}
	total := resp.ContentLength
	if total < 0 {
		// debuginfod says the size of a file it decompresses on the fly.
		if n, err := strconv.ParseInt(resp.Header.Get("X-Debuginfod-Size"), 10, 64); err == nil && n >= 0 {
			total = n
		}
	}
	if c.MaxSize > 0 && total > c.MaxSize {
		return 0, &ServerError{URL: r.url, Err: ErrTooLarge}
	}
	body := &watchedReader{r: resp.Body, timer: watchdog, timeout: c.timeout()}
	// net/http reports a body shorter than its Content-Length as
	// io.ErrUnexpectedEOF, so total need not be exact.
	n, err := c.installFrom(ctx, q, r.dest, r.url, body, total, false, f)
	if err != nil {
		var re *readError
		if errors.As(err, &re) {
			return fail(re.err)
		}
		if errors.Is(err, ErrCanceled) && f.ctx.Err() == nil {
			// ctx, not the flight, was canceled: the watchdog or MaxTime.
			return fail(err)
		}
		return 0, err
	}
	return n, nil
}

// watchedReader resets the watchdog whenever data arrives.
type watchedReader struct {
	r       io.Reader
	timer   *time.Timer
	timeout time.Duration
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if w.timer != nil {
		if err != nil {
			// The body is complete (or failed): checking and installing
			// the file is not waiting for the server.
			w.timer.Stop()
		} else if n > 0 {
			w.timer.Reset(w.timeout)
		}
	}
	return n, err
}

// readError is a failure to read the source of a download or copy, as
// opposed to a failure to write the cache.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// install copies the file src into dest through a checked temporary
// file. f, if not nil, receives the progress.
func (c *Client) install(ctx context.Context, q *request, dest, src string, f *flight) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	total := int64(-1)
	if fi, err := in.Stat(); err == nil {
		total = fi.Size()
	}
	n, err := c.installFrom(ctx, q, dest, src, in, total, true, f)
	var re *readError
	if errors.As(err, &re) {
		err = fmt.Errorf("read %s: %w", src, re.err)
	}
	return n, err
}

// installFrom writes src into a temporary file beside dest, checks that
// it is the file q asks for, syncs it and renames it to dest. On any
// failure the temporary file is removed. total is the expected size, or
// -1, for progress; when exact is set, a different size is a read error.
// Read errors come as *readError.
func (c *Client) installFrom(ctx context.Context, q *request, dest, source string, src io.Reader, total int64, exact bool, f *flight) (int64, error) {
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("create cache directory: %w", err)
	}
	removeStale(dir, filepath.Base(dest))
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".*.part")
	if err != nil {
		return 0, fmt.Errorf("create cache file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if f != nil {
		f.reset(total)
	}
	buf := make([]byte, copyBufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return 0, canceled(q, err)
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			if c.MaxSize > 0 && n+int64(m) > c.MaxSize {
				return 0, &ServerError{URL: source, Err: ErrTooLarge}
			}
			if _, werr := tmp.Write(buf[:m]); werr != nil {
				return 0, fmt.Errorf("write cache file: %w", werr)
			}
			n += int64(m)
			if f != nil {
				f.advance(int64(m))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return 0, canceled(q, ctx.Err())
			}
			return 0, &readError{rerr}
		}
	}
	if exact && total >= 0 && n != total {
		return 0, &readError{fmt.Errorf("got %d of %d bytes: %w", n, total, io.ErrUnexpectedEOF)}
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("sync cache file: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return 0, fmt.Errorf("chmod cache file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("close cache file: %w", err)
	}
	if err := q.verify(tmp.Name()); err != nil {
		var me *MismatchError
		if errors.As(err, &me) {
			me.Source = source
			c.logf("symsrv: %v", me)
		}
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, canceled(q, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return 0, fmt.Errorf("install cache file: %w", err)
	}
	done = true
	syncDir(dir)
	return n, nil
}

// removeStale removes the temporary files for name in dir that nobody
// has written for stalePart. The directory holds the few files of one
// build ID or one index, so reading it is cheap.
func removeStale(dir, name string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, "."+name+".") || !strings.HasSuffix(n, ".part") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > stalePart {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// syncDir makes a rename in dir durable; failures only lose durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
