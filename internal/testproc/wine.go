package testproc

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/winetest"
)

// tokenVar is the environment variable through which StartWine recognises
// the process it started among the processes of the machine.
const tokenVar = "FNTABLE_TESTPROC_TOKEN"

// StartWine builds testdata/winspin.c with MinGW-w64 (-O2 -g, through
// winetest.Env.BuildC, cached by content), runs it under Wine, waits for
// its ready line (for at most a minute), and returns it as a [Proc]:
//
//   - Pid is the Linux process that runs winspin.exe: Wine's preloaded
//     process, whose /proc/PID/cmdline Wine rewrites to the Windows path
//     of the program. StartWine finds it by a token it puts in the
//     program's environment; it is usually the pid of Cmd itself, because
//     the wine launcher executes the loader in place.
//   - Funcs holds the run-time addresses of f1, f2, f3 and main.
//   - Threads maps the Linux thread that spins in f3 (the one found
//     running) to the role "spin".
//
// As winetest does, StartWine never gives a Wine process a pipe: the
// program's standard output and error are temporary files, and StartWine
// polls the output for the ready line. When the test ends it kills the
// program's process (and the launcher, if that is another process) and
// nothing else: the wineserver and Wine's helper processes are shared
// with other tests.
//
// Without wine or MinGW-w64 the test is skipped (it fails under CI); see
// winetest.Require.
func StartWine(t testing.TB) *Proc {
	t.Helper()
	return StartWineProgram(t, filepath.Join(testdataDir(t), "winspin.c"))
}

// StartWineProgram is [StartWine] for the C program src, which announces
// itself as winspin.c does: "fn NAME 0xADDRESS" lines for Funcs, then a
// line that starts with "ready", on standard output. A thread found
// running is the one named "spin" in Threads.
func StartWineProgram(t testing.TB, src string) *Proc {
	t.Helper()
	env := winetest.Require(t)
	dir := t.TempDir()
	exe := env.BuildC(t, filepath.Join(dir, strings.TrimSuffix(filepath.Base(src), ".c")+".exe"), "-O2", "-g", src)

	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	defer stderr.Close()
	token := make([]byte, 16)
	rand.Read(token)
	tok := hex.EncodeToString(token)

	cmd := exec.Command(env.Wine, exe)
	cmd.Env = append(wineEnviron(env.Prefix), tokenVar+"="+tok)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testproc: start wine %s: %v", exe, err)
	}
	// No goroutine waits for the launcher while the test runs: a waiter
	// in this process would take the ptrace stops of its threads (the
	// kernel reports them to any waiter in the tracer's process), and
	// os.Process would then take a stop for the end of the process and
	// never kill it. Exit is polled instead, and Cleanup kills by pid.
	pid := 0
	t.Cleanup(func() {
		for _, p := range []int{pid, cmd.Process.Pid} {
			if proc, err := os.FindProcess(p); p != 0 && err == nil {
				proc.Kill() // a new handle: cmd.Process may have taken a stop for the end
			}
		}
		cmd.Wait()
	})
	exited := func() bool {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
		i := bytes.LastIndexByte(stat, ')')
		return err != nil || i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
	}

	deadline := time.Now().Add(readyTimeout)
	var lines []string
	for {
		data, _ := os.ReadFile(stdout.Name())
		lines = readyLines(data)
		if lines != nil {
			break
		}
		if exited() {
			errData, _ := os.ReadFile(stderr.Name())
			t.Fatalf("testproc: wine %s exited before its ready line; stdout:\n%s\nstderr:\n%s", exe, data, tail(errData))
		}
		time.Sleep(20 * time.Millisecond)
		if time.Now().After(deadline) {
			errData, _ := os.ReadFile(stderr.Name())
			t.Fatalf("testproc: wine %s did not get ready within %v; stdout:\n%s\nstderr:\n%s", exe, readyTimeout, data, tail(errData))
		}
	}
	p, err := parse(lines)
	if err != nil {
		t.Fatalf("testproc: wine %s: %v", exe, err)
	}
	p.Cmd = cmd
	if pid, err = findToken(tok, strings.ToLower(filepath.Base(exe)), cmd.Process.Pid); err != nil {
		t.Fatalf("testproc: wine %s: %v", exe, err)
	}
	p.Pid = pid
	if tid, ok := spinningThread(pid); ok {
		p.Threads[tid] = "spin"
		p.Attrs[tid] = map[string]string{}
	}
	return p
}

// readyLines returns the complete lines of data up to and including the
// first that starts with "ready", or nil if there is none yet.
func readyLines(data []byte) []string {
	var lines []string
	for {
		line, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			return nil // no line, or an incomplete one
		}
		s := strings.TrimRight(string(line), "\r")
		lines = append(lines, s)
		if strings.HasPrefix(s, "ready") {
			return lines
		}
		data = rest
	}
}

// wineEnviron returns the environment for Wine processes in prefix, as
// winetest sets it up: headless, quiet, without the Mono and Gecko
// installers.
func wineEnviron(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "WINEPREFIX", "WINEDEBUG", "WINEDLLOVERRIDES", "DISPLAY", tokenVar:
			continue
		}
		env = append(env, kv)
	}
	return append(env, "WINEPREFIX="+prefix, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=")
}

// findToken returns the process whose environment holds tokenVar=tok and
// whose command line names exe (lower case), preferring launcher, the pid of
// the process StartWine started.
func findToken(tok, exe string, launcher int) (int, error) {
	want := []byte(tokenVar + "=" + tok + "\x00")
	match := func(pid int) bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(bytes.ToLower(cmdline), []byte(exe)) {
			return false
		}
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		return err == nil && bytes.Contains(environ, want)
	}
	if match(launcher) {
		return launcher, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && match(pid) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process runs %s with %s=%s", exe, tokenVar, tok)
}

// spinningThread returns the thread of pid that is running, which in
// winspin.exe is the one spinning in f3. It looks a few times, because a
// helper thread can be running too.
func spinningThread(pid int) (int, bool) {
	counts := map[int]int{}
	for range 20 {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return 0, false
		}
		for _, e := range ents {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name()))
			if err != nil {
				continue
			}
			i := bytes.LastIndexByte(stat, ')')
			if i >= 0 && i+2 < len(stat) && stat[i+2] == 'R' {
				tid, _ := strconv.Atoi(e.Name())
				counts[tid]++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	best, n := 0, 0
	for tid, c := range counts {
		if c > n {
			best, n = tid, c
		}
	}
	return best, n > 10
}
