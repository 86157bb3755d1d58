//go:build !linux

package demotarget

import "os/exec"

// setParentDeathSignal does nothing: only Linux has a parent death signal.
func setParentDeathSignal(cmd *exec.Cmd) {}
