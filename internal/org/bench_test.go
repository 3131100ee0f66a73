package org

import "testing"

func BenchmarkReplay(b *testing.B) {
	f := newFixture(b)
	b.ReportMetric(float64(len(f.log)), "statements")
	for b.Loop() {
		if _, err := Replay(f.s.Org, f.root.Public(), f.log); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	f := newFixture(b)
	s0, err := Replay(f.s.Org, nil, f.log[:len(f.log)-1])
	if err != nil {
		b.Fatal(err)
	}
	last := f.log[len(f.log)-1]
	for b.Loop() {
		s := *s0
		if err := s.Apply(last); err != nil {
			b.Fatal(err)
		}
	}
}
