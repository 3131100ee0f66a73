//go:build unix

package loadgen

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type cpuSample struct{ user, system time.Duration }

// cpuTime returns this process's CPU time so far.
func cpuTime() (cpuSample, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSample{}, false
	}
	return cpuSample{
		user:   time.Duration(ru.Utime.Nano()),
		system: time.Duration(ru.Stime.Nano()),
	}, true
}

// rssMiB returns this process's resident set size from /proc (Linux), or 0.
func rssMiB() float64 { return procMiB("self", "VmRSS:") }

// procMiB returns a "kB" field of /proc/PID/status (Linux) in MiB, or 0 when
// the process or the field is not there.
func procMiB(pid, field string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0
			}
			return kib / 1024
		}
	}
	return 0
}
