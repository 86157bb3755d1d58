//go:build linux

package provider

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheck checks each trust rule on real files.
func TestCheck(t *testing.T) {
	f := newFixture(t)
	lib := f.install(t, f.good, "lib/listed.so")
	unlisted := f.install(t, f.good, "lib/unlisted.so")
	gw := f.install(t, f.good, "lib/groupwritable.so")
	os.Chmod(gw, 0o775)
	ww := f.install(t, f.good, "lib/worldwritable.so")
	os.Chmod(ww, 0o757)
	badDir := f.install(t, f.good, "open/lib.so")
	os.Chmod(filepath.Dir(badDir), 0o777)
	// A symlink to the listed library, from a path not listed.
	link := filepath.Join(f.dir, "link.so")
	must(t, os.Symlink(lib, link))
	// A directory symlink on the way.
	dirLink := filepath.Join(f.dir, "libdir")
	must(t, os.Symlink(filepath.Join(f.dir, "lib"), dirLink))
	// A listed path that is a symlink to a library not listed.
	target := f.install(t, f.good, "lib/target.so")
	listedLink := filepath.Join(f.dir, "listedlink.so")
	must(t, os.Symlink(target, listedLink))
	// A listed directory.
	dir := filepath.Join(f.dir, "lib")
	// A listed file outside any safe directory.
	// (Not t.TempDir: TMPDIR may name a safe directory.)
	tmpDir, err := os.MkdirTemp("/tmp", "fntable-provider-test-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(tmpDir) })
	tmp := filepath.Join(tmpDir, "tmp.so")
	must(t, os.WriteFile(tmp, []byte("x"), 0o755))
	tmpUnsafe := true
	if fi, err := os.Stat("/tmp"); err != nil || fi.Mode().Perm()&0o002 == 0 {
		tmpUnsafe = false // an unusual /tmp: the case below is skipped
	}

	tr := f.trust(t, "# the test list", lib, gw, ww, badDir, listedLink, dir, tmp, filepath.Join(f.dir, "missing.so"))
	listLine := func(n int) string {
		return filepath.Join(f.dir, "known-function-table-dlls") + ":" + string(rune('0'+n))
	}
	for _, c := range []struct {
		name    string
		path    string
		trusted bool
		reason  string // a part of Reason
	}{
		{"listed", lib, true, "listed in " + listLine(2)},
		{"relative", "lib/listed.so", false, "not an absolute path"},
		{"unlisted", unlisted, false, "not on the trust list"},
		{"symlink to listed", link, true, "resolves to " + lib + ", listed in"},
		{"directory symlink to listed", filepath.Join(dirLink, "listed.so"), true, "resolves to " + lib},
		{"dotdot to listed", filepath.Join(f.dir, "lib", "..", "lib", "listed.so"), true, "listed in"},
		{"listed symlink", listedLink, false, "listed as " + listedLink + " (" + listLine(6) + "), which resolves to " + target + ": a listed path must be the library's real path"},
		{"real path of listed symlink", target, false, "a listed path must be the library's real path"},
		{"group writable", gw, false, "is writable by group or others (mode 0775)"},
		{"world writable", ww, false, "is writable by group or others (mode 0757)"},
		{"directory writable", badDir, false, "directory " + filepath.Dir(badDir) + " is writable by group or others (mode 0777)"},
		{"not a regular file", dir, false, "is not a regular file but a directory"},
		{"under /tmp", tmp, false, "directory /tmp is writable by group or others"},
		{"missing", filepath.Join(f.dir, "missing.so"), false, "cannot resolve the path: no such file or directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.path == tmp && !tmpUnsafe {
				t.Skip("/tmp is not world-writable here")
			}
			d := tr.Check(c.path)
			if d.Trusted != c.trusted || !strings.Contains(d.Reason, c.reason) {
				t.Errorf("Check(%s) = trusted %v, %q; want %v, containing %q", c.path, d.Trusted, d.Reason, c.trusted, c.reason)
			}
			if d.Path != c.path {
				t.Errorf("Path = %q", d.Path)
			}
		})
	}
}

// TestCheckOwner checks that a library, or a directory above it, owned by
// a user other than root and the invoking user is refused.
func TestCheckOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to give files to another user")
	}
	f := newFixture(t)
	lib := f.install(t, f.good, "a/lib.so")
	lib2 := f.install(t, f.good, "b/lib.so")
	tr := f.trust(t, lib, lib2)
	must(t, os.Chown(lib, 65534, 65534))
	must(t, os.Chown(filepath.Dir(lib2), 65534, 65534))
	if d := tr.Check(lib); d.Trusted || !strings.Contains(d.Reason, "is owned by uid 65534, neither root nor the invoking user (uid 0)") {
		t.Errorf("library of another user: %+v", d)
	}
	if d := tr.Check(lib2); d.Trusted || !strings.Contains(d.Reason, "directory "+filepath.Dir(lib2)+" is owned by uid 65534") {
		t.Errorf("directory of another user: %+v", d)
	}
}

// TestLoadTrust checks the list file: missing, unsafe, with bad lines,
// and the paths of the command line.
func TestLoadTrust(t *testing.T) {
	f := newFixture(t)
	list := filepath.Join(f.dir, "list")
	must(t, os.WriteFile(list, []byte("# providers\n/opt/a.so\nrelative.so\n\n/opt/b.so\n"), 0o644))

	tr, err := LoadTrust(TrustOptions{File: list, Extra: []string{"/opt/c.so"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{"/opt/a.so", list + ":2"}, {"/opt/b.so", list + ":5"}, {"/opt/c.so", CommandLineSource}}
	if got := tr.Entries(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("Entries = %q, want %q", got, want)
	}
	if w := tr.Warnings(); len(w) != 1 || w[0].Error() != list+`:3: not an absolute path, ignored: "relative.so"` {
		t.Errorf("Warnings = %q", w)
	}
	if tr.File() != list {
		t.Errorf("File = %q", tr.File())
	}

	if _, err := LoadTrust(TrustOptions{File: list, Extra: []string{"c.so"}}); err == nil || err.Error() != `--trust-provider "c.so": not an absolute path` {
		t.Errorf("relative --trust-provider: %v", err)
	}
	if _, err := LoadTrust(TrustOptions{File: filepath.Join(f.dir, "none")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing list named: %v", err)
	}
	must(t, os.Chmod(list, 0o666))
	if _, err := LoadTrust(TrustOptions{File: list}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "the list file is writable by group or others (mode 0666): refusing to use it") {
		t.Errorf("list writable by others: %v", err)
	}
	must(t, os.Chmod(list, 0o644))
	must(t, os.Chmod(f.dir, 0o775))
	if _, err := LoadTrust(TrustOptions{File: list}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "directory "+f.dir+" is writable") {
		t.Errorf("list in a directory writable by others: %v", err)
	}
	must(t, os.Chmod(f.dir, 0o755))
	if os.Getuid() == 0 {
		must(t, os.Chown(list, 65534, 65534))
		if _, err := LoadTrust(TrustOptions{File: list}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("list of another user: %v", err)
		}
	}
	if _, err := os.Stat(DefaultListFile); errors.Is(err, os.ErrNotExist) {
		tr, err := LoadTrust(TrustOptions{})
		if err != nil || len(tr.Entries()) != 0 || tr.File() != "" {
			t.Errorf("missing default list: %v, %v", tr, err)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLoadTrustDefaultRoundTrip loads the default list and loads it again
// from its Options, as an isolated helper does: a missing default list
// file is an empty list both times, not an error the second time.
func TestLoadTrustDefaultRoundTrip(t *testing.T) {
	if _, err := os.Stat(DefaultListFile); err == nil {
		t.Skipf("%s exists here", DefaultListFile)
	}
	first, err := LoadTrust(TrustOptions{Extra: []string{"/opt/jit/libp.so"}})
	if err != nil {
		t.Fatal(err)
	}
	if first.Options().File != DefaultListFile {
		t.Errorf("Options().File = %q, want %q", first.Options().File, DefaultListFile)
	}
	again, err := LoadTrust(first.Options())
	if err != nil {
		t.Fatalf("loading the options again: %v", err)
	}
	if got := again.Entries(); len(got) != 1 || got[0].Path != "/opt/jit/libp.so" {
		t.Errorf("entries %v", got)
	}
}

func TestCheckDir(t *testing.T) {
	if err := CheckDir("/"); err != nil {
		t.Errorf("CheckDir(/) = %v", err)
	}
	dir := t.TempDir() // below the world-writable temporary directory
	if fi, err := os.Stat(os.TempDir()); err != nil || fi.Mode().Perm()&0o002 == 0 {
		t.Skipf("%s is not world-writable here", os.TempDir())
	}
	err := CheckDir(dir)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("CheckDir(%s) = %v, want ErrUntrusted for a writable directory above it", dir, err)
	}
	if err := CheckDir(filepath.Join(dir, "missing")); !errors.Is(err, ErrUntrusted) {
		t.Errorf("CheckDir(missing) = %v", err)
	}
}
