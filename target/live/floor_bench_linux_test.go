//go:build linux

package live

import (
	"os"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// floorCycle is the least a stop of every thread can do, with nothing
// around it: on one locked thread, seize and interrupt each task, wait
// for each, read its registers and 8 KiB of its stack, and detach each.
// The ptrace-stops raise no SIGCHLD here either (quietStops).
func floorCycle(b *testing.B, pid int, buf []byte) {
	defer quietStops()()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		b.Fatal(err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		tids = append(tids, tid)
	}
	for _, tid := range tids {
		if err := unix.PtraceSeize(tid); err != nil {
			b.Fatal(err)
		}
		unix.PtraceInterrupt(tid)
	}
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	for _, tid := range tids {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(tid, &ws, unix.WALL, nil); err != nil {
			b.Fatal(err)
		}
		var regs unix.PtraceRegs
		if err := unix.PtraceGetRegs(tid, &regs); err != nil {
			b.Fatal(err)
		}
		remote := []unix.RemoteIovec{{Base: uintptr(regs.Rsp), Len: len(buf)}}
		unix.ProcessVMReadv(pid, local, remote, 0)
	}
	for _, tid := range tids {
		unix.PtraceDetach(tid)
	}
}

// BenchmarkStopFloor measures floorCycle on the children BenchmarkStop
// uses, for a side-by-side reading: what Stop costs beyond the system
// calls it cannot avoid on this machine.
func BenchmarkStopFloor(b *testing.B) {
	buf := make([]byte, 8<<10)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	benchSizes(b, func(pid int) { floorCycle(b, pid, buf) })
}
