package kdf

import (
	"crypto/pbkdf2"
	"crypto/sha512"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// Bounds on Tune's target.
const (
	MinTuneTarget = 100 * time.Millisecond
	MaxTuneTarget = 30 * time.Second
)

// Measurement is what Tune measured on this machine.
type Measurement struct {
	// Argon2Probe is one Argon2id run at the floor (64 MiB, t=2) with the
	// chosen thread count.
	Argon2Probe time.Duration
	// PBKDF2Probe is one PBKDF2-HMAC-SHA512 run at 100,000 iterations.
	PBKDF2Probe time.Duration
	// Elapsed is one full run of both KDFs, concurrently, with the chosen
	// parameters: the expected unlock time.
	Elapsed time.Duration
	// AtFloor reports that the floors alone exceed the target, so the
	// floors were chosen.
	AtFloor bool
}

// tuner runs the two KDFs and times them; tests replace it.
type tuner struct {
	numCPU  int
	argon2  func(memKiB, time uint32, threads uint8) time.Duration
	pbkdf2  func(iter uint32) time.Duration
	cascade func(p Params) time.Duration
}

func realTuner() tuner {
	salt := make([]byte, SaltSize)
	pw := []byte("safehold kdf tune")
	a := func(m, t uint32, th uint8) time.Duration {
		start := time.Now()
		argon2.IDKey(pw, salt, t, m, th, argon2KeyLen)
		return time.Since(start)
	}
	pb := func(iter uint32) time.Duration {
		start := time.Now()
		_, _ = pbkdf2.Key(sha512.New, string(pw), salt, int(iter), pbkdf2KeyLen)
		return time.Since(start)
	}
	return tuner{
		numCPU: runtime.NumCPU(),
		argon2: a,
		pbkdf2: pb,
		cascade: func(p Params) time.Duration {
			start := time.Now()
			var wg sync.WaitGroup
			wg.Go(func() { a(p.Argon2Memory, p.Argon2Time, p.Argon2Threads) })
			pb(p.PBKDF2Iterations)
			wg.Wait()
			return time.Since(start)
		},
	}
}

// Tune measures this machine and returns parameters whose derivation takes
// about target, never below the floors, with Argon2id memory at most
// maxMemoryKiB. Memory is raised first (up to maxMemoryKiB, in whole MiB),
// then passes; PBKDF2 runs beside Argon2id, so it is given the whole target
// too. Tuning costs about twice the target plus half a second.
func Tune(target time.Duration, maxMemoryKiB uint32) (Params, Measurement, error) {
	return realTuner().tune(target, maxMemoryKiB)
}

func (tn tuner) tune(target time.Duration, maxMemoryKiB uint32) (Params, Measurement, error) {
	if target < MinTuneTarget || target > MaxTuneTarget {
		return Params{}, Measurement{}, fmt.Errorf("kdf: tune target %v outside %v..%v", target, MinTuneTarget, MaxTuneTarget)
	}
	if maxMemoryKiB < MinArgon2MemoryKiB {
		return Params{}, Measurement{}, fmt.Errorf("%w: memory limit %d KiB < %d KiB", ErrBelowFloor, maxMemoryKiB, MinArgon2MemoryKiB)
	}
	maxMemoryKiB = min(maxMemoryKiB, MaxArgon2MemoryKiB)

	// One core goes to PBKDF2; Argon2id gets the rest, up to 4 lanes.
	threads := uint8(min(max(tn.numCPU-1, 1), 4))
	p := Params{
		Argon2Memory:     MinArgon2MemoryKiB,
		Argon2Time:       MinArgon2Time,
		Argon2Threads:    threads,
		PBKDF2Iterations: MinPBKDF2Iterations,
	}
	var m Measurement
	m.Argon2Probe = max(tn.argon2(p.Argon2Memory, p.Argon2Time, threads), time.Microsecond)
	m.PBKDF2Probe = max(tn.pbkdf2(MinPBKDF2Iterations), time.Microsecond)

	// Argon2id's cost is close to linear in memory × passes. budget is the
	// number of KiB-passes that fit in target.
	budget := float64(target) / float64(m.Argon2Probe) * MinArgon2MemoryKiB * MinArgon2Time
	if budget <= MinArgon2MemoryKiB*MinArgon2Time {
		m.AtFloor = true
	} else {
		mem := min(budget/MinArgon2Time, float64(maxMemoryKiB))
		mem = max(float64(uint32(mem)/1024*1024), MinArgon2MemoryKiB) // whole MiB
		passes := min(max(budget/mem, MinArgon2Time), MaxArgon2Time)
		p.Argon2Memory = uint32(mem)
		p.Argon2Time = uint32(passes)
	}

	iter := float64(target) / float64(m.PBKDF2Probe) * MinPBKDF2Iterations
	iter = min(max(iter, MinPBKDF2Iterations), MaxPBKDF2Iterations)
	p.PBKDF2Iterations = uint32(iter) / 1000 * 1000
	if p.PBKDF2Iterations <= MinPBKDF2Iterations {
		p.PBKDF2Iterations = MinPBKDF2Iterations
		m.AtFloor = true
	}

	if err := p.Check(false); err != nil {
		return Params{}, Measurement{}, fmt.Errorf("kdf: tuning produced invalid parameters: %w", err)
	}
	m.Elapsed = tn.cascade(p)
	return p, m, nil
}
