//go:build linux

package demotarget

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the target if the process
// that started it dies first, so that no target outlives a crashed test.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
