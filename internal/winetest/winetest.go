package winetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/testenv"
)

const (
	// ccName is the MinGW-w64 C compiler for x86-64 Windows.
	ccName = "x86_64-w64-mingw32-gcc"

	// aptInstall installs wine and ccName on Debian 12.
	aptInstall = "apt-get install -y --no-install-recommends wine64 wine gcc-mingw-w64-x86-64-win32"

	// serverLinger is how many seconds the wineserver started by Require
	// stays alive after its last client exits: long enough to keep the
	// test processes of one "go test ./..." warm, short enough not to
	// leave a server behind for good.
	serverLinger = 60

	// setupTimeout bounds setup-prefix.sh, which takes about 10 s.
	setupTimeout = 5 * time.Minute

	// startTimeout bounds the first program run under a fresh wineserver
	// (about 0.4 s) and "wine --version".
	startTimeout = 2 * time.Minute

	// lockWait bounds the wait for another test process that prepares the
	// prefix; lockStale is the age after which a lock file is taken to be
	// left behind by a process that died while holding it.
	lockWait  = 10 * time.Minute
	lockStale = 5 * time.Minute

	// maxStderr is how many bytes of a failed program's standard error
	// Run quotes in its error.
	maxStderr = 4 << 10
)

// SharedDir returns the absolute path of the shared directory, ../shared
// relative to the module root, which is found by walking up from the working
// directory to go.mod. If the directory is missing, SharedDir skips the test,
// or fails it when the environment variable CI is non-empty.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := sharedDir()
	if err != nil {
		unavailable(t, "needs ../shared beside the repository: %v", err)
	}
	return dir
}

// Testdata returns the path of ../shared/testdata/rel, where rel is
// slash-separated. If the file is missing, Testdata skips the test, or fails
// it when the environment variable CI is non-empty.
func Testdata(t testing.TB, rel string) string {
	t.Helper()
	path := filepath.Join(SharedDir(t), "testdata", filepath.FromSlash(rel))
	if _, err := os.Stat(path); err != nil {
		unavailable(t, "needs ../shared/testdata/%s: %v", rel, err)
	}
	return path
}

// AddSeeds adds to f's seed corpus the shared files that match pattern
// (slash-separated, under ../shared/testdata, as for filepath.Glob) and
// hold at most maxSize bytes: larger inputs slow fuzzing down without
// reaching code the small ones do not. Without the shared files the
// target runs on its other seeds, except under CI, where it fails.
func AddSeeds(f *testing.F, pattern string, maxSize int) {
	f.Helper()
	var paths []string
	if dir, err := sharedDir(); err == nil {
		paths, _ = filepath.Glob(filepath.Join(dir, "testdata", filepath.FromSlash(pattern)))
	}
	if len(paths) == 0 && os.Getenv("CI") != "" {
		unavailable(f, "needs ../shared/testdata/%s", pattern)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= maxSize {
			f.Add(b)
		}
	}
}

// unavailable skips the test, or fails it under CI (see internal/testenv).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

func sharedDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(root), "shared")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	return dir, nil
}

// moduleRoot returns the nearest directory at or above dir that holds go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && fi.Mode().IsRegular() {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or above", dir)
		}
		d = parent
	}
}

// Env is a Wine installation with a prepared prefix and a warm wineserver,
// as returned by [Require]. It is safe for concurrent use. Its fields are
// informational and must not be changed.
type Env struct {
	Wine   string // path of the wine launcher
	Server string // path of wineserver
	CC     string // path of x86_64-w64-mingw32-gcc
	Prefix string // absolute path of the Wine prefix (WINEPREFIX)

	version string   // output of "wine --version"
	environ []string // environment for Wine processes
}

// Version returns Wine's version as "wine --version" prints it, for example
// "wine-8.0 (Debian 8.0~repack-4)".
func (e *Env) Version() string { return e.version }

var (
	requireOnce sync.Once
	required    requirement
)

// requirement is the outcome of the first Require, shared by all later calls.
type requirement struct {
	env     *Env
	missing string // what this machine lacks; skip, or fail under CI
	err     error  // the set-up failed; always fail
	note    string // logged by the first caller
}

// Require returns the Wine environment, preparing it on first use: it finds
// wine and x86_64-w64-mingw32-gcc on PATH, prepares the prefix ($WINEPREFIX,
// or $HOME/.cache/fntable/wine-prefix) with the shared wine/setup-prefix.sh
// if it lacks drive_c or the bcryptprimitives.dll shim, starts a persistent
// wineserver that lingers for a minute after its last client, and runs one
// program to start Wine's services.
//
// If a tool is missing, Require skips the test with the command that
// installs it, or fails the test when the environment variable CI is
// non-empty. If the set-up fails, the test fails.
func Require(t testing.TB) *Env {
	t.Helper()
	first := false
	requireOnce.Do(func() {
		first = true
		required = setup()
	})
	r := required
	if first && r.note != "" {
		t.Log(r.note)
	}
	switch {
	case r.missing != "":
		unavailable(t, "%s", r.missing)
	case r.err != nil:
		t.Fatalf("winetest: %v", r.err)
	}
	return r.env
}

func setup() requirement {
	var lacking []string
	wine, err := exec.LookPath("wine")
	if err != nil {
		lacking = append(lacking, "wine")
	}
	cc, err := exec.LookPath(ccName)
	if err != nil {
		lacking = append(lacking, ccName)
	}
	if len(lacking) > 0 {
		return requirement{missing: fmt.Sprintf("needs %s on PATH; on Debian: %s", strings.Join(lacking, " and "), aptInstall)}
	}
	server, err := exec.LookPath("wineserver")
	if err != nil {
		server = filepath.Join(filepath.Dir(wine), "wineserver")
		if _, err := os.Stat(server); err != nil {
			return requirement{missing: fmt.Sprintf("needs wineserver on PATH or beside %s; on Debian: %s", wine, aptInstall)}
		}
	}
	prefix, err := prefixDir()
	if err != nil {
		return requirement{err: err}
	}
	e := &Env{Wine: wine, Server: server, CC: cc, Prefix: prefix, environ: environ(prefix)}

	var r requirement
	if !prefixReady(prefix) {
		shared, err := sharedDir()
		if err != nil {
			return requirement{missing: fmt.Sprintf("needs ../shared beside the repository to prepare the wine prefix %s: %v", prefix, err)}
		}
		start := time.Now()
		did, err := e.prepare(filepath.Join(shared, "wine", "setup-prefix.sh"))
		if err != nil {
			return requirement{err: err}
		}
		how := "prepared the wine prefix"
		if !did {
			how = "waited for another process to prepare the wine prefix"
		}
		r.note = fmt.Sprintf("%s %s: %v", how, prefix, time.Since(start).Round(time.Millisecond))
	}

	// Exit status 2 means a wineserver already runs for this prefix, which
	// is as good. Any other failure shows up in the warm-up below.
	srv := exec.Command(server, "-p"+strconv.Itoa(serverLinger))
	srv.Env = e.environ
	_ = srv.Run()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	// The first program under a fresh wineserver starts services.exe and
	// the other helpers; start them here, on files rather than the
	// caller's pipes.
	if _, stderr, err := e.command(ctx, nil, wine, "cmd.exe", "/c", "exit"); err != nil {
		return requirement{err: fmt.Errorf("wine cannot start a program in the prefix %s: %v%s", prefix, err, quote(stderr))}
	}
	out, stderr, err := e.command(ctx, nil, wine, "--version")
	if err != nil {
		return requirement{err: fmt.Errorf("wine --version: %v%s", err, quote(stderr))}
	}
	e.version = strings.TrimSpace(string(out))
	r.env = e
	return r
}

// prefixDir returns $WINEPREFIX, or $HOME/.cache/fntable/wine-prefix.
func prefixDir() (string, error) {
	if p := os.Getenv("WINEPREFIX"); p != "" {
		return filepath.Abs(p)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locate the wine prefix: %v", err)
	}
	return filepath.Join(home, ".cache", "fntable", "wine-prefix"), nil
}

// prefixReady reports whether prefix has been created and has the
// ProcessPrng shim that Go programs need on Wine 8.0.
func prefixReady(prefix string) bool {
	if fi, err := os.Stat(filepath.Join(prefix, "drive_c")); err != nil || !fi.IsDir() {
		return false
	}
	_, err := os.Stat(filepath.Join(prefix, "drive_c", "windows", "system32", "bcryptprimitives.dll"))
	return err == nil
}

// environ returns the environment for Wine processes: headless, quiet, and
// without the Mono and Gecko installers.
func environ(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "WINEPREFIX", "WINEDEBUG", "WINEDLLOVERRIDES", "DISPLAY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "WINEPREFIX="+prefix, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=")
}

// prepare runs the set-up script on the prefix under the prefix's lock. It
// reports whether it ran the script: another process may have prepared the
// prefix while this one waited for the lock.
func (e *Env) prepare(script string) (did bool, err error) {
	if err := os.MkdirAll(filepath.Dir(e.Prefix), 0o755); err != nil {
		return false, err
	}
	unlock, err := lock(e.Prefix + ".lock")
	if err != nil {
		return false, err
	}
	defer unlock()
	if prefixReady(e.Prefix) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	out, stderr, err := e.command(ctx, nil, "sh", script)
	if err == nil && !prefixReady(e.Prefix) {
		err = errors.New("the prefix still lacks drive_c or system32/bcryptprimitives.dll")
	}
	if err != nil {
		return true, fmt.Errorf("prepare the wine prefix %s with %s: %v (remove the prefix to start over)\n%s%s", e.Prefix, script, err, out, stderr)
	}
	return true, nil
}

// lock takes an exclusive lock by creating path, waiting for up to lockWait
// while another process holds it, and returns the function that releases
// it. Creating a file exclusively works on every OS, so this file needs no
// build tags. A lock older than lockStale is taken to be abandoned.
func lock(path string) (unlock func(), err error) {
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock %s: %v", path, err)
		}
		if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) > lockStale {
			os.Remove(path)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s: still held after %v; remove it if nothing is preparing the prefix", path, lockWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Run runs exe (a Unix path) under Wine with the given arguments and returns
// its standard output. stdin, which may be nil, is the program's standard
// input. ctx bounds the run: when it is done the program is killed. If the
// program fails, Run returns what it wrote to standard output together with
// an error that quotes the first few KB of its standard error.
func (e *Env) Run(ctx context.Context, exe string, stdin io.Reader, args ...string) (stdout []byte, err error) {
	if abs, err := filepath.Abs(exe); err == nil {
		exe = abs
	}
	stdout, stderr, err := e.command(ctx, stdin, e.Wine, append([]string{exe}, args...)...)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return stdout, fmt.Errorf("wine %s: %w%s", filepath.Base(exe), err, quote(stderr))
	}
	return stdout, nil
}

// quote formats a program's standard error for an error message.
func quote(stderr []byte) string {
	stderr = bytes.TrimSpace(stderr)
	if len(stderr) == 0 {
		return ""
	}
	if len(stderr) > maxStderr {
		return fmt.Sprintf("; stderr (first %d of %d bytes):\n%s", maxStderr, len(stderr), stderr[:maxStderr])
	}
	return "; stderr:\n" + string(stderr)
}

// command runs name in the Wine environment with its standard streams on
// temporary files, never pipes: Wine's helper processes inherit the streams
// and outlive the program, so whoever reads a pipe would wait for them.
func (e *Env) command(ctx context.Context, stdin io.Reader, name string, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.environ
	if stdin != nil {
		in, err := tempFile()
		if err != nil {
			return nil, nil, err
		}
		defer in.close()
		if _, err := io.Copy(in.File, stdin); err != nil {
			return nil, nil, fmt.Errorf("copy stdin: %v", err)
		}
		if _, err := in.Seek(0, io.SeekStart); err != nil {
			return nil, nil, err
		}
		cmd.Stdin = in.File
	}
	out, err := tempFile()
	if err != nil {
		return nil, nil, err
	}
	defer out.close()
	errf, err := tempFile()
	if err != nil {
		return nil, nil, err
	}
	defer errf.close()
	cmd.Stdout, cmd.Stderr = out.File, errf.File
	runErr := cmd.Run()
	stdout, err = out.contents()
	if err != nil {
		return nil, nil, err
	}
	stderr, err = errf.contents()
	if err != nil {
		return nil, nil, err
	}
	return stdout, stderr, runErr
}

// temp is a temporary file that is removed when closed.
type temp struct{ *os.File }

func tempFile() (temp, error) {
	f, err := os.CreateTemp("", "winetest-*")
	return temp{f}, err
}

func (f temp) close() {
	f.Close()
	os.Remove(f.Name())
}

// contents returns everything written to the file so far.
func (f temp) contents() ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// BuildC compiles and links a Windows x86-64 program with
// x86_64-w64-mingw32-gcc, as "x86_64-w64-mingw32-gcc -o out args...", in the
// working directory, and returns the absolute path of out. args hold the
// sources and options (-O2, -I..., -l...). out is usually in t.TempDir(). If
// the compiler fails, the test fails with its output.
//
// Results are cached under os.UserCacheDir()/fntable/winebuild, so a
// program embedded in a test and written to a fresh temporary directory is
// compiled once. The key covers the compiler, the working directory, the
// options, and the contents (not the paths) of the arguments that name
// files. An entry is reused only while every header the compilation read is
// unchanged, system headers included; headers included relative to a
// source are looked for beside the source's current path. Libraries found
// through -l are not tracked. Entries unused for cacheMaxAge are removed.
func (e *Env) BuildC(t testing.TB, out string, args ...string) string {
	t.Helper()
	out, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.buildC(t.Context(), out, args); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *Env) buildC(ctx context.Context, out string, args []string) error {
	c := openCache()
	var key string
	if c != nil {
		key = c.key(e.CC, args)
		if c.get(key, out, args) {
			return nil
		}
	}
	cmd := exec.CommandContext(ctx, e.CC, append([]string{"-o", out}, args...)...)
	var deps temp
	if c != nil {
		var err error
		if deps, err = tempFile(); err != nil {
			return err
		}
		defer deps.close()
		// GCC appends the headers of every source to this file,
		// system headers included; -MD would keep only the last source's.
		cmd.Env = append(os.Environ(), "SUNPRO_DEPENDENCIES="+deps.Name()+" "+depTarget)
	}
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s -o %s %s: %v\n%s", ccName, out, strings.Join(args, " "), err, output)
	}
	if c != nil {
		if rule, err := deps.contents(); err == nil {
			c.put(key, out, args, parseDeps(rule))
		}
	}
	return nil
}

const (
	// depTarget is the make target GCC writes in the dependency file.
	depTarget = "x"

	// cacheMaxAge is how long a compiled program stays cached unused.
	cacheMaxAge = 30 * 24 * time.Hour
)

// cache holds compiled programs. Each entry is a directory named by its key
// holding the program ("out") and the headers it was built from ("deps":
// lines of SHA-256 and path). A path of the form "@i/rest" is relative to
// the directory of argument i, as GCC resolves #include "rest" in that
// argument; other paths are absolute. The cache is best effort: every
// failure is a miss.
type cache struct{ dir string }

func openCache() *cache {
	base, err := os.UserCacheDir()
	if err != nil {
		return nil
	}
	dir := filepath.Join(base, "fntable", "winebuild")
	if os.MkdirAll(dir, 0o755) != nil {
		return nil
	}
	return &cache{dir}
}

// key identifies a compilation by everything but the headers it reads.
func (c *cache) key(cc string, args []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "winebuild 1\x00%s\x00", cc)
	if real, err := filepath.EvalSymlinks(cc); err == nil {
		fmt.Fprintf(h, "%s\x00", real)
	}
	if fi, err := os.Stat(cc); err == nil {
		fmt.Fprintf(h, "%d %d\x00", fi.Size(), fi.ModTime().UnixNano())
	}
	wd, _ := os.Getwd()
	fmt.Fprintf(h, "%s\x00", wd)
	for _, k := range []string{"CPATH", "C_INCLUDE_PATH", "LIBRARY_PATH", "GCC_EXEC_PREFIX", "COMPILER_PATH"} {
		fmt.Fprintf(h, "%s=%s\x00", k, os.Getenv(k))
	}
	dirs := argDirs(args)
	for i, a := range args {
		if dirs[i] == nil {
			fmt.Fprintf(h, "arg %q\x00", a)
			continue
		}
		// A file counts by its contents and its extension, which
		// selects the language. Which directories hold which others
		// decides how "@i/" paths resolve, so it is part of the key.
		fmt.Fprintf(h, "file %q %s", filepath.Ext(a), fileSum(a))
		for j := range args {
			if dirs[j] != nil && strings.HasPrefix(*dirs[j], *dirs[i]) {
				fmt.Fprintf(h, " %d", j)
			}
		}
		fmt.Fprintf(h, "\x00")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// argDirs returns, for each argument that names a regular file, the
// directory prefix GCC puts before the names it includes relative to that
// file ("" for a file in the working directory), and nil for the others.
func argDirs(args []string) []*string {
	dirs := make([]*string, len(args))
	for i, a := range args {
		if fi, err := os.Stat(a); err == nil && fi.Mode().IsRegular() {
			dir := a[:strings.LastIndex(a, "/")+1]
			dirs[i] = &dir
		}
	}
	return dirs
}

// fileSum returns the hex SHA-256 of a file's contents, or "" if it cannot be read.
func fileSum(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// get copies the program of the entry key, built from args, to out if the
// entry exists and none of its headers changed.
func (c *cache) get(key, out string, args []string) bool {
	entry := filepath.Join(c.dir, key)
	deps, err := os.ReadFile(filepath.Join(entry, "deps"))
	if err != nil {
		return false
	}
	dirs := argDirs(args)
	for line := range strings.Lines(string(deps)) {
		sum, path, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if !ok || sum == "" {
			return false
		}
		if ref, ok := strings.CutPrefix(path, "@"); ok {
			i, rest, _ := strings.Cut(ref, "/")
			n, err := strconv.Atoi(i)
			if err != nil || n < 0 || n >= len(dirs) || dirs[n] == nil {
				return false
			}
			path = *dirs[n] + rest
		}
		if fileSum(path) != sum {
			return false
		}
	}
	prog, err := os.ReadFile(filepath.Join(entry, "out"))
	if err != nil || os.WriteFile(out, prog, 0o755) != nil {
		return false
	}
	now := time.Now()
	os.Chtimes(entry, now, now) // last use, for pruning
	return true
}

// put stores the program out, built from args and the headers deps (as GCC
// names them), as the entry key, and removes entries unused for cacheMaxAge.
func (c *cache) put(key, out string, args, deps []string) {
	dirs := argDirs(args)
	wd, _ := os.Getwd()
	var list strings.Builder
	for _, d := range deps {
		sum := fileSum(d)
		if sum == "" {
			return
		}
		// The longest directory prefix is the including file's own.
		best := -1
		for i, dir := range dirs {
			if dir != nil && *dir != "" && strings.HasPrefix(d, *dir) && (best < 0 || len(*dir) > len(*dirs[best])) {
				best = i
			}
		}
		switch {
		case best >= 0:
			d = fmt.Sprintf("@%d/%s", best, d[len(*dirs[best]):])
		case !filepath.IsAbs(d):
			d = filepath.Join(wd, d)
		}
		fmt.Fprintf(&list, "%s %s\n", sum, d)
	}
	prog, err := os.ReadFile(out)
	if err != nil {
		return
	}
	tmp, err := os.MkdirTemp(c.dir, "tmp-")
	if err != nil {
		return
	}
	defer os.RemoveAll(tmp)
	if os.WriteFile(filepath.Join(tmp, "deps"), []byte(list.String()), 0o644) != nil ||
		os.WriteFile(filepath.Join(tmp, "out"), prog, 0o755) != nil {
		return
	}
	entry := filepath.Join(c.dir, key)
	os.RemoveAll(entry) // an entry whose headers changed
	os.Rename(tmp, entry)

	old, _ := os.ReadDir(c.dir)
	for _, de := range old {
		if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > cacheMaxAge {
			os.RemoveAll(filepath.Join(c.dir, de.Name()))
		}
	}
}

// parseDeps returns the prerequisites of the make rules GCC writes, as GCC
// names them. GCC escapes spaces as "\ " and "$" as "$$" and continues
// lines with a trailing backslash.
func parseDeps(rule []byte) []string {
	seen := map[string]bool{}
	var deps []string
	var word []byte
	flush := func() {
		w := string(word)
		word = word[:0]
		if w != "" && w != depTarget+":" && !seen[w] {
			seen[w] = true
			deps = append(deps, w)
		}
	}
	for i := 0; i < len(rule); i++ {
		switch c := rule[i]; {
		case c == '\\' && i+1 < len(rule) && (rule[i+1] == ' ' || rule[i+1] == '#'):
			word = append(word, rule[i+1])
			i++
		case c == '\\' && i+1 < len(rule) && (rule[i+1] == '\n' || rule[i+1] == '\r'):
			flush()
		case c == '$' && i+1 < len(rule) && rule[i+1] == '$':
			word = append(word, '$')
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush()
		default:
			word = append(word, c)
		}
	}
	flush()
	return deps
}
