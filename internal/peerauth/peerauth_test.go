package peerauth

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/channel"
	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/folder"
	"github.com/safehold/safehold/internal/remote/remotetest"
	"github.com/safehold/safehold/internal/sign"
)

// device is a test device: an id and a signing key.
type device struct {
	id  string
	key *sign.PrivateKey
}

func newDevice(t testing.TB, id string) device {
	t.Helper()
	k, err := sign.GenerateKey(random.NewDeterministic([]byte("peerauth test " + id)))
	if err != nil {
		t.Fatal(err)
	}
	return device{id: id, key: k}
}

func (d device) signer() Signer {
	return func(role string, binding []byte) (string, []byte, error) {
		sig, err := d.key.Sign(Context, Message(role, binding))
		return d.id, sig, err
	}
}

// trust is a trusted list a test can change between connections.
type trust struct {
	mu   sync.Mutex
	keys map[string]*sign.PublicKey
}

func trustOf(ds ...device) *trust {
	t := &trust{keys: map[string]*sign.PublicKey{}}
	for _, d := range ds {
		t.keys[d.id] = d.key.Public()
	}
	return t
}

func (t *trust) list() (map[string]*sign.PublicKey, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]*sign.PublicKey, len(t.keys))
	for k, v := range t.keys {
		out[k] = v
	}
	return out, nil
}

func (t *trust) drop(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, id)
}

// listener serves a registered folder store on loopback as device srv.
type listener struct {
	addr     string
	sessions chan Session
	vault    string
}

func listen(t testing.TB, srv device, trusted *trust, dir string) *listener {
	t.Helper()
	f, err := folder.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = f.Register(ctx, api.RegisterRequest{Email: "peer@example.com", Account: remotetest.NewID(), KDF: remotetest.KDFHeader(t),
		LoginKey: make([]byte, api.LoginKeySize), Document: []byte("doc"), Device: api.DeviceHello{ID: remotetest.NewID()}})
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{sessions: make(chan Session, 16), vault: remotetest.NewID()}
	if err := f.PutVault(ctx, l.vault, []byte("record")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- Serve(sctx, ln, srv.id, srv.signer(), trusted.list, func() (remote.Remote, error) { return folder.Open(dir) }, func(s Session) { l.sessions <- s })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return l
}

func TestPeersOfOneAccountSync(t *testing.T) {
	srv, cli := newDevice(t, "server-device"), newDevice(t, "client-device")
	l := listen(t, srv, trustOf(srv, cli), t.TempDir())
	r, err := Dial(context.Background(), l.addr, cli.id, cli.signer(), trustOf(srv, cli).list)
	if err != nil {
		t.Fatal(err)
	}
	vaults, err := r.Vaults(context.Background())
	if err != nil || len(vaults) != 1 || vaults[0].Vault != l.vault {
		t.Fatalf("Vaults through the peer = %v, %v", vaults, err)
	}
	r.Close()
	if s := <-l.sessions; s.Err != nil || s.Device != cli.id {
		t.Fatalf("session = %+v", s)
	}
}

func TestUntrustedDeviceIsRefusedInTheHandshake(t *testing.T) {
	srv, cli, stranger := newDevice(t, "server-device"), newDevice(t, "client-device"), newDevice(t, "stranger")
	l := listen(t, srv, trustOf(srv, cli), t.TempDir())

	// A device the listener does not trust.
	_, err := Dial(context.Background(), l.addr, stranger.id, stranger.signer(), trustOf(srv).list)
	if !errors.Is(err, channel.ErrRefused) {
		t.Fatalf("a stranger's dial = %v, want channel.ErrRefused", err)
	}
	if s := <-l.sessions; !errors.Is(s.Err, ErrUntrusted) {
		t.Fatalf("listener's session = %+v, want ErrUntrusted", s)
	}

	// A listener the dialling device does not trust (someone else's
	// device at the address it was given).
	_, err = Dial(context.Background(), l.addr, cli.id, cli.signer(), trustOf(cli).list)
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("dial to an untrusted listener = %v, want ErrUntrusted", err)
	}
	<-l.sessions

	// A device that claims a trusted id with another key.
	impostor := device{id: cli.id, key: stranger.key}
	if _, err := Dial(context.Background(), l.addr, impostor.id, impostor.signer(), trustOf(srv).list); !errors.Is(err, channel.ErrRefused) {
		t.Fatalf("an impostor's dial = %v, want channel.ErrRefused", err)
	}
	<-l.sessions

	// A listener that sends back the client's own id.
	mirror := newDevice(t, "mirror")
	l2 := listen(t, device{id: cli.id, key: mirror.key}, trustOf(cli), t.TempDir())
	// (the listener, which verifies first, refuses a client with its own
	// id; either way no session starts)
	if _, err := Dial(context.Background(), l2.addr, cli.id, cli.signer(), trustOf(cli).list); !errors.Is(err, ErrUntrusted) && !errors.Is(err, channel.ErrRefused) {
		t.Fatalf("a listener claiming to be this device = %v, want a refusal", err)
	}
	if s := <-l2.sessions; !errors.Is(s.Err, ErrUntrusted) {
		t.Fatalf("the listener's session = %+v, want ErrUntrusted", s)
	}
	// A dialler that claims the listener's own id is refused by it.
	l3 := listen(t, srv, trustOf(srv, cli), t.TempDir())
	if _, err := Dial(context.Background(), l3.addr, srv.id, srv.signer(), trustOf(srv).list); !errors.Is(err, channel.ErrRefused) {
		t.Fatalf("a dialler with the listener's own id = %v, want channel.ErrRefused", err)
	}
}

func TestRevokedDeviceIsRefusedFromTheNextConnection(t *testing.T) {
	srv, cli := newDevice(t, "server-device"), newDevice(t, "client-device")
	tr := trustOf(srv, cli)
	l := listen(t, srv, tr, t.TempDir())
	r, err := Dial(context.Background(), l.addr, cli.id, cli.signer(), trustOf(srv).list)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	<-l.sessions
	tr.drop(cli.id) // revoked
	if _, err := Dial(context.Background(), l.addr, cli.id, cli.signer(), trustOf(srv).list); !errors.Is(err, channel.ErrRefused) {
		t.Fatalf("a revoked device's dial = %v, want channel.ErrRefused", err)
	}
}

// BenchmarkPeerAttachments: an attachment's sealed chunks through a real
// peer connection on loopback TCP (Noise handshake done once, the
// double-AEAD frame layer, the peer protocol) into the listener's folder
// store and back. Set PEER_BENCH_DIR to put the store on another file
// system (a tmpfs measures the network path without the disk).
func BenchmarkPeerAttachments(b *testing.B) {
	const chunks, chunkSize = 1024, 65536 + 32 // 64 MiB of sealed chunks
	srv, cli := newDevice(b, "server-device"), newDevice(b, "client-device")
	dir := b.TempDir()
	if d := os.Getenv("PEER_BENCH_DIR"); d != "" {
		var err error
		if dir, err = os.MkdirTemp(d, "peerbench"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	l := listen(b, srv, trustOf(srv, cli), dir)
	r, err := Dial(context.Background(), l.addr, cli.id, cli.signer(), trustOf(srv).list)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	chunk := make([]byte, chunkSize)
	for i := range chunk {
		chunk[i] = byte(i * 31)
	}
	ctx := context.Background()
	var got atomic.Int64
	b.SetBytes(2 * chunks * chunkSize) // up and down
	for b.Loop() {
		err := r.PutBlob(ctx, l.vault, "item", "blob", func(yield func([]byte, error) bool) {
			for range chunks {
				if !yield(chunk, nil) {
					return
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		err = r.GetBlob(ctx, l.vault, "item", "blob", func(_ int, c []byte) error { got.Add(int64(len(c))); return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	if got.Load() == 0 {
		b.Fatal("nothing came back")
	}
}

// TestConformanceOverTheNetwork: a peer is just another remote, all the
// way down: the conformance suite every remote passes, through a real
// TCP connection, the Noise+ML-KEM handshake, the frame layer and the
// peer protocol, into a listener's empty folder store.
func TestConformanceOverTheNetwork(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Remote {
		srv, cli := newDevice(t, "server-device"), newDevice(t, "client-device")
		dir := t.TempDir()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() {
			served <- Serve(ctx, ln, srv.id, srv.signer(), trustOf(cli).list, func() (remote.Remote, error) { return folder.Open(dir) }, nil)
		}()
		r, err := Dial(ctx, ln.Addr().String(), cli.id, cli.signer(), trustOf(srv).list)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			r.Close()
			cancel()
			if err := <-served; err != nil {
				t.Error(err)
			}
		})
		return r
	})
}
