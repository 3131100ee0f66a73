//go:build !unix

package clipboard

import (
	"os/exec"
)

// detach does nothing where sessions do not exist; no clipboard backend is
// supported on these systems anyway.
func detach(*exec.Cmd) {}
