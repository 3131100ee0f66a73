package channel

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

var update = flag.Bool("update", false, "rewrite testdata/frames-v1.json")

const frameVectorFile = "testdata/frames-v1.json"

// frameVectors is testdata/frames-v1.json: the exact bytes one end of a
// connection made by New sends from fixed keys (docs/design.md §16.3,
// "Frames"). All byte strings are hex.
type frameVectors struct {
	Comment       string        `json:"comment"`
	SendKey       string        `json:"send_key"` // the sender's Keys.Send (the receiver's Recv)
	RecvKey       string        `json:"recv_key"` // the sender's Keys.Recv (the receiver's Send)
	RekeyMessages uint64        `json:"rekey_messages"`
	Frames        []frameVector `json:"frames"`
}

type frameVector struct {
	Name    string `json:"name"`
	Type    string `json:"type"`    // data, rekey or close
	Counter uint64 `json:"counter"` // as in the header
	Label   byte   `json:"label"`   // direction label bound into the AD
	Key     string `json:"key"`     // direction key the frame is sealed under
	Payload string `json:"payload"` // plaintext payload
	Frame   string `json:"frame"`   // header || ciphertext, as sent
}

// vectorMessages are the payloads of the data frames, in order.
var vectorMessages = [][]byte{
	[]byte("hello, device"),
	[]byte("second message"),
	[]byte("after the rekey"),
}

// vectorKeys are the fixed direction keys of the vectors: the sender's
// Send is 0x10..0x2f, its Recv 0x80..0x9f (testKeyPair).
func vectorKeys() (sender, receiver Keys) { return testKeyPair() }

// vectorOptions: a rekey after two data frames; the interval is far
// longer than any test run, so only the count triggers it.
func vectorOptions(rekey uint64) Options {
	return Options{RekeyMessages: rekey, RekeyInterval: 24 * time.Hour}
}

// makeFrameVectors produces the vectors with New over an in-memory conn:
// two data frames (counters 0 and 1), then a rekey frame (2) and the data
// frame after it (3) written together by the third WriteMessage, then
// Close's close frame (4).
func makeFrameVectors(t *testing.T) frameVectors {
	t.Helper()
	ks, _ := vectorKeys()
	const rekey = 2
	c, buf := recorder(t, ks, vectorOptions(rekey))
	var frames [][]byte
	take := func() {
		frames = append(frames, splitFrames(t, bytes.Clone(buf.Bytes()))...)
		buf.Reset()
	}
	for _, m := range vectorMessages {
		if err := c.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
		take()
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	take()

	label, _ := directionLabels(&ks.Send, &ks.Recv)
	key0 := ks.Send
	key1 := [KeySize]byte(hkdfExpand(t, key0[:], labelRekey, KeySize))
	meta := []struct {
		name, typ string
		key       [KeySize]byte
		payload   []byte
	}{
		{"data-0", "data", key0, vectorMessages[0]},
		{"data-1", "data", key0, vectorMessages[1]},
		{"rekey", "rekey", key0, nil},
		{"data-after-rekey", "data", key1, vectorMessages[2]},
		{"close", "close", key1, []byte{closeNormal}},
	}
	if len(frames) != len(meta) {
		t.Fatalf("the conn sent %d frames, want %d", len(frames), len(meta))
	}
	v := frameVectors{
		Comment: "safehold channel v1 frames (docs/design.md §16.3): one direction of a connection made by channel.New " +
			"from fixed keys with RekeyMessages 2. Regenerate with go test ./internal/channel -run TestFrameVectors -update.",
		SendKey:       hex.EncodeToString(ks.Send[:]),
		RecvKey:       hex.EncodeToString(ks.Recv[:]),
		RekeyMessages: rekey,
	}
	for i, m := range meta {
		v.Frames = append(v.Frames, frameVector{
			Name: m.name, Type: m.typ, Counter: uint64(i), Label: label,
			Key: hex.EncodeToString(m.key[:]), Payload: hex.EncodeToString(m.payload), Frame: hex.EncodeToString(frames[i]),
		})
	}
	return v
}

func TestFrameVectors(t *testing.T) {
	want := makeFrameVectors(t)
	wantJSON, err := json.MarshalIndent(want, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	wantJSON = append(wantJSON, '\n')
	if *update {
		if err := os.WriteFile(frameVectorFile, wantJSON, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(frameVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var got frameVectors
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}

	// 1. The committed bytes are what New sends today.
	if got.SendKey != want.SendKey || got.RecvKey != want.RecvKey || got.RekeyMessages != want.RekeyMessages || len(got.Frames) != len(want.Frames) {
		t.Fatalf("%s: inputs or frame count differ from the fixed inputs; run with -update only for a deliberate format change", frameVectorFile)
	}
	for i, w := range want.Frames {
		if g := got.Frames[i]; g != w {
			t.Errorf("frame %d (%s):\n got %+v\nwant %+v", i, w.Name, g, w)
		}
	}
	if !bytes.Equal(raw, wantJSON) {
		t.Errorf("%s differs from the regenerated vectors; run go test -run TestFrameVectors -update only for a deliberate format change", frameVectorFile)
	}

	// 2. Each committed frame is what §16.3 says, computed here from the
	// design's formulas alone (not with the package's direction type).
	var stream []byte
	for _, f := range got.Frames {
		fb := unhex(t, f.Frame)
		typ := map[string]frameType{"data": typeData, "rekey": typeRekey, "close": typeClose}[f.Type]
		spec := specFrame(t, unhex(t, f.Key), f.Label, typ, f.Counter, unhex(t, f.Payload))
		if !bytes.Equal(fb, spec) {
			t.Errorf("%s: frame\n%x\ndiffers from the design's formula\n%x", f.Name, fb, spec)
		}
		stream = append(stream, fb...)
	}
	// The key after the rekey frame is the design's ratchet of the first.
	if k0, k1 := unhex(t, got.Frames[0].Key), unhex(t, got.Frames[3].Key); !bytes.Equal(k1, hkdfExpand(t, k0, "safehold channel v1 rekey", KeySize)) {
		t.Error("the key after the rekey is not HKDF-Expand(K, \"safehold channel v1 rekey\", 32)")
	}

	// 3. The receiving end decodes the committed stream.
	var kr Keys
	copy(kr.Send[:], unhex(t, got.RecvKey))
	copy(kr.Recv[:], unhex(t, got.SendKey))
	r := player(kr, vectorOptions(got.RekeyMessages), stream)
	n := 0
	for _, f := range got.Frames {
		if f.Type != "data" {
			continue
		}
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if !bytes.Equal(m, unhex(t, f.Payload)) || !bytes.Equal(m, vectorMessages[n]) {
			t.Errorf("%s: payload %q", f.Name, m)
		}
		n++
	}
	if n != len(vectorMessages) {
		t.Errorf("%d data frames, want %d", n, len(vectorMessages))
	}
	if _, err := r.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Errorf("after the close frame: %v, want io.EOF", err)
	}
	if r.recv.rekeys != 1 || r.recv.next != uint64(len(got.Frames)) {
		t.Errorf("receiver: %d rekeys, next counter %d; want 1, %d", r.recv.rekeys, r.recv.next, len(got.Frames))
	}
}

// specFrame builds one frame from the formulas of docs/design.md §16.3.
func specFrame(t *testing.T, key []byte, label byte, typ frameType, counter uint64, payload []byte) []byte {
	t.Helper()
	aesKey := hkdfExpand(t, key, "safehold channel v1 aes-256-gcm", 32)
	chachaKey := hkdfExpand(t, key, "safehold channel v1 chacha20-poly1305", 32)
	nonce := hkdfExpand(t, key, "safehold channel v1 nonce", 12)
	for i := range 8 {
		nonce[4+i] ^= byte(counter >> (56 - 8*i))
	}
	ad := binary.BigEndian.AppendUint64([]byte{label, byte(typ)}, counter)
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := chacha20poly1305.New(chachaKey)
	if err != nil {
		t.Fatal(err)
	}
	ct := cc.Seal(nil, nonce, gcm.Seal(nil, nonce, payload, ad), ad)
	out := binary.BigEndian.AppendUint32(nil, uint32(len(ct)))
	out = append(out, byte(typ))
	out = binary.BigEndian.AppendUint64(out, counter)
	return append(out, ct...)
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
