package folder

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/remotetest"
	"github.com/safehold/safehold/internal/sign"
)

// A writer that loses the race on a later entry of its push keeps the
// entries it linked before and hears ErrStale; its temporary files go.
func TestLostRaceMidPush(t *testing.T) {
	ctx := t.Context()
	f, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dev := remotetest.NewID()
	if err := f.Register(ctx, api.RegisterRequest{
		Email: "a@example.com", Account: remotetest.NewID(), KDF: remotetest.KDFHeader(t),
		Document: []byte("d"), Device: api.DeviceHello{ID: dev},
	}); err != nil {
		t.Fatal(err)
	}
	key, err := sign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w := remotetest.NewWriter(remotetest.NewID(), dev, key)
	if err := f.PutVault(ctx, w.Vault(), []byte("r")); err != nil {
		t.Fatal(err)
	}
	ld := filepath.Join(f.vaultDir(w.Vault()), logDir)
	f.beforeLink = func() {
		if err := os.WriteFile(filepath.Join(ld, seqName(2)), []byte("theirs"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	entries := w.Puts(t, 3)
	if _, err := f.Push(ctx, w.Vault(), 0, entries); !errors.Is(err, remote.ErrStale) {
		t.Fatalf("Push: err = %v, want ErrStale", err)
	}
	got, err := readEntry(filepath.Join(ld, seqName(1)))
	if err != nil || string(got.Body) != string(entries[0].Body) {
		t.Errorf("entry 1 after the lost race: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ld, seqName(3))); err == nil {
		t.Errorf("entry 3 was written after the collision")
	}
	names, err := readNames(ld)
	if err != nil || len(names) != 2 {
		t.Errorf("log directory holds %q, want entries 1 and 2 only", names)
	}
}

func TestEntryFileRoundTrip(t *testing.T) {
	for _, e := range []api.Entry{
		{Body: []byte("b"), Sig: []byte("s")},
		{Body: []byte("body"), Sig: make([]byte, 3309), Payload: []byte("payload")},
	} {
		got, err := decodeEntry(encodeEntry(e))
		if err != nil || string(got.Body) != string(e.Body) || string(got.Sig) != string(e.Sig) || string(got.Payload) != string(e.Payload) {
			t.Errorf("round trip of %d-byte body: %v", len(e.Body), err)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(api.Entry{Body: []byte("b"), Sig: []byte("s"), Payload: []byte("p")}))
	f.Add([]byte("SHFE\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		if string(encodeEntry(e)) != string(b) {
			t.Fatalf("decode then encode changed the bytes")
		}
	})
}
