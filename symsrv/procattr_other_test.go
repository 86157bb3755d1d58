//go:build !linux

package symsrv

import "os/exec"

// dieWithParent does nothing where the kernel cannot tie a child's life to
// its parent's; TestMain still stops the server on a normal exit.
func dieWithParent(cmd *exec.Cmd) {}
