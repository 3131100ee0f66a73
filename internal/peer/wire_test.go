package peer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote/frames"
	"github.com/safehold/safehold/internal/vlog"
)

// samples returns one message of each type, with every field set.
func samples() []message {
	chunk := bytes.Repeat([]byte{0xc5}, 40)
	entry := api.Entry{Body: []byte("body"), Sig: []byte("sig"), Payload: []byte("payload")}
	return []message{
		&preloginReq{Email: "ann@example.com"},
		&registerReq{R: api.RegisterRequest{Email: "ann@example.com", Account: "acct", KDF: []byte("kdf"), LoginKey: []byte("key"),
			Document: []byte("doc"), Device: api.DeviceHello{ID: "dev", Platform: "safe/1 linux"}}},
		&loginReq{R: api.LoginRequest{Email: "ann@example.com", LoginKey: []byte("key"), Device: api.DeviceHello{ID: "dev", Platform: "p"},
			TOTP: "123456", RecoveryCode: "rc"}},
		&accountReq{},
		&updateAccountReq{U: api.AccountUpdate{Base: 3, Document: []byte("doc"), Credentials: &api.Credentials{KDF: []byte("kdf"), LoginKey: []byte("key")}}},
		&vaultsReq{},
		&putVaultReq{Vault: "v1", Record: []byte("record")},
		&pullReq{Vault: "v1", Since: 7},
		&pushReq{Vault: "v1", Base: 7, Count: 2},
		&putBlobReq{Vault: "v1", Item: "i1", Blob: "b1"},
		&getBlobReq{Vault: "v1", Item: "i1", Blob: "b1"},
		&entryMsg{E: entry},
		&vaultMsg{V: api.Vault{Vault: "v1", Record: []byte("record"), Head: 9}},
		&chunkMsg{Data: chunk},
		&endMsg{Count: 2},
		&abortMsg{},
		&errorMsg{Code: codeStale, Detail: "vault v1 is at 9, not 7"},
		&doneMsg{},
		&kdfMsg{KDF: []byte("kdf")},
		&accountMsg{A: api.Account{Account: "acct", Email: "ann@example.com", KDF: []byte("kdf"), Epoch: 2, Document: []byte("doc"), TOTP: true}},
		&epochMsg{Epoch: 4},
		&vaultListMsg{Count: 1},
		&pageMsg{Head: 9, Count: 2},
		&headMsg{Head: 9},
	}
}

// TestRoundTrip checks every message type: encode, size and decode agree,
// and there is a sample of each.
func TestRoundTrip(t *testing.T) {
	seen := map[msgType]bool{}
	for _, m := range samples() {
		seen[m.typ()] = true
		b, err := encode(nil, m)
		if err != nil {
			t.Fatalf("%s: encode: %v", m.typ(), err)
		}
		if n, err := size(m); err != nil || n != len(b) {
			t.Errorf("%s: size = %d, %v; encoded %d bytes", m.typ(), n, err, len(b))
		}
		got, err := decode(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", m.typ(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%s: decoded %+v, want %+v", m.typ(), got, m)
		}
	}
	for t8 := range 256 {
		if newMessage(msgType(t8)) != nil && !seen[msgType(t8)] {
			t.Errorf("no sample of message type %s", msgType(t8))
		}
		if newMessage(msgType(t8)) == nil && !strings.HasPrefix(msgType(t8).String(), "0x") {
			t.Errorf("type %s has a name but no message", msgType(t8))
		}
	}
}

// TestVectors pins the byte layout with messages written by hand.
func TestVectors(t *testing.T) {
	for _, v := range []struct {
		hex string
		m   message
	}{
		{"01 08 00000002 7631 0000000000000007", &pullReq{Vault: "v1", Since: 7}},
		{"01 04", &accountReq{}},
		{"01 40 01 00000001 78", &errorMsg{Code: codeStale, Detail: "x"}},
		{"01 23 00000003", &endMsg{Count: 3}},
		{"01 46 0000000000000009 00000002", &pageMsg{Head: 9, Count: 2}},
		{"01 05 0000000000000001 00000001 64 00", &updateAccountReq{U: api.AccountUpdate{Base: 1, Document: []byte("d")}}},
		{"01 05 0000000000000001 00000000 01 00000001 6b 00000000",
			&updateAccountReq{U: api.AccountUpdate{Base: 1, Credentials: &api.Credentials{KDF: []byte("k")}}}},
		{"01 20 00000001 62 00000001 73 00000000", &entryMsg{E: api.Entry{Body: []byte("b"), Sig: []byte("s")}}},
		{"01 43 00000001 61 00000001 65 00000000 0000000000000002 01 00000000",
			&accountMsg{A: api.Account{Account: "a", Email: "e", Epoch: 2, TOTP: true}}},
	} {
		b, err := hex.DecodeString(strings.ReplaceAll(v.hex, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(b)
		if err != nil {
			t.Errorf("%s: decode: %v", v.hex, err)
			continue
		}
		if !reflect.DeepEqual(got, v.m) {
			t.Errorf("%s: decoded %+v, want %+v", v.hex, got, v.m)
		}
		if enc, err := encode(nil, v.m); err != nil || !bytes.Equal(enc, b) {
			t.Errorf("%s: encoded %x, %v", v.hex, enc, err)
		}
	}
}

// TestBounds checks each field's limit on both sides: the encoder refuses
// (without ErrProtocol), and the decoder refuses the same bytes, built by
// hand, with ErrProtocol.
func TestBounds(t *testing.T) {
	long := strings.Repeat("a", maxString+1)
	for _, v := range []struct {
		m   message
		raw []byte
	}{
		{&preloginReq{Email: long}, raw(0x01, strb(long))},
		{&putVaultReq{Vault: "v", Record: make([]byte, api.MaxDocument+1)}, raw(0x07, strb("v"), bin(make([]byte, api.MaxDocument+1)))},
		{&pushReq{Vault: "v", Count: 0}, raw(0x09, strb("v"), u64b(0), u32b(0))},
		{&pushReq{Vault: "v", Count: api.MaxAppend + 1}, raw(0x09, strb("v"), u64b(0), u32b(api.MaxAppend+1))},
		{&entryMsg{E: api.Entry{Payload: make([]byte, maxPayload+1)}}, raw(0x20, bin(nil), bin(nil), bin(make([]byte, maxPayload+1)))},
		{&entryMsg{E: api.Entry{Sig: make([]byte, vlog.MaxSig+1)}}, raw(0x20, bin(nil), bin(make([]byte, vlog.MaxSig+1)), bin(nil))},
		{&chunkMsg{Data: make([]byte, frames.Min-1)}, raw(0x22, bin(make([]byte, frames.Min-1)))},
		{&chunkMsg{Data: make([]byte, frames.Max+1)}, raw(0x22, bin(make([]byte, frames.Max+1)))},
		{&endMsg{Count: api.MaxBlobFrames + 1}, raw(0x23, u32b(api.MaxBlobFrames+1))},
		{&errorMsg{Code: 0}, raw(0x40, []byte{0}, strb(""))},
		{&errorMsg{Code: 1, Detail: strings.Repeat("x", maxDetail+1)}, raw(0x40, []byte{1}, strb(strings.Repeat("x", maxDetail+1)))},
		{&vaultListMsg{Count: MaxVaults + 1}, raw(0x45, u32b(MaxVaults+1))},
		{&pageMsg{Count: api.MaxPageLimit + 1}, raw(0x46, u64b(0), u32b(api.MaxPageLimit+1))},
		{&kdfMsg{KDF: make([]byte, maxKey+1)}, raw(0x42, bin(make([]byte, maxKey+1)))},
	} {
		if _, err := encode(nil, v.m); err == nil || errors.Is(err, ErrProtocol) {
			t.Errorf("%s: encode err = %v, want a refusal without ErrProtocol", v.m.typ(), err)
		}
		if _, err := size(v.m); err == nil {
			t.Errorf("%s: size accepted it", v.m.typ())
		}
		if _, err := decode(v.raw); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: decode err = %v, want ErrProtocol", v.m.typ(), err)
		}
	}
}
