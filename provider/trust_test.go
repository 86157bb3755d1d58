package provider

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseTrustList(t *testing.T) {
	for _, c := range []struct {
		name     string
		in       string
		want     []Entry
		warnings []string
	}{
		{"empty", "", nil, nil},
		{"comments and blanks", "# a comment\n\n   \n\t# indented comment\n", nil, nil},
		{"paths", "/usr/lib/jit/provider.so\n  /opt/x y/p.so  \n", []Entry{
			{"/usr/lib/jit/provider.so", "L:1"}, {"/opt/x y/p.so", "L:2"}}, nil},
		{"relative ignored", "lib.so\n/ok.so\n./a.so\n", []Entry{{"/ok.so", "L:2"}},
			[]string{`L:1: not an absolute path, ignored: "lib.so"`, `L:3: not an absolute path, ignored: "./a.so"`}},
		{"no final newline", "/a.so", []Entry{{"/a.so", "L:1"}}, nil},
		{"crlf", "/a.so\r\n", []Entry{{"/a.so", "L:1"}}, nil},
		{"hash inside path", "/a#b.so\n", []Entry{{"/a#b.so", "L:1"}}, nil},
		{"nul", "/a\x00.so\n", nil, []string{`L:1: path contains a NUL byte: "/a\x00.so"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, warnings, err := ParseTrustList(strings.NewReader(c.in), "L")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("entries = %q, want %q", got, c.want)
			}
			var ws []string
			for _, w := range warnings {
				var le *LineError
				if !errors.As(w, &le) {
					t.Errorf("warning %v is not a *LineError", w)
				}
				ws = append(ws, w.Error())
			}
			if !reflect.DeepEqual(ws, c.warnings) {
				t.Errorf("warnings = %q, want %q", ws, c.warnings)
			}
		})
	}
}

func TestParseTrustListTooLong(t *testing.T) {
	_, _, err := ParseTrustList(strings.NewReader(strings.Repeat("#", MaxListSize+1)), "L")
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("err = %v, want a too-long error", err)
	}
	if _, _, err := ParseTrustList(strings.NewReader("/"+strings.Repeat("a", MaxListSize-1)), "L"); err != nil {
		t.Errorf("a list of MaxListSize bytes: %v", err)
	}
}

func FuzzParseTrustList(f *testing.F) {
	for _, s := range []string{
		"",
		"/usr/lib/provider.so\n",
		"# comment\n/a.so\n\nrelative.so\n",
		"/a\x00b\n\r\n\t/b.so\t\n",
		"\xff\xfe/\n",
		strings.Repeat("/x", 1000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, warnings, err := ParseTrustList(strings.NewReader(string(b)), "fuzz")
		if err != nil {
			if entries != nil || warnings != nil {
				t.Errorf("error %v with results", err)
			}
			return
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Path, "/") || strings.ContainsRune(e.Path, 0) || e.Path != strings.TrimSpace(e.Path) {
				t.Errorf("bad entry %q", e.Path)
			}
			if !strings.HasPrefix(e.Source, "fuzz:") {
				t.Errorf("bad source %q", e.Source)
			}
		}
		for _, w := range warnings {
			_ = w.Error()
		}
	})
}
