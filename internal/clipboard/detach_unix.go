//go:build unix

package clipboard

import (
	"os/exec"
	"syscall"
)

// detach puts the helper in a new session so that closing the terminal
// (SIGHUP) or pressing Ctrl-C in it does not stop it.
func detach(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
}
