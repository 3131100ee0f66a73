package agent

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Harden makes the calling process resist casual memory disclosure. The
// agent calls it first thing in main, before it reads any secret:
//
//   - prctl(PR_SET_DUMPABLE, 0): no core dumps, and processes of the same
//     user without CAP_SYS_PTRACE can no longer ptrace the agent or open its
//     /proc/PID/mem, /proc/PID/environ and similar files (they become owned
//     by root);
//   - setrlimit(RLIMIT_CORE, 0): no core file even if something restores
//     dumpability.
//
// It does not call mlockall: the Go heap and stacks grow at run time, and
// MCL_FUTURE would make allocations fail once RLIMIT_MEMLOCK is reached.
// Keys live instead in lockedmem buffers, which are locked one by one.
// Dumpability is reset by execve, so a process that execs must call Harden
// again.
func Harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("agent: prctl PR_SET_DUMPABLE: %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("agent: setrlimit RLIMIT_CORE: %w", err)
	}
	return nil
}
