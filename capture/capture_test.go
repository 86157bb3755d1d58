//go:build linux

package capture

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/symfile/debugfile"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/dump"
)

// child starts sleep(1), a process to capture; t's cleanup ends it.
func child(t *testing.T) *exec.Cmd {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs linux/amd64: stops a live process with ptrace")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("needs sleep(1): %v", err)
	}
	cmd := exec.Command(sleep, "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait until it sleeps (in nanosleep or clock_nanosleep): before, it
	// may still be loading its libraries.
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", cmd.Process.Pid))
		if f := strings.Fields(string(b)); len(f) > 0 && (f[0] == "35" || f[0] == "230") {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep does not sleep: %q", b)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCapture writes a dump of a running process and reads it back.
func TestCapture(t *testing.T) {
	cmd := child(t)
	pid := cmd.Process.Pid
	path := filepath.Join(t.TempDir(), "sleep.dmp")
	var calls int
	sum, err := WriteFile(pid, path, Options{Progress: func(written, total int64) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Error("Progress was never called")
	}
	if sum.Threads != 1 || sum.Modules < 2 || sum.Streams < 5 || sum.Size == 0 || sum.MemoryBytes == 0 {
		t.Errorf("summary %+v", *sum)
	}
	d, err := dump.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.ProcessID(); got != pid {
		t.Errorf("ProcessID %d, want %d", got, pid)
	}
	threads, err := d.Threads()
	if err != nil || len(threads) != 1 || threads[0].ID != pid || threads[0].Name != "sleep" {
		t.Errorf("threads %+v, %v; want thread %d named sleep", threads, err, pid)
	}
	si, err := d.File().SystemInfo()
	if err != nil || si.PlatformId != minidump.MD_OS_LINUX || si.ProcessorArchitecture != minidump.PROCESSOR_ARCHITECTURE_AMD64 {
		t.Errorf("system info %+v, %v", si, err)
	}
	var withID int
	d.Modules(func(m target.Module) bool {
		if len(m.BuildID) > 0 {
			withID++
		}
		// The build ID is the file's own (read while the process was
		// being stopped).
		if f, err := elf.Open(m.Path); err == nil {
			if want := debugfile.BuildID(f); want != nil && !bytes.Equal(m.BuildID, want) {
				t.Errorf("%s: build id %x, want the file's %x", m.Path, m.BuildID, want)
			}
			f.Close()
		}
		return true
	})
	if withID < 2 {
		t.Errorf("%d modules with a build id, want the executable and libc at least", withID)
	}
	for _, st := range []minidump.StreamType{minidump.BreakpadLinuxMapsStream, minidump.BreakpadLinuxProcStatusStream, minidump.BreakpadLinuxAuxvStream, minidump.BreakpadLinuxCmdLineStream, minidump.BreakpadLinuxEnvironStream, minidump.BreakpadLinuxCPUInfoStream} {
		if _, ok := d.File().Stream(st); !ok {
			t.Errorf("no %v", st)
		}
	}
	// The status says how the process ran, read before it was stopped.
	if dir, ok := d.File().Stream(minidump.BreakpadLinuxProcStatusStream); ok {
		b, err := d.File().StreamData(dir)
		if err != nil || !strings.Contains(string(b), "TracerPid:\t0\n") || strings.Contains(string(b), "tracing stop") {
			t.Errorf("status stream, %v:\n%s", err, b)
		}
	}
	if sum.Full {
		t.Error("Full set")
	}
	// The process runs on.
	if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status")); err != nil || !strings.Contains(string(b), "TracerPid:\t0\n") {
		t.Errorf("process %d after the capture: %v\n%s", pid, err, b)
	}
}

// TestCaptureFull writes a full-memory dump: every readable mapping.
func TestCaptureFull(t *testing.T) {
	cmd := child(t)
	path := filepath.Join(t.TempDir(), "full.dmp")
	sum, err := WriteFile(cmd.Process.Pid, path, Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := minidump.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l64, err := f.Memory64List()
	if err != nil || l64 == nil || len(l64.Ranges) < 5 {
		t.Fatalf("memory64 list %+v, %v", l64, err)
	}
	if !sum.Full || sum.MemoryBytes < 1<<20 {
		t.Errorf("summary %+v", *sum)
	}
}

// TestCaptureKilled kills the process while it is stopped for the
// capture: an error that says it is gone, and no file.
func TestCaptureKilled(t *testing.T) {
	for _, full := range []bool{false, true} {
		cmd := child(t)
		pid := cmd.Process.Pid
		testHookStopped = func(p int) { syscall.Kill(p, syscall.SIGKILL) }
		path := filepath.Join(t.TempDir(), "killed.dmp")
		_, err := WriteFile(pid, path, Options{Full: full})
		testHookStopped = nil
		if err == nil || !errors.Is(err, memory.ErrTargetGone) {
			t.Errorf("full=%v: error %v, want one matching memory.ErrTargetGone", full, err)
		}
		if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("full=%v: %s exists after the failed capture: %v", full, path, serr)
		}
		if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) > 0 {
			t.Errorf("full=%v: left %v", full, ents)
		}
	}
}

// TestCaptureDiskFull writes to a 64 KiB tmpfs: an error, and no file.
func TestCaptureDiskFull(t *testing.T) {
	cmd := child(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("needs a small tmpfs (mount as root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	path := filepath.Join(dir, "full.dmp")
	_, err := WriteFile(cmd.Process.Pid, path, Options{Full: true})
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error %v, want ENOSPC", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Errorf("left %v in the full file system", ents)
	}
	// The process runs on.
	if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "status")); !strings.Contains(string(b), "TracerPid:\t0\n") {
		t.Errorf("process still traced:\n%s", b)
	}
}

// TestCaptureBadDestination: a destination that cannot be written fails
// before the process is stopped, with an error naming it.
func TestCaptureBadDestination(t *testing.T) {
	cmd := child(t)
	dir := t.TempDir()
	testHookStopped = func(int) { t.Error("the process was stopped") }
	defer func() { testHookStopped = nil }()
	for _, path := range []string{filepath.Join(dir, "missing", "x.dmp"), dir} {
		_, err := WriteFile(cmd.Process.Pid, path, Options{})
		if err == nil || !strings.Contains(err.Error(), "write minidump "+path+": ") {
			t.Errorf("WriteFile to %s: %v, want an error naming it", path, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Errorf("left %v", ents)
	}
}

func TestParseCPUInfo(t *testing.T) {
	c := parseCPUInfo([]byte("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 158\nstepping\t: 10\nflags\t\t: fpu vme sse sse2 ht avx\n\nprocessor\t: 1\nvendor_id\t: Other\n"))
	if c.vendor != "GenuineIntel" || c.family != 6 || c.model != 158 || c.stepping != 10 {
		t.Errorf("%+v", c)
	}
	if want := uint32(1<<0 | 1<<1 | 1<<25 | 1<<26 | 1<<28); c.features != want {
		t.Errorf("features %#x, want %#x", c.features, want)
	}
	// Family 6, model 158 (0x9e), stepping 10: EAX 0x906ea.
	if got := c.signature(); got != 0x906ea {
		t.Errorf("signature %#x, want 0x906ea", got)
	}
	// Family 0x19 (AMD Zen 3): base family 0xf, extended 0xa.
	if got := (cpuInfo{family: 0x19, model: 0x21, stepping: 0}).signature(); got != 0xa20f10 {
		t.Errorf("signature %#x, want 0xa20f10", got)
	}
}

func TestSpanSet(t *testing.T) {
	var s spanSet
	for _, r := range [][2]uint64{{10, 20}, {30, 40}, {15, 25}, {25, 30}, {50, 50}, {60, 70}} {
		s.add(r[0], r[1])
	}
	got := s.list()
	want := [][2]uint64{{10, 40}, {60, 70}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("%v, want %v", got, want)
	}
}
