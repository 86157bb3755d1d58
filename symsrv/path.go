package symsrv

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ElementType says what a search path [Element] is.
type ElementType uint8

const (
	// ElemDir is a plain directory, searched for the file by name (PE and PDB)
	// or in the .build-id layout (ELF).
	ElemDir ElementType = iota + 1
	// ElemSymbolServer is a Microsoft symbol store chain: srv*[DOWNSTREAM*]...UPSTREAM.
	ElemSymbolServer
	// ElemDebuginfod is a debuginfod server: debuginfod*URL, or debuginfod
	// alone for the servers in $DEBUGINFOD_URLS.
	ElemDebuginfod
	// ElemCache is cache*DIR: the cache for the server elements after it.
	ElemCache
)

// String returns the element type's keyword: "dir", "srv", "debuginfod" or
// "cache".
func (t ElementType) String() string {
	switch t {
	case ElemDir:
		return "dir"
	case ElemSymbolServer:
		return "srv"
	case ElemDebuginfod:
		return "debuginfod"
	case ElemCache:
		return "cache"
	}
	return "ElementType(" + strconv.Itoa(int(t)) + ")"
}

// Element is one entry of a symbol search path.
type Element struct {
	Type ElementType

	// Path is, for ElemDir, the directory; for ElemCache, the cache directory
	// ("" means the client's CacheDir); for ElemSymbolServer, the upstream
	// store, an http(s) URL or a directory; for ElemDebuginfod, the server's
	// URL ("" means every server in $DEBUGINFOD_URLS, read when a fetch
	// starts).
	Path string

	// Downstream lists, for ElemSymbolServer only, the downstream stores
	// (local caches) in search order. An empty string is the default
	// cache (srv**URL). When the list is empty, an http(s) upstream is
	// cached in the preceding cache*DIR or the client's CacheDir, and a
	// directory upstream is read in place.
	Downstream []string
}

// String returns the element in search path syntax.
func (e Element) String() string {
	switch e.Type {
	case ElemDir:
		return e.Path
	case ElemCache:
		return "cache*" + e.Path
	case ElemDebuginfod:
		if e.Path == "" {
			return "debuginfod"
		}
		return "debuginfod*" + e.Path
	case ElemSymbolServer:
		parts := append([]string{"srv"}, e.Downstream...)
		return strings.Join(append(parts, e.Path), "*")
	}
	return fmt.Sprintf("%v*%s", e.Type, e.Path)
}

// Remote reports whether the element reaches the network: a debuginfod
// server, or a symbol store whose upstream is an http(s) URL.
func (e Element) Remote() bool {
	return e.Type == ElemDebuginfod || e.Type == ElemSymbolServer && isURL(e.Path)
}

// isURL reports whether store is an http or https URL.
func isURL(store string) bool {
	l := strings.ToLower(store)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// checkURL checks that s is an http or https URL with a host.
func checkURL(s string) error {
	if !isURL(s) {
		return fmt.Errorf("server %q is not an http or https URL", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Host == "" {
		return fmt.Errorf("server URL %q has no host", s)
	}
	return nil
}

// ParsePath parses a symbol search path: elements separated by ';', as in
// _NT_SYMBOL_PATH and SymSetSearchPath. Leading and trailing blanks of an
// element are ignored, and so are empty elements. The element forms are:
//
//	DIR                                   a plain directory
//	srv*UPSTREAM                          a symbol store: an http(s) URL, cached in the
//	                                      current cache; or a directory, read in place
//	srv*DOWNSTREAM*...*UPSTREAM           the same with downstream stores (local caches),
//	                                      searched first and filled from upstream;
//	                                      an empty DOWNSTREAM is the default cache
//	symsrv*symsrv.dll*DOWNSTREAM*...*UPSTREAM  the same as srv*
//	cache*DIR                             the cache for the server elements that follow
//	                                      (cache* alone: the client's CacheDir)
//	debuginfod*URL                        a debuginfod server (an extension)
//	debuginfod                            every server in $DEBUGINFOD_URLS
//
// Keywords are case-insensitive. Microsoft symbol stores serve PE images,
// PDBs and ELF debug files (by their SSQP key); debuginfod servers serve
// ELF files by build ID; plain directories serve all of them.
//
// Differences from dbghelp: symsrv* accepts only symsrv.dll (no other
// symbol server DLL can be loaded here); cache* applies to HTTP servers
// only: files found in plain directories and in srv*DIR stores without a
// downstream store are read in place, not copied into the cache.
func ParsePath(s string) ([]Element, error) {
	var out []Element
	for raw := range strings.SplitSeq(s, ";") {
		el := strings.TrimSpace(raw)
		if el == "" {
			continue
		}
		e, err := parseElement(el)
		if err != nil {
			return nil, fmt.Errorf("parse symbol path element %q: %w", el, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func parseElement(el string) (Element, error) {
	keyword, rest, star := strings.Cut(el, "*")
	if !star {
		if strings.EqualFold(el, "debuginfod") {
			return Element{Type: ElemDebuginfod}, nil
		}
		if strings.EqualFold(el, "srv") || strings.EqualFold(el, "symsrv") || strings.EqualFold(el, "cache") {
			return Element{}, fmt.Errorf("%s needs '*' and a store", strings.ToLower(el))
		}
		if isURL(el) {
			return Element{}, fmt.Errorf("a URL needs srv* or debuginfod*")
		}
		return Element{Type: ElemDir, Path: el}, nil
	}
	switch strings.ToLower(keyword) {
	case "cache":
		if strings.Contains(rest, "*") {
			return Element{}, fmt.Errorf("cache takes one directory")
		}
		return Element{Type: ElemCache, Path: rest}, nil
	case "debuginfod":
		if rest == "" || strings.Contains(rest, "*") {
			return Element{}, fmt.Errorf("debuginfod takes one URL")
		}
		if err := checkURL(rest); err != nil {
			return Element{}, err
		}
		return Element{Type: ElemDebuginfod, Path: trimURL(rest)}, nil
	case "symsrv":
		dll, stores, ok := strings.Cut(rest, "*")
		if !ok {
			return Element{}, fmt.Errorf("symsrv needs a DLL and a store")
		}
		if !strings.EqualFold(dll, "symsrv.dll") {
			return Element{}, fmt.Errorf("symbol server DLL %q is not supported (only symsrv.dll)", dll)
		}
		return parseStores(stores)
	case "srv":
		return parseStores(rest)
	}
	return Element{}, fmt.Errorf("unknown keyword %q", keyword)
}

// trimURL removes a URL's trailing slashes, and the blanks that removing
// them uncovers (ParsePath trims the blanks around an element, so an
// element must not end in one for its String to parse back to it).
func trimURL(u string) string {
	return strings.TrimRightFunc(u, func(r rune) bool { return r == '/' || unicode.IsSpace(r) })
}

func parseStores(s string) (Element, error) {
	stores := strings.Split(s, "*")
	up := stores[len(stores)-1]
	if up == "" {
		return Element{}, fmt.Errorf("no upstream store")
	}
	down := stores[:len(stores)-1]
	for _, d := range down {
		if isURL(d) {
			return Element{}, fmt.Errorf("downstream store %q must be a directory", d)
		}
	}
	if isURL(up) {
		if err := checkURL(up); err != nil {
			return Element{}, err
		}
		up = trimURL(up)
	}
	return Element{Type: ElemSymbolServer, Path: up, Downstream: append([]string(nil), down...)}, nil
}

// Defaults, as elfutils' debuginfod client and dbghelp have them.
const (
	// DefaultTimeout is the default [Client.Timeout] (elfutils: 90 s).
	DefaultTimeout = 90 * time.Second
	// DefaultRetries is the default [Client.Retries]: elfutils retries a
	// failed query twice (DEBUGINFOD_RETRY_LIMIT).
	DefaultRetries = 2
	// DefaultRetryDelay is the default [Client.RetryDelay].
	DefaultRetryDelay = 250 * time.Millisecond
	// DefaultMissTTL is the default [Client.MissTTL]: elfutils remembers
	// a failed query for cache_miss_s = 600 s.
	DefaultMissTTL = 600 * time.Second
)

// DefaultCacheDir returns the cache directory of elfutils' debuginfod
// client, which is the default [Client.CacheDir]: $DEBUGINFOD_CACHE_PATH;
// else $HOME/.debuginfod_client_cache if it exists (the deprecated
// location); else $XDG_CACHE_HOME/debuginfod_client when XDG_CACHE_HOME is
// set; else $HOME/.cache/debuginfod_client. It returns "" when none can be
// formed (no HOME).
func DefaultCacheDir() string {
	if p := os.Getenv("DEBUGINFOD_CACHE_PATH"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	if home != "" {
		old := filepath.Join(home, ".debuginfod_client_cache")
		if fi, err := os.Stat(old); err == nil && fi.IsDir() {
			return old
		}
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "debuginfod_client")
	}
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".cache", "debuginfod_client")
}

// DebuginfodURLs returns the servers in $DEBUGINFOD_URLS: URLs separated
// by blanks, as elfutils reads them, with trailing slashes removed. Only
// http and https URLs are kept: elfutils' other forms (file:// URLs and,
// in later versions, ima: policy words) are dropped.
func DebuginfodURLs() []string {
	var urls []string
	for _, u := range strings.Fields(os.Getenv("DEBUGINFOD_URLS")) {
		if u = strings.TrimRight(u, "/"); isURL(u) {
			urls = append(urls, u)
		}
	}
	return urls
}

// FromEnv returns a client configured from the environment:
//
//   - Elements: $_NT_ALT_SYMBOL_PATH then $_NT_SYMBOL_PATH (dbghelp's
//     order), followed by a bare debuginfod element when $DEBUGINFOD_URLS
//     is set and the paths do not already have one.
//   - CacheDir: [DefaultCacheDir].
//   - Timeout: $DEBUGINFOD_TIMEOUT in seconds; zero or negative means no
//     timeout, as for elfutils.
//   - Retries: $DEBUGINFOD_RETRY_LIMIT.
//   - MaxTime, MaxSize: $DEBUGINFOD_MAXTIME (seconds) and
//     $DEBUGINFOD_MAXSIZE (bytes); 0 means no limit.
//
// A malformed path or number is an error naming the variable.
func FromEnv() (*Client, error) {
	c := &Client{CacheDir: DefaultCacheDir()}
	hasDebuginfod := false
	for _, v := range []string{"_NT_ALT_SYMBOL_PATH", "_NT_SYMBOL_PATH"} {
		els, err := ParsePath(os.Getenv(v))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v, err)
		}
		for _, e := range els {
			if e.Type == ElemDebuginfod && e.Path == "" {
				hasDebuginfod = true
			}
		}
		c.Elements = append(c.Elements, els...)
	}
	if !hasDebuginfod && len(DebuginfodURLs()) > 0 {
		c.Elements = append(c.Elements, Element{Type: ElemDebuginfod})
	}
	num := func(name string, set func(int64)) error {
		s := strings.TrimSpace(os.Getenv(name))
		if s == "" {
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		set(n)
		return nil
	}
	err := num("DEBUGINFOD_TIMEOUT", func(n int64) {
		if n <= 0 {
			c.Timeout = -1
		} else {
			c.Timeout = time.Duration(min(n, 1<<30)) * time.Second
		}
	})
	if err == nil {
		err = num("DEBUGINFOD_RETRY_LIMIT", func(n int64) {
			if n <= 0 {
				c.Retries = -1
			} else {
				c.Retries = int(min(n, 100))
			}
		})
	}
	if err == nil {
		err = num("DEBUGINFOD_MAXTIME", func(n int64) {
			if n > 0 {
				c.MaxTime = time.Duration(min(n, 1<<30)) * time.Second
			}
		})
	}
	if err == nil {
		err = num("DEBUGINFOD_MAXSIZE", func(n int64) {
			if n > 0 {
				c.MaxSize = n
			}
		})
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}
