package link

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/channel"
	"github.com/safehold/safehold/internal/cpace"
)

var update = flag.Bool("update", false, "rewrite testdata/keys-v1.json")

const keyVectorFile = "testdata/keys-v1.json"

// keyVectors is testdata/keys-v1.json: the device-link handshake and key
// schedule of docs/design.md §15.2 from fixed inputs. The inputs are the
// code, the sid and the 64 random bytes each side's CPace scalar is
// sampled from (wide reduction modulo the group order, as cpace.Start
// does); everything after is derived. All byte strings are hex.
type keyVectors struct {
	Comment string `json:"comment"`

	// Inputs.
	Code          string `json:"code"`
	SID           string `json:"sid"`
	RandInitiator string `json:"rand_initiator"`
	RandResponder string `json:"rand_responder"`
	Hello         string `json:"hello"` // the initiator's first channel message

	// Derived.
	CI  string `json:"ci"` // CPace channel identifier (text)
	Ya  string `json:"ya"`
	Yb  string `json:"yb"`
	ISK string `json:"isk"`

	KI   string `json:"k_i"`   // confirmation key, initiator
	KR   string `json:"k_r"`   // confirmation key, responder
	KI2R string `json:"k_i2r"` // channel key, initiator to responder
	KR2I string `json:"k_r2i"` // channel key, responder to initiator
	TagR string `json:"tag_r"`
	TagI string `json:"tag_i"`

	// Wire: the four handshake messages with their u16 length, and the
	// initiator's first frame (§16.3, keyed with k_i2r) carrying Hello.
	Msg1       string `json:"msg1"` // responder: "SHL1" || sid
	Msg2       string `json:"msg2"` // initiator: Ya
	Msg3       string `json:"msg3"` // responder: Yb || tagR
	Msg4       string `json:"msg4"` // initiator: tagI
	HelloFrame string `json:"hello_frame"`
}

// vectorInputs are the fixed inputs.
func vectorInputs() (code Code, sid, randI, randR, hello []byte) {
	code = Code{Nameplate: 12, Words: []string{"purple", "walrus", "tiger"}}
	sid = make([]byte, sidSize)
	randI, randR = make([]byte, 64), make([]byte, 64)
	for i := range sid {
		sid[i] = byte(0xa0 + i)
	}
	for i := range 64 {
		randI[i] = byte(0x01 + 3*i)
		randR[i] = byte(0xfe - 5*i)
	}
	return code, sid, randI, randR, []byte(`{"public":"dmVjdG9y","platform":"vector"}`)
}

// recordConn records every Write of one end, one entry per call (the
// handshake writes each message with one call).
type recordConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, bytes.Clone(p))
	r.mu.Unlock()
	return r.Conn.Write(p)
}

// makeKeyVectors runs both sides of the handshake over net.Pipe with the
// fixed inputs as their random sources, records the wire, then derives the
// schedule again with the package's own functions.
func makeKeyVectors(t *testing.T) keyVectors {
	t.Helper()
	code, sid, randI, randR, hello := vectorInputs()
	cp, sp := net.Pipe()
	cn, sn := &recordConn{Conn: cp}, &recordConn{Conn: sp}
	defer cp.Close()
	defer sp.Close()

	o := &Offer{code: code, opts: Options{Rand: bytes.NewReader(append(bytes.Clone(sid), randR...))}}
	type res struct {
		got []byte
		err error
	}
	done := make(chan res, 1)
	go func() {
		ch, err := o.handshake(sn)
		if err != nil {
			done <- res{nil, err}
			return
		}
		m, err := ch.ReadMessage()
		done <- res{m, err}
	}()
	ch, err := joinHandshake(cn, code, Options{Rand: bytes.NewReader(randI)})
	if err != nil {
		t.Fatalf("initiator: %v", err)
	}
	if err := ch.WriteMessage(hello); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || !bytes.Equal(r.got, hello) {
		t.Fatalf("responder: %q, %v", r.got, r.err)
	}
	if len(sn.writes) != 2 || len(cn.writes) != 3 {
		t.Fatalf("responder wrote %d times, initiator %d; want 2 and 3", len(sn.writes), len(cn.writes))
	}

	// The schedule, from the package's functions on the same inputs.
	si, ya, err := cpace.Start(cpace.Initiator, []byte(code.String()), ci(code), sid, nil, bytes.NewReader(randI))
	if err != nil {
		t.Fatal(err)
	}
	sr, yb, err := cpace.Start(cpace.Responder, []byte(code.String()), ci(code), sid, nil, bytes.NewReader(randR))
	if err != nil {
		t.Fatal(err)
	}
	isk, err := si.Finish(yb, nil)
	if err != nil {
		t.Fatal(err)
	}
	iskR, err := sr.Finish(ya, nil)
	if err != nil || !bytes.Equal(isk, iskR) {
		t.Fatalf("the two sides' ISKs differ (%v)", err)
	}
	k := deriveKeys(isk, sid, ya, yb)
	h := hex.EncodeToString
	return keyVectors{
		Comment: "safehold device link v1 (docs/design.md §15.2): CPace on a fixed code, sid and scalar randomness, " +
			"the HKDF-SHA512 key schedule, both confirmation tags and the wire. " +
			"Regenerate with go test ./internal/link -run TestKeyVectors -update.",
		Code: code.String(), SID: h(sid), RandInitiator: h(randI), RandResponder: h(randR), Hello: string(hello),
		CI: string(ci(code)), Ya: h(ya), Yb: h(yb), ISK: h(isk),
		KI: h(k.confirmI[:]), KR: h(k.confirmR[:]), KI2R: h(k.i2r[:]), KR2I: h(k.r2i[:]),
		TagR: h(k.tag(k.confirmR, "responder", sid, ya, yb)), TagI: h(k.tag(k.confirmI, "initiator", sid, ya, yb)),
		Msg1: h(sn.writes[0]), Msg2: h(cn.writes[0]), Msg3: h(sn.writes[1]), Msg4: h(cn.writes[1]),
		HelloFrame: h(cn.writes[2]),
	}
}

func TestKeyVectors(t *testing.T) {
	want := makeKeyVectors(t)
	wantJSON, err := json.MarshalIndent(want, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	wantJSON = append(wantJSON, '\n')
	if *update {
		if err := os.WriteFile(keyVectorFile, wantJSON, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(keyVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var got keyVectors
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		gm, wm := fields(t, got), fields(t, want)
		for name, w := range wm {
			if gm[name] != w {
				t.Errorf("%s:\n got %s\nwant %s", name, gm[name], w)
			}
		}
	}
	if !bytes.Equal(raw, wantJSON) {
		t.Errorf("%s differs from the regenerated vectors; run go test -run TestKeyVectors -update only for a deliberate format change", keyVectorFile)
	}

	// The committed schedule follows §15.2's formulas, computed here
	// without the package's deriveKeys and tag.
	b := func(s string) []byte {
		t.Helper()
		d, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	sid, ya, yb := b(got.SID), b(got.Ya), b(got.Yb)
	okm, err := hkdf.Key(sha512.New, b(got.ISK), append(bytes.Clone(ya), yb...), "safehold device link v1 keys"+string(sid), 128)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(okm, bytes.Join([][]byte{b(got.KI), b(got.KR), b(got.KI2R), b(got.KR2I)}, nil)) {
		t.Error("k_i, k_r, k_i2r, k_r2i are not HKDF-SHA512(ISK, Ya || Yb, \"safehold device link v1 keys\" || sid, 128)")
	}
	tag := func(key []byte, role string) []byte {
		m := hmac.New(sha512.New512_256, key)
		m.Write([]byte(role))
		m.Write([]byte{0, 16})
		m.Write(sid)
		m.Write([]byte{0, 32})
		m.Write(ya)
		m.Write([]byte{0, 32})
		m.Write(yb)
		return m.Sum(nil)
	}
	if !bytes.Equal(b(got.TagR), tag(b(got.KR), "responder")) || !bytes.Equal(b(got.TagI), tag(b(got.KI), "initiator")) {
		t.Error("the tags are not HMAC-SHA-512/256(kX, role || u16(16) || sid || u16(32) || Ya || u16(32) || Yb)")
	}
	u16 := func(p ...[]byte) []byte {
		m := bytes.Join(p, nil)
		return append([]byte{byte(len(m) >> 8), byte(len(m))}, m...)
	}
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"msg1", b(got.Msg1), u16([]byte("SHL1"), sid)},
		{"msg2", b(got.Msg2), u16(ya)},
		{"msg3", b(got.Msg3), u16(yb, b(got.TagR))},
		{"msg4", b(got.Msg4), u16(b(got.TagI))},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s is %x, want %x", c.name, c.got, c.want)
		}
	}
	if got.CI != "safehold device link v1 12" {
		t.Errorf("ci %q", got.CI)
	}

	// The responder's end of the channel (§15.2: Send k_r2i, Recv k_i2r)
	// decodes the committed hello frame.
	var keys channel.Keys
	copy(keys.Send[:], b(got.KR2I))
	copy(keys.Recv[:], b(got.KI2R))
	rc := channel.New(readConn{bytes.NewReader(b(got.HelloFrame))}, keys, channel.Options{MaxMessage: maxPayload})
	if m, err := rc.ReadMessage(); err != nil || string(m) != got.Hello {
		t.Errorf("the responder read %q, %v from hello_frame; want %q", m, err, got.Hello)
	}
}

// readConn is a net.Conn that only reads from r.
type readConn struct{ r io.Reader }

func (c readConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (readConn) Write(p []byte) (int, error)      { return 0, net.ErrClosed }
func (readConn) Close() error                     { return nil }
func (readConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (readConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (readConn) SetDeadline(time.Time) error      { return nil }
func (readConn) SetReadDeadline(time.Time) error  { return nil }
func (readConn) SetWriteDeadline(time.Time) error { return nil }

// fields maps a keyVectors' JSON names to their values.
func fields(t *testing.T, v keyVectors) map[string]string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
