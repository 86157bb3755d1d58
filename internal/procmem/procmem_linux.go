//go:build linux

package procmem

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/fntable/fntable/memory"
)

// maxIov is the most iovecs one process_vm_readv call takes (IOV_MAX).
const maxIov = 1024

// Open returns the memory of process pid. It checks that the process
// exists; whether its memory may be read shows at the first read.
func Open(pid int) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("open process %d: invalid pid", pid)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		return nil, fmt.Errorf("open process %d: %w", pid, err)
	}
	return &Process{pid: pid}, nil
}

// ReadMemory implements memory.Reader. A read that reaches memory the
// process has not mapped (or not readable) returns the bytes before it
// and a *memory.UnmappedError with the first address that failed, to the
// page; a read of a process that has exited (ESRCH) returns an error
// matching memory.ErrTargetGone; any other failure is a
// *memory.ReadError wrapping the cause. All match memory.ErrShortRead.
func (p *Process) ReadMemory(b []byte, addr uint64) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if !p.useFile.Load() {
		n, err := p.readv(b, addr)
		if n > 0 || err == nil || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS)) {
			return n, err
		}
		// Denied (seccomp, or no such system call): /proc/PID/mem may work.
		p.useFile.Store(true)
	}
	return p.readFile(b, addr)
}

// readv reads with process_vm_readv, one remote iovec per page so that a
// partial read stops at the first unreadable page.
func (p *Process) readv(b []byte, addr uint64) (int, error) {
	page := uint64(os.Getpagesize())
	var remote [maxIov]unix.RemoteIovec
	done := 0
	for done < len(b) {
		// Addresses past the end of the address space wrap to page 0,
		// which is never mapped.
		a := addr + uint64(done)
		n, want := 0, 0
		for at := a; n < maxIov && done+want < len(b); n++ {
			l := min(page-at%page, uint64(len(b)-done-want))
			remote[n] = unix.RemoteIovec{Base: uintptr(at), Len: int(l)}
			want += int(l)
			at += l
		}
		local := []unix.Iovec{{Base: &b[done]}}
		local[0].SetLen(want)
		got, err := unix.ProcessVMReadv(p.pid, local, remote[:n], 0)
		if got > 0 {
			done += got
		}
		switch {
		case err == unix.EFAULT || err == nil && got < want:
			return done, &memory.UnmappedError{Addr: addr + uint64(done)}
		case err == unix.ESRCH:
			return done, memory.Gone(addr+uint64(done), fmt.Errorf("process %d: %w", p.pid, err))
		case err != nil:
			return done, &memory.ReadError{Addr: addr + uint64(done), Err: fmt.Errorf("process_vm_readv of process %d: %w", p.pid, err)}
		}
	}
	return done, nil
}

// readFile reads through /proc/PID/mem.
func (p *Process) readFile(b []byte, addr uint64) (int, error) {
	p.mu.Lock()
	if p.mem == nil {
		f, err := os.Open("/proc/" + strconv.Itoa(p.pid) + "/mem")
		if err != nil {
			p.mu.Unlock()
			if errors.Is(err, fs.ErrNotExist) {
				return 0, memory.Gone(addr, fmt.Errorf("process %d: %w", p.pid, err))
			}
			return 0, &memory.ReadError{Addr: addr, Err: err}
		}
		p.mem = f
	}
	f := p.mem
	p.mu.Unlock()
	if addr > math.MaxInt64 {
		return 0, &memory.UnmappedError{Addr: addr}
	}
	if end := addr + uint64(len(b)); end > math.MaxInt64 || end < addr {
		n, err := p.readFile(b[:math.MaxInt64-addr], addr)
		if err == nil {
			err = &memory.UnmappedError{Addr: math.MaxInt64}
		}
		return n, err
	}
	n, err := f.ReadAt(b, int64(addr))
	if n > len(b) || n < 0 {
		n = 0
	}
	if n == len(b) {
		return n, nil
	}
	if err == nil || errors.Is(err, unix.EIO) || errors.Is(err, unix.EFAULT) {
		return n, &memory.UnmappedError{Addr: addr + uint64(n)}
	}
	if errors.Is(err, unix.ESRCH) {
		return n, memory.Gone(addr+uint64(n), fmt.Errorf("process %d: %w", p.pid, err))
	}
	return n, &memory.ReadError{Addr: addr + uint64(n), Err: fmt.Errorf("read /proc/%d/mem: %w", p.pid, err)}
}
