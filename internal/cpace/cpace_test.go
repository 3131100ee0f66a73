package cpace

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/gtank/ristretto255"
)

// hexBytes is a byte string written as hex in the vectors file.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// vectors mirrors testdata/ristretto255.json, transcribed from Appendix B.3
// and A.1-A.3 of the draft.
type vectors struct {
	Source          string   `json:"source"`
	Suite           string   `json:"suite"`
	Comment         string   `json:"comment"`
	HashBlockSize   int      `json:"hash_block_size"`
	DSI             hexBytes `json:"dsi"`
	PRS             hexBytes `json:"prs"`
	CI              hexBytes `json:"ci"`
	SID             hexBytes `json:"sid"`
	ZPadLen         int      `json:"zpad_len"`
	GeneratorString hexBytes `json:"generator_string"`
	GeneratorHash   hexBytes `json:"generator_hash"`
	G               hexBytes `json:"g"`
	ADa             hexBytes `json:"ada"`
	YaScalar        hexBytes `json:"ya"`
	Ya              hexBytes `json:"Ya"`
	ADb             hexBytes `json:"adb"`
	YbScalar        hexBytes `json:"yb"`
	Yb              hexBytes `json:"Yb"`
	K               hexBytes `json:"K"`
	TranscriptIR    hexBytes `json:"transcript_ir"`
	DSIISK          hexBytes `json:"dsi_isk"`
	ISKInputIR      hexBytes `json:"isk_input_ir"`
	ISKIR           hexBytes `json:"isk_ir"`
	ScalarMult      struct {
		S      hexBytes `json:"s"`
		X      hexBytes `json:"X"`
		Result hexBytes `json:"result"`
	} `json:"scalar_mult_valid"`
	Invalid struct {
		S     hexBytes `json:"s"`
		Cases []struct {
			Name string   `json:"name"`
			Y    hexBytes `json:"Y"`
		} `json:"cases"`
	} `json:"scalar_mult_vfy_invalid"`
	PrependLen []struct {
		In  hexBytes `json:"in"`
		Out hexBytes `json:"out"`
	} `json:"prepend_len"`
	LVCat struct {
		In  []hexBytes `json:"in"`
		Out hexBytes   `json:"out"`
	} `json:"lv_cat"`
	TranscriptIRExamples []struct {
		Ya, ADa, Yb, ADb, Out hexBytes
	} `json:"transcript_ir_examples"`
}

func loadVectors(t testing.TB) *vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/ristretto255.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v vectors
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("testdata/ristretto255.json: %v", err)
	}
	if v.Suite != "CPACE-RISTR255-SHA512" || !strings.Contains(v.Source, "draft-irtf-cfrg-cpace-") {
		t.Fatalf("unexpected vectors file: suite %q source %q", v.Suite, v.Source)
	}
	return &v
}

func decodeScalar(t testing.TB, b []byte) *ristretto255.Scalar {
	t.Helper()
	if len(b) != 32 {
		t.Fatalf("scalar is %d bytes", len(b))
	}
	s := ristretto255.NewScalar()
	if err := s.Decode(b); err != nil {
		t.Fatalf("scalar %x: %v", b, err)
	}
	return s
}

func eq(t *testing.T, name string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x", name, got, want)
	}
}

func TestStringUtilities(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.PrependLen {
		eq(t, fmt.Sprintf("prepend_len(%d bytes)", len(c.In)), appendPrependLen(nil, c.In), c.Out)
	}
	in := make([][]byte, len(v.LVCat.In))
	for i, a := range v.LVCat.In {
		in[i] = a
	}
	eq(t, "lv_cat", lvCat(in...), v.LVCat.Out)
	for i, c := range v.TranscriptIRExamples {
		eq(t, fmt.Sprintf("transcript_ir example %d", i), transcriptIR(c.Ya, c.ADa, c.Yb, c.ADb), c.Out)
	}
}

// TestLEB128 checks the length prefix on multi-byte lengths against the
// standard library's unsigned varint, which is the same encoding.
func TestLEB128(t *testing.T) {
	for _, n := range []uint64{0, 1, 127, 128, 255, 300, 16383, 16384, 1<<21 - 1, 1 << 21, 1<<63 + 5} {
		got := appendLEB128(nil, n)
		want := binary.AppendUvarint(nil, n)
		eq(t, fmt.Sprintf("LEB128(%d)", n), got, want)
		if n <= 1<<30 && prependLenSize(int(n)) != len(want) {
			t.Errorf("prependLenSize(%d) = %d, want %d", n, prependLenSize(int(n)), len(want))
		}
	}
}

func TestVectorsGenerator(t *testing.T) {
	v := loadVectors(t)
	if v.HashBlockSize != hashBlockSize {
		t.Fatalf("vectors use s_in_bytes %d, code %d", v.HashBlockSize, hashBlockSize)
	}
	eq(t, "DSI", []byte(dsi), v.DSI)
	gs := generatorString(v.DSI, v.PRS, v.CI, v.SID, v.HashBlockSize)
	eq(t, "generator_string", gs, v.GeneratorString)
	// The padding sits between lv(DSI)||lv(PRS) and CI: check its length
	// on its own so a mismatch is easy to read.
	off := prependLenSize(len(v.DSI)) + len(v.DSI) + prependLenSize(len(v.PRS)) + len(v.PRS)
	if len(gs) > off {
		if got := int(gs[off]); got != v.ZPadLen {
			t.Errorf("len_zpad %d, want %d", got, v.ZPadLen)
		}
	}
	h := sha512.Sum512(gs)
	eq(t, "hash of generator string", h[:], v.GeneratorHash)
	g := calculateGenerator(v.PRS, v.CI, v.SID)
	eq(t, "generator g", g.Encode(nil), v.G)
}

func TestVectorsProtocol(t *testing.T) {
	v := loadVectors(t)

	a, ya, err := startWithScalar(Initiator, v.PRS, v.CI, v.SID, v.ADa, decodeScalar(t, v.YaScalar))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Ya", ya, v.Ya)
	b, yb, err := startWithScalar(Responder, v.PRS, v.CI, v.SID, v.ADb, decodeScalar(t, v.YbScalar))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Yb", yb, v.Yb)

	// Intermediate values, computed the way Finish computes them.
	kA, err := scalarMultVfy(decodeScalar(t, v.YaScalar), v.Yb)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "K = scalar_mult_vfy(ya, Yb)", kA, v.K)
	kB, err := scalarMultVfy(decodeScalar(t, v.YbScalar), v.Ya)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "K = scalar_mult_vfy(yb, Ya)", kB, v.K)
	tr := transcriptIR(v.Ya, v.ADa, v.Yb, v.ADb)
	eq(t, "transcript_ir", tr, v.TranscriptIR)
	eq(t, "DSI_ISK", []byte(dsiISK), v.DSIISK)
	eq(t, "lv_cat(DSI_ISK, sid, K) || transcript_ir", append(lvCat([]byte(dsiISK), v.SID, v.K), tr...), v.ISKInputIR)
	eq(t, "ISK from deriveISK", deriveISK(v.SID, v.K, tr), v.ISKIR)

	// The whole protocol through the public API.
	iskA, err := a.Finish(yb, v.ADb)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ISK (initiator)", iskA, v.ISKIR)
	iskB, err := b.Finish(ya, v.ADa)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ISK (responder)", iskB, v.ISKIR)
}

// TestVectorsDeterministicReader checks that Start, fed 64 bytes that are the
// draft's scalar followed by zeros, samples exactly that scalar: the wide
// reduction leaves a value below the group order unchanged.
func TestVectorsDeterministicReader(t *testing.T) {
	v := loadVectors(t)
	reader := func(y []byte) io.Reader {
		return bytes.NewReader(append(bytes.Clone(y), make([]byte, 32)...))
	}
	a, ya, err := Start(Initiator, v.PRS, v.CI, v.SID, v.ADa, reader(v.YaScalar))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Ya via Start", ya, v.Ya)
	b, yb, err := Start(Responder, v.PRS, v.CI, v.SID, v.ADb, reader(v.YbScalar))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Yb via Start", yb, v.Yb)
	iskB, err := b.Finish(ya, v.ADa)
	if err != nil {
		t.Fatal(err)
	}
	iskA, err := a.Finish(yb, v.ADb)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ISK (initiator via Start)", iskA, v.ISKIR)
	eq(t, "ISK (responder via Start)", iskB, v.ISKIR)
}

func TestVectorsScalarMult(t *testing.T) {
	v := loadVectors(t)
	got, err := scalarMultVfy(decodeScalar(t, v.ScalarMult.S), v.ScalarMult.X)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "scalar_mult_vfy(s, X)", got, v.ScalarMult.Result)

	if len(v.Invalid.Cases) < 2 {
		t.Fatalf("vectors list %d invalid points, want the draft's 2", len(v.Invalid.Cases))
	}
	for _, c := range v.Invalid.Cases {
		t.Run(c.Name, func(t *testing.T) {
			k, err := scalarMultVfy(decodeScalar(t, v.Invalid.S), c.Y)
			if !errors.Is(err, ErrInvalidPeer) || k != nil {
				t.Fatalf("scalar_mult_vfy = %x, %v; want ErrInvalidPeer", k, err)
			}
			// And through the protocol, on both sides.
			for _, role := range []Role{Initiator, Responder} {
				st, _, err := Start(role, v.PRS, v.CI, v.SID, v.ADa, rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				isk, err := st.Finish(c.Y, v.ADb)
				if !errors.Is(err, ErrInvalidPeer) || isk != nil {
					t.Fatalf("%v: Finish = %x, %v; want ErrInvalidPeer", role, isk, err)
				}
			}
		})
	}
}

// pair runs one exchange and returns both keys or the first error.
func pair(t *testing.T, prsA, prsB, ciA, ciB, sidA, sidB []byte) (iskA, iskB []byte) {
	t.Helper()
	a, ya, err := Start(Initiator, prsA, ciA, sidA, []byte("device A"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, yb, err := Start(Responder, prsB, ciB, sidB, []byte("device B"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if iskB, err = b.Finish(ya, []byte("device A")); err != nil {
		t.Fatal(err)
	}
	if iskA, err = a.Finish(yb, []byte("device B")); err != nil {
		t.Fatal(err)
	}
	if len(iskA) != KeySize || len(iskB) != KeySize {
		t.Fatalf("ISK sizes %d, %d", len(iskA), len(iskB))
	}
	return iskA, iskB
}

func TestAgreement(t *testing.T) {
	prs, ci, sid := []byte("483-921"), []byte("A\x00B"), []byte("session-0001")
	a, b := pair(t, prs, prs, ci, ci, sid, sid)
	eq(t, "same password", a, b)

	a2, _ := pair(t, prs, prs, ci, ci, sid, sid)
	if bytes.Equal(a, a2) {
		t.Error("two runs with fresh scalars gave the same ISK")
	}

	a, b = pair(t, prs, prs, nil, nil, nil, nil)
	eq(t, "empty CI and sid", a, b)
}

func TestDisagreement(t *testing.T) {
	prs, ci, sid := []byte("483-921"), []byte("A\x00B"), []byte("session-0001")
	for _, c := range []struct {
		name            string
		prsB, ciB, sidB []byte
	}{
		{"different password", []byte("483-922"), ci, sid},
		{"different channel id", prs, []byte("A\x00C"), sid},
		{"different session id", prs, ci, []byte("session-0002")},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := pair(t, prs, c.prsB, ci, c.ciB, sid, c.sidB)
			if bytes.Equal(a, b) {
				t.Fatal("keys agree")
			}
		})
	}
}

// TestAssociatedDataBound checks that changing the associated data in transit
// makes the keys differ: AD is authenticated through the transcript.
func TestAssociatedDataBound(t *testing.T) {
	prs := []byte("483-921")
	a, ya, err := Start(Initiator, prs, nil, nil, []byte("ADa"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, yb, err := Start(Responder, prs, nil, nil, []byte("ADb"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iskB, err := b.Finish(ya, []byte("ADa-altered"))
	if err != nil {
		t.Fatal(err)
	}
	iskA, err := a.Finish(yb, []byte("ADb"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(iskA, iskB) {
		t.Fatal("keys agree although ADa was altered")
	}
}

// TestTampered feeds Finish altered messages. Bad inputs are built by hand
// from the draft's vectors, not by the code under test.
func TestTampered(t *testing.T) {
	v := loadVectors(t)
	flip := func(i int, bit byte) []byte {
		b := bytes.Clone(v.Yb)
		b[i] ^= bit
		return b
	}
	// p = 2^255 - 19, little-endian: the smallest non-canonical field
	// encoding, and p+2 which reduces to the valid-looking 2.
	p := append([]byte{0xed}, bytes.Repeat([]byte{0xff}, 30)...)
	p = append(p, 0x7f)
	pPlus2 := bytes.Clone(p)
	pPlus2[0] = 0xef
	highBit := make([]byte, 32)
	highBit[31] = 0x80
	cases := []struct {
		name string
		msg  []byte
	}{
		{"identity", make([]byte, 32)},
		{"draft invalid Y_i1", v.Invalid.Cases[0].Y},
		{"flip low bit (negative s)", flip(0, 0x01)},
		{"flip high bit", flip(31, 0x80)},
		{"non-canonical p", p},
		{"non-canonical p+2", pPlus2},
		{"high bit only", highBit},
		{"all ones", bytes.Repeat([]byte{0xff}, 32)},
		{"empty", nil},
		{"short", v.Yb[:31]},
		{"long", append(bytes.Clone(v.Yb), 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, _, err := startWithScalar(Initiator, v.PRS, v.CI, v.SID, v.ADa, decodeScalar(t, v.YaScalar))
			if err != nil {
				t.Fatal(err)
			}
			isk, err := st.Finish(c.msg, v.ADb)
			if !errors.Is(err, ErrInvalidPeer) || isk != nil {
				t.Fatalf("Finish(%x) = %x, %v; want ErrInvalidPeer", c.msg, isk, err)
			}
			// The state is spent even after a refusal.
			if _, err := st.Finish(v.Yb, v.ADb); !errors.Is(err, ErrUsed) {
				t.Fatalf("second Finish: %v, want ErrUsed", err)
			}
		})
	}

	// A valid element other than Yb (the draft's scalar_mult test point)
	// is not refused, since a wrong password looks the same; but the keys
	// differ, which key confirmation then catches.
	st, _, err := startWithScalar(Initiator, v.PRS, v.CI, v.SID, v.ADa, decodeScalar(t, v.YaScalar))
	if err != nil {
		t.Fatal(err)
	}
	isk, err := st.Finish(v.ScalarMult.X, v.ADb)
	if err != nil {
		t.Fatalf("valid substituted element refused: %v", err)
	}
	if len(isk) != KeySize || bytes.Equal(isk, v.ISKIR) {
		t.Fatalf("substituted element gave ISK %x", isk)
	}
}

func TestReflectionRefused(t *testing.T) {
	st, msg, err := Start(Initiator, []byte("483-921"), nil, nil, []byte("A"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Finish(msg, []byte("A")); !errors.Is(err, ErrInvalidPeer) {
		t.Fatalf("reflected message: %v, want ErrInvalidPeer", err)
	}
}

func TestStateSingleUse(t *testing.T) {
	v := loadVectors(t)
	st, _, err := startWithScalar(Initiator, v.PRS, v.CI, v.SID, v.ADa, decodeScalar(t, v.YaScalar))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Finish(v.Yb, v.ADb); err != nil {
		t.Fatal(err)
	}
	if st.y != nil {
		t.Fatal("scalar still referenced after Finish")
	}
	if _, err := st.Finish(v.Yb, v.ADb); !errors.Is(err, ErrUsed) {
		t.Fatalf("second Finish: %v, want ErrUsed", err)
	}
	var nilState *State
	if _, err := nilState.Finish(v.Yb, v.ADb); !errors.Is(err, ErrUsed) {
		t.Fatalf("nil State: %v, want ErrUsed", err)
	}
	if _, err := new(State).Finish(v.Yb, v.ADb); !errors.Is(err, ErrUsed) {
		t.Fatalf("zero State: %v, want ErrUsed", err)
	}
}

// TestScalarWiped checks that Finish zeroes the scalar the state held, not
// only drops the reference.
func TestScalarWiped(t *testing.T) {
	v := loadVectors(t)
	y := decodeScalar(t, v.YaScalar)
	st, _, err := startWithScalar(Initiator, v.PRS, v.CI, v.SID, v.ADa, y)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Finish(v.Invalid.Cases[1].Y, v.ADb); err == nil {
		t.Fatal("identity accepted")
	}
	if y.Equal(ristretto255.NewScalar()) != 1 {
		t.Fatalf("scalar not wiped: %x", y.Encode(nil))
	}
}

func TestStartInputs(t *testing.T) {
	long := make([]byte, MaxInputSize+1)
	cases := []struct {
		name             string
		role             Role
		prs, ci, sid, ad []byte
	}{
		{"zero role", 0, []byte("pw"), nil, nil, nil},
		{"unknown role", 3, []byte("pw"), nil, nil, nil},
		{"empty password", Initiator, nil, nil, nil, nil},
		{"long password", Initiator, long, nil, nil, nil},
		{"long ci", Initiator, []byte("pw"), long, nil, nil},
		{"long sid", Initiator, []byte("pw"), nil, long, nil},
		{"long ad", Initiator, []byte("pw"), nil, nil, long},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, msg, err := Start(c.role, c.prs, c.ci, c.sid, c.ad, rand.Reader)
			if !errors.Is(err, ErrInput) || st != nil || msg != nil {
				t.Fatalf("Start = %v, %x, %v; want ErrInput", st, msg, err)
			}
		})
	}
	if _, _, err := Start(Initiator, []byte("pw"), nil, nil, nil, nil); !errors.Is(err, ErrInput) {
		t.Fatalf("nil reader: %v", err)
	}
	if _, _, err := Start(Initiator, []byte("pw"), nil, nil, nil, bytes.NewReader(make([]byte, 10))); err == nil {
		t.Fatal("short random source accepted")
	}
	if _, _, err := Start(Initiator, []byte("pw"), nil, nil, nil, bytes.NewReader(make([]byte, 64*maxSampleAttempts))); err == nil {
		t.Fatal("all-zero random source accepted")
	}
	// A password at the limit is fine.
	if _, _, err := Start(Initiator, long[:MaxInputSize], nil, nil, nil, rand.Reader); err != nil {
		t.Fatal(err)
	}
	// Peer associated data over the limit is refused.
	st, _, err := Start(Initiator, []byte("pw"), nil, nil, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v := loadVectors(t)
	if _, err := st.Finish(v.Yb, long); !errors.Is(err, ErrInvalidPeer) {
		t.Fatalf("long peer AD: %v, want ErrInvalidPeer", err)
	}
}

func TestZeroScalarResampled(t *testing.T) {
	// First 64 bytes reduce to zero, the next 64 to one.
	src := make([]byte, 128)
	src[64] = 1
	y, err := sampleScalar(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	one := ristretto255.NewScalar()
	if err := one.Decode(append([]byte{1}, make([]byte, 31)...)); err != nil {
		t.Fatal(err)
	}
	if y.Equal(one) != 1 {
		t.Fatalf("sampled %x, want 1", y.Encode(nil))
	}
}

func TestStateNeverPrints(t *testing.T) {
	v := loadVectors(t)
	st, _, err := startWithScalar(Initiator, v.PRS, v.CI, v.SID, v.ADa, decodeScalar(t, v.YaScalar))
	if err != nil {
		t.Fatal(err)
	}
	scalarHex := hex.EncodeToString(v.YaScalar)
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, st), fmt.Sprintf(verb, *st))
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "state", st)
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, scalarHex) || strings.Contains(o, scalarHex[:16]) {
			t.Errorf("scalar leaked: %s", o)
		}
	}
}

// FuzzFinish feeds arbitrary peer messages and associated data to Finish. It
// must never panic; whatever it accepts must be a canonical, non-identity
// encoding (decode then encode gives the same bytes), and the result must be
// a full-size key.
func FuzzFinish(f *testing.F) {
	v := loadVectors(f)
	f.Add([]byte(v.Yb), []byte(v.ADb))
	f.Add([]byte(v.Invalid.Cases[0].Y), []byte(v.ADb))
	f.Add(make([]byte, 32), []byte{})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, peerMsg, peerAD []byte) {
		st, _, err := startWithScalar(Initiator, v.PRS, v.CI, v.SID, v.ADa, decodeScalar(t, v.YaScalar))
		if err != nil {
			t.Fatal(err)
		}
		isk, err := st.Finish(peerMsg, peerAD)
		if err != nil {
			if !errors.Is(err, ErrInvalidPeer) {
				t.Fatalf("error %v does not wrap ErrInvalidPeer", err)
			}
			if isk != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		if len(isk) != KeySize {
			t.Fatalf("ISK is %d bytes", len(isk))
		}
		e := ristretto255.NewElement()
		if err := e.Decode(peerMsg); err != nil {
			t.Fatalf("accepted undecodable message %x", peerMsg)
		}
		if !bytes.Equal(e.Encode(nil), peerMsg) {
			t.Fatalf("accepted non-canonical message %x", peerMsg)
		}
		if e.Equal(ristretto255.NewElement()) == 1 {
			t.Fatal("accepted the identity")
		}
		if bytes.Equal(peerMsg, v.Yb) && bytes.Equal(peerAD, v.ADb) && !bytes.Equal(isk, v.ISKIR) {
			t.Fatalf("draft message gave ISK %x", isk)
		}
	})
}
