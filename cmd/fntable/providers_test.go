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
	"github.com/fntable/fntable/provider"
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

// TestProviderFlags: bad provider flags are usage errors; without a list
// file the listing says which file it looked for.
func TestProviderFlags(t *testing.T) {
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"providers", "--trust-provider", "lib.so"}, `"lib.so" is not an absolute path`},
		{[]string{"stack", "--trust-provider", "lib.so", "1"}, `"lib.so" is not an absolute path`},
		{[]string{"stack", "--provider-timeout", "-1s", "1"}, `"-1s" is not a positive duration`},
		{[]string{"tables", "--provider-timeout", "0", "1"}, `"0" is not a positive duration`},
		{[]string{"verify", "--max-problems", "-1", "x.exe"}, "--max-problems must not be negative"},
	} {
		var stdout, stderr bytes.Buffer
		if status := run(c.args, &stdout, &stderr); status != 2 || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("%q: status %d, stderr %q; want 2 and %q", c.args, status, stderr.String(), c.stderr)
		}
	}
	if _, err := os.Stat(provider.DefaultListFile); err == nil {
		t.Skipf("%s exists here", provider.DefaultListFile)
	}
	var stdout, stderr bytes.Buffer
	if status := run([]string{"providers"}, &stdout, &stderr); status != 0 || !strings.Contains(stdout.String(), "trust list: none (no file "+provider.DefaultListFile+")") {
		t.Errorf("providers: status %d, stdout %q", status, stdout.String())
	}
	stdout.Reset()
	if status := run([]string{"providers", "--json"}, &stdout, &stderr); status != 0 || !strings.Contains(stdout.String(), `"file":null`) {
		t.Errorf("providers --json: status %d, stdout %q", status, stdout.String())
	}
}
