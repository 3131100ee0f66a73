package vault

import (
	"bytes"
	"testing"
)

func TestRecordCanonical(t *testing.T) {
	rec := &headRecord{Version: 1, Vault: "v", Seq: 2, Hash: []byte{1, 2}}
	b := encodeRecord(rec)
	var got headRecord
	if err := decodeRecord(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{"v":1,"vault":"v","seq":2,"hash":"AQI="} `,          // trailing space
		`{"vault":"v","v":1,"seq":2,"hash":"AQI="}`,           // reordered
		`{"v":1,"vault":"v","seq":2,"hash":"AQI=","extra":1}`, // unknown field
		`{"v":1,"vault":"v","seq":2,"hash":"AQI="}{}`,         // trailing value
		`{"v":1,"vault":"\u0076","seq":2,"hash":"AQI="}`,      // escaped form
	} {
		var h headRecord
		if err := decodeRecord([]byte(bad), &h); err == nil {
			t.Errorf("accepted non-canonical %s", bad)
		}
	}
}

func TestRecordMAC(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	rec := &headRecord{Version: 1, Vault: "v", Seq: 2, Hash: []byte{1, 2}}
	raw := setMAC(key, "head", rec, &rec.MAC)
	var got headRecord
	if err := decodeRecord(raw, &got); err != nil {
		t.Fatal(err)
	}
	if !checkMAC(key, "head", &got, &got.MAC) {
		t.Fatal("MAC does not verify")
	}
	if checkMAC(key, "vault", &got, &got.MAC) {
		t.Fatal("MAC verifies for another record kind")
	}
	got.Seq = 1
	if checkMAC(key, "head", &got, &got.MAC) {
		t.Fatal("MAC verifies after an edit")
	}
}

// FuzzDecodeRecord: nothing panics, and only the canonical encoding is
// accepted, so what decodes re-encodes byte for byte.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(&accountRecord{Version: 1, Account: "a", KDF: []byte{1}, Devices: []deviceInfo{{ID: "d"}}}))
	f.Add(encodeRecord(&vaultRecord{Version: 1, Vault: "v"}))
	f.Add(encodeRecord(&headRecord{Version: 1, Vault: "v", Seq: 3}))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&accountRecord{}, &vaultRecord{}, &headRecord{}} {
			if decodeRecord(data, v) == nil && !bytes.Equal(encodeRecord(v), data) {
				t.Fatalf("accepted a non-canonical record")
			}
		}
	})
}
