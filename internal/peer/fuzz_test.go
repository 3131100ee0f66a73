package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
)

var update = flag.Bool("update", false, "rewrite the seed corpora in testdata/fuzz")

// FuzzMessage checks that whatever decode accepts re-encodes byte for
// byte and sizes to its length, and that everything else is ErrProtocol.
// The seeds in testdata/fuzz/FuzzMessage are one message of each type
// (written by TestFuzzCorpus -update).
func FuzzMessage(f *testing.F) {
	f.Add([]byte{Version, byte(typeAccount)})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decode error is not ErrProtocol: %v", err)
			}
			return
		}
		out, err := encode(nil, m)
		if err != nil {
			t.Fatalf("encode of a decoded %s message: %v", m.typ(), err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("decode then encode is not byte-identical:\n%x\n%x", b, out)
		}
		if n, err := size(m); err != nil || n != len(b) {
			t.Fatalf("size of a decoded %s message = %d, %v; want %d", m.typ(), n, err, len(b))
		}
	})
}

// FuzzServe feeds a sequence of messages to Serve over a scripted
// connection, with a backing that answers from fixed data. Serve must not
// panic, must send only well-formed responses and stream items, must end,
// and may return nil only once it has read every message. The input is
// the messages, each a u32 big-endian length and that many bytes (a length
// past the end takes the rest). The seeds in testdata/fuzz/FuzzServe are
// request sequences (written by TestFuzzCorpus -update).
func FuzzServe(f *testing.F) {
	f.Add(script(&accountReq{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := &scripted{in: splitMessages(data)}
		err := Serve(context.Background(), conn, fuzzBacking{})
		if conn.bad != nil {
			t.Fatal(conn.bad)
		}
		if err == nil && len(conn.in) > 0 {
			t.Fatalf("Serve returned nil with %d messages unread", len(conn.in))
		}
		// The scripted connection fails only by ending, which is an
		// error inside a request's stream.
		if err != nil && !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) {
			t.Fatalf("Serve: %v", err)
		}
	})
}

// splitMessages splits a fuzz input into messages.
func splitMessages(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 4 {
			return append(out, data)
		}
		n := min(int(binary.BigEndian.Uint32(data)), len(data)-4)
		out = append(out, data[4:4+n])
		data = data[4+n:]
	}
	return out
}

// script joins messages into a FuzzServe input.
func script(ms ...any) []byte {
	var out []byte
	for _, m := range ms {
		b, ok := m.([]byte)
		if !ok {
			var err error
			if b, err = encode(nil, m.(message)); err != nil {
				panic(err)
			}
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out
}

// scripted is a MsgConn that reads from a list and checks what is written.
type scripted struct {
	in  [][]byte
	bad error // the first malformed message written
}

func (s *scripted) ReadMessage() ([]byte, error) {
	if len(s.in) == 0 {
		return nil, io.EOF
	}
	m := s.in[0]
	s.in = s.in[1:]
	return slices.Clone(m), nil
}

func (s *scripted) WriteMessage(b []byte) error {
	m, err := decode(b)
	switch {
	case s.bad != nil:
	case err != nil:
		s.bad = fmt.Errorf("Serve wrote a malformed message: %w", err)
	case m.typ() < typeEntry:
		s.bad = fmt.Errorf("Serve wrote a %s request", m.typ())
	}
	return nil
}

func (s *scripted) Close() error { return nil }

// fuzzBacking answers from fixed data and reads uploads.
type fuzzBacking struct{}

var _ remote.Remote = fuzzBacking{}

func (fuzzBacking) Prelogin(_ context.Context, email string) ([]byte, error) {
	if email == "" {
		return nil, remote.ErrNotFound
	}
	return make([]byte, 80), nil
}

func (fuzzBacking) Register(_ context.Context, r api.RegisterRequest) error {
	if r.Email == "taken" {
		return fmt.Errorf("%w: %s", remote.ErrExists, r.Email)
	}
	return nil
}

func (fuzzBacking) Login(_ context.Context, r api.LoginRequest) error {
	if r.TOTP == "" {
		return remote.ErrTOTPRequired
	}
	return nil
}

func (fuzzBacking) Account(context.Context) (api.Account, error) {
	return api.Account{Account: "a", Email: "e@example.com", KDF: make([]byte, 80), Epoch: 1, Document: []byte("doc")}, nil
}

func (fuzzBacking) UpdateAccount(_ context.Context, u api.AccountUpdate) (uint64, error) {
	if u.Base != 1 {
		return 0, fmt.Errorf("%w: account document is at epoch 1, not %d", remote.ErrStale, u.Base)
	}
	return 2, nil
}

func (fuzzBacking) Vaults(context.Context) ([]api.Vault, error) {
	return []api.Vault{{Vault: "v1", Record: []byte("r"), Head: 2}, {Vault: "v2", Head: 0}}, nil
}

func (fuzzBacking) PutVault(context.Context, string, []byte) error { return nil }

func (fuzzBacking) Pull(_ context.Context, vault string, since uint64) (api.LogPage, error) {
	if vault != "v1" {
		return api.LogPage{}, remote.ErrNotFound
	}
	e := api.Entry{Body: []byte("body"), Sig: []byte("sig"), Payload: []byte("payload")}
	if since >= 2 {
		return api.LogPage{Head: 2, Entries: []api.Entry{}}, nil
	}
	return api.LogPage{Head: 2, Entries: slices.Repeat([]api.Entry{e}, int(2-since))}, nil
}

func (fuzzBacking) Push(_ context.Context, vault string, base uint64, entries []api.Entry) (uint64, error) {
	if base != 0 {
		return 0, fmt.Errorf("%w: vault %s is at 0, not %d", remote.ErrStale, vault, base)
	}
	if bytes.Equal(entries[0].Body, []byte("bad")) {
		return 0, fmt.Errorf("%w: entry 1: bad body", remote.ErrRefused)
	}
	return uint64(len(entries)), nil
}

func (fuzzBacking) PutBlob(_ context.Context, vault, _, _ string, chunks iter.Seq2[[]byte, error]) error {
	if vault != "v1" {
		return remote.ErrNotFound
	}
	for _, err := range chunks {
		if err != nil {
			return err
		}
	}
	return nil
}

func (fuzzBacking) GetBlob(_ context.Context, _, _, blob string, fn func(int, []byte) error) error {
	if blob != "b1" {
		return remote.ErrNotFound
	}
	for i := range 2 {
		if err := fn(i, bytes.Repeat([]byte{byte(i)}, 40)); err != nil {
			return err
		}
	}
	return nil
}

func (fuzzBacking) Close() error { return nil }

// serveSeeds are the FuzzServe seeds: request sequences, valid and not.
func serveSeeds() map[string][]byte {
	chunk := bytes.Repeat([]byte{0xc5}, 40)
	entry := &entryMsg{E: api.Entry{Body: []byte("body"), Sig: []byte("sig"), Payload: []byte("payload")}}
	return map[string][]byte{
		"account": script(
			&registerReq{R: api.RegisterRequest{Email: "ann@example.com", Account: "a", KDF: make([]byte, 80), LoginKey: make([]byte, 32), Document: []byte("doc"), Device: api.DeviceHello{ID: "d"}}},
			&loginReq{R: api.LoginRequest{Email: "ann@example.com", LoginKey: make([]byte, 32), Device: api.DeviceHello{ID: "d"}, TOTP: "123456"}},
			&preloginReq{Email: "ann@example.com"},
			&accountReq{},
			&updateAccountReq{U: api.AccountUpdate{Base: 1, Document: []byte("doc2"), Credentials: &api.Credentials{KDF: make([]byte, 80), LoginKey: make([]byte, 32)}}},
			&updateAccountReq{U: api.AccountUpdate{Base: 5, Document: []byte("doc3")}},
		),
		"vaults":         script(&vaultsReq{}, &putVaultReq{Vault: "v1", Record: []byte("record")}),
		"pull":           script(&pullReq{Vault: "v1", Since: 0}, &pullReq{Vault: "v9", Since: 0}),
		"push":           script(&pushReq{Vault: "v1", Base: 0, Count: 2}, entry, entry, &pushReq{Vault: "v1", Base: 3, Count: 1}, entry),
		"push-short":     script(&pushReq{Vault: "v1", Base: 0, Count: 3}, entry),
		"put-blob":       script(&putBlobReq{Vault: "v1", Item: "i1", Blob: "b1"}, &chunkMsg{Data: chunk}, &chunkMsg{Data: chunk}, &endMsg{Count: 2}),
		"put-blob-abort": script(&putBlobReq{Vault: "v1", Item: "i1", Blob: "b1"}, &chunkMsg{Data: chunk}, &abortMsg{}, &accountReq{}),
		"put-blob-drain": script(&putBlobReq{Vault: "v9", Item: "i1", Blob: "b1"}, &chunkMsg{Data: chunk}, &endMsg{Count: 1}, &accountReq{}),
		"get-blob":       script(&getBlobReq{Vault: "v1", Item: "i1", Blob: "b1"}, &getBlobReq{Vault: "v1", Item: "i1", Blob: "b2"}),
		"truncated":      script([]byte{Version, byte(typePull), 0, 0, 0, 2, 'v'}),
		"other-version":  script([]byte{2, byte(typeAccount)}),
	}
}

// TestFuzzCorpus checks that the committed seed corpora are the ones
// serveSeeds and samples make; -update rewrites them.
func TestFuzzCorpus(t *testing.T) {
	want := map[string]string{}
	add := func(target, name string, b []byte) {
		want[filepath.Join("testdata", "fuzz", target, name)] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
	}
	for name, b := range serveSeeds() {
		add("FuzzServe", name, b)
	}
	for _, m := range samples() {
		b, err := encode(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		add("FuzzMessage", m.typ().String(), b)
	}
	if *update {
		for _, target := range []string{"FuzzServe", "FuzzMessage"} {
			if err := os.RemoveAll(filepath.Join("testdata", "fuzz", target)); err != nil {
				t.Fatal(err)
			}
		}
		for name, content := range want {
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	have, err := filepath.Glob(filepath.Join("testdata", "fuzz", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range have {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is not a seed the generator makes (run go test -run TestFuzzCorpus -update)", name)
		}
	}
	for name, content := range want {
		got, err := os.ReadFile(name)
		if err != nil || string(got) != content {
			t.Errorf("%s is missing or out of date (run go test -run TestFuzzCorpus -update): %v", name, err)
		}
	}
	if len(want) < 30 || !strings.Contains(want[filepath.Join("testdata", "fuzz", "FuzzServe", "push")], "go test fuzz v1") {
		t.Errorf("the generator made %d seeds", len(want))
	}
}
