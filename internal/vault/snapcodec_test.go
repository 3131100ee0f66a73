package vault

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func sampleSnapshot() *snapshot {
	d := bytes.Repeat([]byte{7}, 64)
	return &snapshot{
		Version: 1, Vault: "v1", Seq: 3, Head: bytes.Repeat([]byte{9}, 64),
		Entries: []snapshotEntry{{Item: "a", Seq: 1, Op: 1, Revision: 1, Digest: d}, {Item: "b", Seq: 3, Op: 2, Revision: 2, Digest: make([]byte, 64)}},
		Views: []*Overview{{ID: "a", Vault: "v1", Type: "login", Title: "Tïtle", Username: "u", URLs: []string{"https://x", "https://y"},
			Tags: []string{"t"}, Folder: "F/G", Favorite: true, HasTOTP: true, Attachments: 2, Conflicts: 1,
			Modified: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Revision: 1}},
	}
}

func TestSnapshotCodecRoundTrip(t *testing.T) {
	snap := sampleSnapshot()
	for _, o := range snap.Views {
		o.setLower()
	}
	enc := encodeSnapshot(snap)
	got, err := decodeSnapshot(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, snap) {
		t.Fatalf("round trip:\n%+v\n%+v", got, snap)
	}
	if !bytes.Equal(encodeSnapshot(got), enc) {
		t.Fatal("re-encoding differs")
	}
	for _, cut := range []int{0, 4, 5, 20, len(enc) - 1} {
		if _, err := decodeSnapshot(enc[:cut]); !errors.Is(err, errSnapshot) {
			t.Errorf("truncated at %d: %v", cut, err)
		}
	}
	if _, err := decodeSnapshot(append(bytes.Clone(enc), 0)); !errors.Is(err, errSnapshot) {
		t.Errorf("trailing byte accepted: %v", err)
	}
}

// FuzzDecodeSnapshot: nothing panics or allocates beyond the input, and
// what decodes re-encodes to the same bytes.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(sampleSnapshot()))
	f.Add([]byte(snapshotMagic + "\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := decodeSnapshot(data)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeSnapshot(snap), data) {
			t.Fatal("round trip changed the bytes")
		}
	})
}
