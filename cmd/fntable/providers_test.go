//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
)

// TestProvidersCommand checks "fntable providers": the list with its
// sources and ignored lines, and --check of a listed library, a symlink
// to it, an unlisted one and a relative path, in text and JSON.
func TestProvidersCommand(t *testing.T) {
	cc := testenv.Tool(t, "cc")
	dir := testenv.TrustedDir(t)
	lib := filepath.Join(dir, "libp.so")
	other := filepath.Join(dir, "libother.so")
	src := filepath.Join(dir, "p.c")
	if err := os.WriteFile(src, []byte("int OutOfProcessFunctionTableCallback(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{lib, other} {
		if b, err := exec.Command(cc, "-shared", "-fPIC", "-o", out, src).CombinedOutput(); err != nil {
			t.Fatalf("cc: %v\n%s", err, b)
		}
	}
	link := filepath.Join(dir, "link.so")
	if err := os.Symlink(lib, link); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "list")
	if err := os.WriteFile(list, []byte("# providers\n"+lib+"\nrelative/lib.so\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run1 := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		status := run(append([]string{"providers", "--trust-list", list}, args...), &stdout, &stderr)
		return status, stdout.String(), stderr.String()
	}

	status, out, _ := run1()
	if status != 0 || !strings.Contains(out, lib+"  ("+list+":2)") || !strings.Contains(out, "ignored: "+list+":3") {
		t.Errorf("list: status %d\n%s", status, out)
	}
	for _, c := range []struct {
		path, extra string
		status      int
		want        string
	}{
		{lib, "", 0, "would be loaded: listed in " + list + ":2"},
		{link, "", 0, "would be loaded: resolves to " + lib},
		{other, "", 1, "would not be loaded"},
		{other, other, 0, "would be loaded: listed in --trust-provider"},
		{"relative/lib.so", "", 1, "would not be loaded: not an absolute path"},
	} {
		args := []string{"--check", c.path}
		if c.extra != "" {
			args = append(args, "--trust-provider", c.extra)
		}
		status, out, stderr := run1(args...)
		if status != c.status || !strings.Contains(out, c.path+" "+c.want) {
			t.Errorf("--check %s (trusting also %q): status %d, want %d; output lacks %q:\n%s%s", c.path, c.extra, status, c.status, c.want, out, stderr)
		}
	}

	status, out, _ = run1("--json", "--check", other)
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil || status != 1 {
		t.Fatalf("--json: status %d, %v:\n%s", status, err, out)
	}
	if got := slices.Sorted(maps.Keys(doc)); !slices.Equal(got, []string{"check", "entries", "file", "warnings"}) {
		t.Errorf("JSON keys %v", got)
	}
	check, _ := doc["check"].(map[string]any)
	if check["trusted"] != false || check["real_path"] != other || !strings.Contains(check["reason"].(string), "not on the trust list") {
		t.Errorf("JSON check %v", check)
	}
}
