package channel

import (
	"context"
	"net"
	"testing"
)

// benchmarkStream sends b.N messages of size bytes from one Conn to another
// over loopback TCP and reads them on the other end.
func benchmarkStream(b *testing.B, size int) {
	cn, sn := tcpPair(b)
	ka, kb := testKeyPair()
	w, r := New(cn, ka, Options{}), New(sn, kb, Options{})
	defer w.Close()
	defer r.Close()
	msg := message(1, size)
	done := make(chan error, 1)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			if _, err := r.ReadMessage(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := w.WriteMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkThroughput is the frame layer's goal: at least 200 MB/s of
// 1 MiB messages over loopback TCP, both layers of encryption included.
func BenchmarkThroughput(b *testing.B) { benchmarkStream(b, 1<<20) }

// BenchmarkSmallMessages measures the per-frame cost.
func BenchmarkSmallMessages(b *testing.B) { benchmarkStream(b, 256) }

// BenchmarkHandshake measures one Noise XX + ML-KEM-768 handshake with
// Ed25519 identity proofs over net.Pipe.
func BenchmarkHandshake(b *testing.B) {
	alice, bob := trustedPair()
	ccfg, scfg := alice.config("initiator"), bob.config("responder")
	b.ReportAllocs()
	for b.Loop() {
		cn, sn := net.Pipe()
		errc := make(chan error, 1)
		go func() {
			_, err := Server(context.Background(), sn, scfg)
			errc <- err
		}()
		if _, err := Client(context.Background(), cn, ccfg); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		cn.Close()
		sn.Close()
	}
}
