package symsrv

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParsePath(t *testing.T) {
	const ms = "https://msdl.microsoft.com/download/symbols"
	cases := []struct {
		in   string
		want []Element
	}{
		{"", nil},
		{" ; ;", nil},
		{`c:\symbols`, []Element{{Type: ElemDir, Path: `c:\symbols`}}},
		{"/usr/lib/debug ; /opt/syms", []Element{{Type: ElemDir, Path: "/usr/lib/debug"}, {Type: ElemDir, Path: "/opt/syms"}}},
		{"srv*" + ms, []Element{{Type: ElemSymbolServer, Path: ms}}},
		{"SRV*c:\\cache*" + ms + "/", []Element{{Type: ElemSymbolServer, Path: ms, Downstream: []string{`c:\cache`}}}},
		{"srv**" + ms, []Element{{Type: ElemSymbolServer, Path: ms, Downstream: []string{""}}}},
		{"srv*/a*/b*" + ms, []Element{{Type: ElemSymbolServer, Path: ms, Downstream: []string{"/a", "/b"}}}},
		{`srv*\\server\share`, []Element{{Type: ElemSymbolServer, Path: `\\server\share`}}},
		{"symsrv*SymSrv.DLL*/c*" + ms, []Element{{Type: ElemSymbolServer, Path: ms, Downstream: []string{"/c"}}}},
		{"cache*/c;srv*" + ms, []Element{{Type: ElemCache, Path: "/c"}, {Type: ElemSymbolServer, Path: ms}}},
		{"cache*", []Element{{Type: ElemCache}}},
		{"debuginfod", []Element{{Type: ElemDebuginfod}}},
		{"DebugInfod*https://debuginfod.debian.net/", []Element{{Type: ElemDebuginfod, Path: "https://debuginfod.debian.net"}}},
	}
	for _, tc := range cases {
		got, err := ParsePath(tc.in)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParsePath(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		// String round-trips through ParsePath.
		for _, e := range got {
			again, err := ParsePath(e.String())
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], e) {
				t.Errorf("%+v: String %q parses as %+v, %v", e, e.String(), again, err)
			}
		}
	}

	bad := []string{
		"srv",
		"srv*",
		"srv*/cache*",
		"srv*https://a*" + ms,
		"symsrv*other.dll*" + ms,
		"symsrv*symsrv.dll",
		"cache*/a*/b",
		"debuginfod*",
		"debuginfod*/not/a/url",
		"debuginfod*http://a*http://b",
		"debuginfod*http://",
		"srv*/c*https:///x",
		"srv*http://%zz",
		"frob*x",
		ms,
		"cache",
	}
	for _, in := range bad {
		if got, err := ParsePath("/ok;" + in); err == nil {
			t.Errorf("ParsePath(%q) = %+v, want an error", in, got)
		}
	}
}

func TestFromEnv(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("DEBUGINFOD_CACHE_PATH", "")
	t.Setenv("DEBUGINFOD_URLS", "")
	t.Setenv("DEBUGINFOD_TIMEOUT", "")
	t.Setenv("DEBUGINFOD_RETRY_LIMIT", "")
	t.Setenv("DEBUGINFOD_MAXTIME", "")
	t.Setenv("DEBUGINFOD_MAXSIZE", "")
	t.Setenv("_NT_ALT_SYMBOL_PATH", "")
	t.Setenv("_NT_SYMBOL_PATH", "")

	if d := DefaultCacheDir(); d != filepath.Join(home, ".cache", "debuginfod_client") {
		t.Errorf("default cache %s", d)
	}
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d := DefaultCacheDir(); d != "/xdg/debuginfod_client" {
		t.Errorf("XDG cache %s", d)
	}
	t.Setenv("DEBUGINFOD_CACHE_PATH", "/explicit")
	if d := DefaultCacheDir(); d != "/explicit" {
		t.Errorf("DEBUGINFOD_CACHE_PATH %s", d)
	}

	t.Setenv("_NT_ALT_SYMBOL_PATH", "/alt")
	t.Setenv("_NT_SYMBOL_PATH", "srv*/c*https://s")
	t.Setenv("DEBUGINFOD_URLS", "https://a/ ima:permissive file:///srv/debuginfod\thttps://b/")
	t.Setenv("DEBUGINFOD_TIMEOUT", "7")
	t.Setenv("DEBUGINFOD_RETRY_LIMIT", "5")
	t.Setenv("DEBUGINFOD_MAXTIME", "60")
	t.Setenv("DEBUGINFOD_MAXSIZE", "1000000")
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := []Element{
		{Type: ElemDir, Path: "/alt"},
		{Type: ElemSymbolServer, Path: "https://s", Downstream: []string{"/c"}},
		{Type: ElemDebuginfod},
	}
	if !reflect.DeepEqual(c.Elements, want) {
		t.Errorf("elements %+v, want %+v", c.Elements, want)
	}
	if c.CacheDir != "/explicit" || c.Timeout != 7*time.Second || c.Retries != 5 || c.MaxTime != time.Minute || c.MaxSize != 1000000 {
		t.Errorf("client %+v", c)
	}
	if u := DebuginfodURLs(); !reflect.DeepEqual(u, []string{"https://a", "https://b"}) {
		t.Errorf("DebuginfodURLs %q", u)
	}

	// A bare debuginfod element in the path is not added twice; zero
	// means no timeout and no retries, as for elfutils.
	t.Setenv("_NT_SYMBOL_PATH", "debuginfod;/x")
	t.Setenv("DEBUGINFOD_TIMEOUT", "0")
	t.Setenv("DEBUGINFOD_RETRY_LIMIT", "0")
	c, err = FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Elements) != 3 || c.Timeout >= 0 || c.retries() != 0 || c.timeout() != 0 {
		t.Errorf("client %+v", c)
	}

	for _, v := range []string{"DEBUGINFOD_TIMEOUT", "DEBUGINFOD_RETRY_LIMIT", "DEBUGINFOD_MAXTIME", "DEBUGINFOD_MAXSIZE"} {
		t.Setenv(v, "ten")
		if _, err := FromEnv(); err == nil {
			t.Errorf("%s=ten accepted", v)
		}
		t.Setenv(v, "")
	}
	t.Setenv("_NT_SYMBOL_PATH", "srv*")
	if _, err := FromEnv(); err == nil {
		t.Error("bad _NT_SYMBOL_PATH accepted")
	}
}

// TestIndexes checks the boundaries of the store index rules: the stamp
// padded to 8 upper-case digits, the size in lower case unpadded; the
// GUID's first three fields as little-endian numbers, the age unpadded.
// The indexes of real files are checked against llvm-readobj and
// llvm-pdbutil in TestFetchImage and TestReadPDBInfoLLVM.
func TestIndexes(t *testing.T) {
	for _, tc := range []struct {
		stamp, size uint32
		want        string
	}{
		{0x1234, 0x1000, "000012341000"},
		{0xABCDEF01, 0xabc000, "ABCDEF01abc000"},
		{0, 0, "000000000"},
		{0xffffffff, 0xffffffff, "FFFFFFFFffffffff"},
	} {
		if got := imageID(tc.stamp, tc.size); got != tc.want {
			t.Errorf("imageID(%#x, %#x) = %s, want %s", tc.stamp, tc.size, got, tc.want)
		}
	}
	g := [16]byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}
	for _, tc := range []struct {
		guid [16]byte
		age  uint32
		want string
	}{
		{g, 1, "0403020106050807090A0B0C0D0E0F101"},
		{g, 0x1A, "0403020106050807090A0B0C0D0E0F101A"},
		{[16]byte{}, 0, "000000000000000000000000000000000"},
	} {
		if got := pdbID(tc.guid, tc.age); got != tc.want {
			t.Errorf("pdbID(% x, %d) = %s, want %s", tc.guid, tc.age, got, tc.want)
		}
	}
}

func TestBaseName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"ntdll.pdb", "ntdll.pdb"},
		{`C:\build\x64\Release\app.pdb`, "app.pdb"},
		{"/home/u/lib.so", "lib.so"},
		{`a/b\c.pdb`, "c.pdb"},
		{"with space.pdb", "with space.pdb"},
		{"ünïcode.pdb", "ünïcode.pdb"},
		{"", ""},
		{".", ""},
		{"..", ""},
		{`x\..`, ""},
		{"dir/", ""},
		{"c:app.pdb", ""},
		{"a\x00b", ""},
		{"a\nb", ""},
	}
	for _, tc := range cases {
		got, err := baseName(tc.in)
		if (err == nil) != (tc.want != "") || got != tc.want {
			t.Errorf("baseName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestNoCacheDir(t *testing.T) {
	t.Setenv("DEBUGINFOD_CACHE_PATH", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	if d := DefaultCacheDir(); d != "" {
		t.Skipf("a cache directory without HOME: %s", d)
	}
	c := &Client{Elements: []Element{{Type: ElemDebuginfod, Path: "http://127.0.0.1:1"}}}
	_, err := c.FetchDebuginfo(t.Context(), []byte{1, 2, 3, 4}, KindDebuginfo, nil)
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no cache directory") {
		t.Errorf("error %v, want one about the missing cache directory", err)
	}
}

// FuzzParsePath parses arbitrary search paths: no panic, and every element
// parsed prints as text that parses back to it.
func FuzzParsePath(f *testing.F) {
	f.Add("srv*/c*https://msdl.microsoft.com/download/symbols;cache*/d;debuginfod;debuginfod*http://h/;/usr/lib/debug")
	f.Add("symsrv*symsrv.dll**\\\\server\\share; srv*x")
	f.Fuzz(func(t *testing.T, s string) {
		els, err := ParsePath(s)
		if err != nil {
			return
		}
		for _, e := range els {
			again, err := ParsePath(e.String())
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], e) {
				t.Fatalf("%#v prints as %q, which parses as %#v, %v", e, e.String(), again, err)
			}
		}
	})
}
