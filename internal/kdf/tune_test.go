package kdf

import (
	"errors"
	"testing"
	"time"
)

// fakeTuner models a machine where Argon2id costs perKiBPass per KiB and
// pass, and PBKDF2 costs perIter per iteration.
func fakeTuner(cpus int, perKiBPass, perIter time.Duration) (tuner, *[]Params) {
	var ran []Params
	a := func(m, t uint32, _ uint8) time.Duration { return time.Duration(m) * time.Duration(t) * perKiBPass }
	pb := func(i uint32) time.Duration { return time.Duration(i) * perIter }
	return tuner{
		numCPU: cpus,
		argon2: a,
		pbkdf2: pb,
		cascade: func(p Params) time.Duration {
			ran = append(ran, p)
			return max(a(p.Argon2Memory, p.Argon2Time, p.Argon2Threads), pb(p.PBKDF2Iterations))
		},
	}, &ran
}

func TestTuneArithmetic(t *testing.T) {
	// 64 MiB × 2 passes takes 131072 × 2 µs ≈ 262 ms; 100k PBKDF2 takes 60 ms.
	tn, ran := fakeTuner(2, 2*time.Microsecond, 600*time.Nanosecond)
	p, m, err := tn.tune(time.Second, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(false); err != nil {
		t.Fatal(err)
	}
	// Budget is 500,000 KiB-passes: 244 MiB (rounded down to whole MiB) at t=2.
	if p.Argon2Memory != 244*1024 || p.Argon2Time != 2 || p.Argon2Threads != 1 {
		t.Fatalf("argon2 params %+v", p)
	}
	if p.PBKDF2Iterations != 1_666_000 {
		t.Fatalf("pbkdf2 iterations %d", p.PBKDF2Iterations)
	}
	if m.AtFloor || m.Elapsed > time.Second || m.Elapsed < 900*time.Millisecond || len(*ran) != 1 || (*ran)[0] != p {
		t.Fatalf("measurement %+v, runs %v", m, *ran)
	}

	// A memory limit moves the budget to passes.
	p, _, err = tn.tune(time.Second, 100*1024)
	if err != nil {
		t.Fatal(err)
	}
	if p.Argon2Memory != 100*1024 || p.Argon2Time != 4 {
		t.Fatalf("limited memory: %+v", p)
	}

	// More cores: up to 4 lanes, one core left for PBKDF2.
	tn8, _ := fakeTuner(8, 2*time.Microsecond, 600*time.Nanosecond)
	if p, _, _ = tn8.tune(time.Second, 1<<20); p.Argon2Threads != 4 {
		t.Fatalf("threads on 8 cores = %d", p.Argon2Threads)
	}

	// A slow machine gets the floors, never less.
	slow, _ := fakeTuner(1, 20*time.Microsecond, 10*time.Microsecond)
	p, m, err = slow.tune(200*time.Millisecond, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if p.Argon2Memory != MinArgon2MemoryKiB || p.Argon2Time != MinArgon2Time || p.PBKDF2Iterations != MinPBKDF2Iterations || !m.AtFloor {
		t.Fatalf("slow machine: %+v %+v", p, m)
	}

	// A very fast machine is held to the ceilings.
	fast, _ := fakeTuner(2, time.Nanosecond, time.Nanosecond/100)
	p, _, err = fast.tune(30*time.Second, MaxArgon2MemoryKiB+5)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(false); err != nil || p.Argon2Memory != MaxArgon2MemoryKiB || p.PBKDF2Iterations != MaxPBKDF2Iterations || p.Argon2Time > MaxArgon2Time {
		t.Fatalf("fast machine: %+v, %v", p, err)
	}
}

func TestTuneRejects(t *testing.T) {
	tn, ran := fakeTuner(2, time.Microsecond, time.Microsecond)
	if _, _, err := tn.tune(time.Second, MinArgon2MemoryKiB-1); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("low memory limit: %v", err)
	}
	for _, d := range []time.Duration{0, MinTuneTarget - 1, MaxTuneTarget + 1} {
		if _, _, err := tn.tune(d, 1<<20); err == nil {
			t.Fatalf("target %v accepted", d)
		}
	}
	if len(*ran) != 0 {
		t.Fatal("work done before validation")
	}
}

// TestTuneReal runs the real measurement once with the smallest target; on
// any machine that yields valid parameters at or above the floors.
func TestTuneReal(t *testing.T) {
	if testing.Short() {
		t.Skip("measures Argon2id at 64 MiB")
	}
	p, m, err := Tune(MinTuneTarget, MinArgon2MemoryKiB)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(false); err != nil {
		t.Fatal(err)
	}
	if m.Argon2Probe <= 0 || m.PBKDF2Probe <= 0 || m.Elapsed <= 0 {
		t.Fatalf("measurement %+v", m)
	}
	t.Logf("params %+v, measurement %+v", p, m)
}
