//go:build !unix

package loadgen

import "time"

type cpuSample struct{ user, system time.Duration }

func cpuTime() (cpuSample, bool) { return cpuSample{}, false }

func rssMiB() float64 { return 0 }

func procMiB(pid, field string) float64 { return 0 }
