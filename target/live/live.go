package live

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/target"
)

// Process is a running process as a [target.Target]. It is safe for
// concurrent use, except Close.
type Process struct {
	pid int
	mem *procmem.Process
}

var (
	_ target.Target     = (*Process)(nil)
	_ target.FileOpener = (*Process)(nil)
)

// Open attaches to the process pid for reading. It needs the right to
// trace the process (the same user and, under Yama's ptrace_scope 1, an
// ancestor, or CAP_SYS_PTRACE); the process is not stopped.
func Open(pid int) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("open process %d: invalid pid", pid)
	}
	if _, err := os.Stat(procPath(pid, "")); err != nil {
		return nil, fmt.Errorf("open process %d: %w", pid, err)
	}
	mem, err := procmem.Open(pid)
	if err != nil {
		return nil, fmt.Errorf("open process %d: %w", pid, err)
	}
	return &Process{pid: pid, mem: mem}, nil
}

// Pid returns the process's id.
func (p *Process) Pid() int { return p.pid }

// ReadMemory reads the process's memory.
func (p *Process) ReadMemory(b []byte, addr uint64) (int, error) { return p.mem.ReadMemory(b, addr) }

// Modules reads /proc/PID/maps now and calls yield for each module.
func (p *Process) Modules(yield func(target.Module) bool) error {
	mods, err := p.modules()
	if err != nil {
		return err
	}
	for _, m := range mods {
		if !yield(m) {
			return target.ErrStopped
		}
	}
	return nil
}

func (p *Process) modules() ([]target.Module, error) {
	b, err := os.ReadFile(procPath(p.pid, "maps"))
	if err != nil {
		return nil, fmt.Errorf("list modules of process %d: %w", p.pid, err)
	}
	mods, err := target.ModulesFromMaps(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("list modules of process %d: %w", p.pid, err)
	}
	return mods, nil
}

// OpenModule opens a module's file as the process sees it: through
// /proc/PID/root (the process's mount namespace), else the path itself.
// It returns nil, nil for modules without a file.
func (p *Process) OpenModule(m target.Module) (io.ReaderAt, io.Closer, error) {
	if m.Path == "" {
		return nil, nil, nil
	}
	f, err := os.Open(procPath(p.pid, filepath.Join("root", m.Path)))
	if err != nil {
		f, err = os.Open(m.Path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open module %s of process %d: %w", m.Path, p.pid, err)
	}
	return f, f, nil
}

// PerfMapPath returns where the process's perf map would be, as seen from
// here: /tmp/perf-NSPID.map inside the process's mount namespace, where
// NSPID is its pid in its own pid namespace (perf's convention for JITs).
func (p *Process) PerfMapPath() string {
	status, _ := os.ReadFile(procPath(p.pid, "status"))
	return PerfMapPath(p.pid, status)
}

// PerfMapPath is [Process.PerfMapPath] for process pid whose
// /proc/PID/status a caller has read already (nil: the pid is taken as
// it is in its own namespace).
func PerfMapPath(pid int, status []byte) string {
	nspid := pid
	for _, line := range bytes.Split(status, []byte("\n")) {
		if f := bytes.Fields(line); len(f) > 1 && string(f[0]) == "NSpid:" {
			if n, err := strconv.Atoi(string(f[len(f)-1])); err == nil {
				nspid = n
			}
		}
	}
	return procPath(pid, filepath.Join("root", "tmp", "perf-"+strconv.Itoa(nspid)+".map"))
}

// Close releases the files Open opened.
func (p *Process) Close() error { return p.mem.Close() }

func procPath(pid int, rel string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), rel)
}
