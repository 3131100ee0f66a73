package keycode

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/random"
)

func fixedKey() [KeySize]byte {
	var k [KeySize]byte
	for i := range k {
		k[i] = byte(i*17 + 3)
	}
	return k
}

// expectedText computes the text form from the spec with independent code:
// a hand-written 5-bit encoder over the alphabet string.
func expectedText(prefix, domain string, key [KeySize]byte) string {
	sum := sha256.Sum256(append(append([]byte(domain), 1), key[:]...))
	raw := append(key[:], sum[:4]...)
	var body []byte
	var acc uint64
	bits := 0
	for _, b := range raw {
		acc = acc<<8 | uint64(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			body = append(body, "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[acc>>bits&31])
		}
	}
	s := prefix
	for i := 0; i < len(body); i += 4 {
		s += "-" + string(body[i:i+4])
	}
	return s
}

func TestKnownAnswer(t *testing.T) {
	key := fixedKey()
	r := RecoveryKey{key}
	s := SecretKey{key}
	wantR := expectedText("R1", "safehold/keycode/recovery-key", key)
	wantS := expectedText("S1", "safehold/keycode/secret-key", key)
	if r.Reveal() != wantR || s.Reveal() != wantS {
		t.Fatalf("got %s / %s\nwant %s / %s", r.Reveal(), s.Reveal(), wantR, wantS)
	}
	// Pinned so that a change to the format is noticed.
	const pinnedR = "R1-0CA2-ADJ7-B1MQ-N2WW-NPZC-ZR7H-0ARE-8M6H"
	if wantR != pinnedR {
		t.Fatalf("format changed: %s", wantR)
	}
	if len(wantR) != 42 || strings.Count(wantR, "-") != 8 {
		t.Fatalf("shape: %s", wantR)
	}
	// Same key, different kinds: different checksums.
	if wantR[len(wantR)-7:] == wantS[len(wantS)-7:] {
		t.Fatal("checksum not domain-separated")
	}
}

func TestRoundTrip(t *testing.T) {
	rnd := random.NewDeterministic([]byte("keycode round trip"))
	for range 200 {
		r, err := NewRecoveryKey(rnd)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSecretKey(rnd)
		if err != nil {
			t.Fatal(err)
		}
		text := r.Reveal()
		for _, variant := range tolerantVariants(text) {
			got, err := ParseRecoveryKey(variant)
			if err != nil || !got.Equal(r) || got != r {
				t.Fatalf("ParseRecoveryKey(%q) = %v", variant, err)
			}
		}
		for _, variant := range tolerantVariants(s.Reveal()) {
			got, err := ParseSecretKey(variant)
			if err != nil || !got.Equal(s) {
				t.Fatalf("ParseSecretKey(%q) = %v", variant, err)
			}
		}
		if !bytes.Equal(r.Bytes(), r.k[:]) || !bytes.Equal(s.Bytes(), s.k[:]) {
			t.Fatal("Bytes differs from the key")
		}
	}
}

// tolerantVariants lists ways a user may type text that must parse the same.
func tolerantVariants(text string) []string {
	noHyphen := strings.ReplaceAll(text, "-", "")
	confusable := strings.NewReplacer("0", "O", "1", "l").Replace(text[2:])
	return []string{
		text,
		strings.ToLower(text),
		noHyphen,
		strings.ReplaceAll(text, "-", " "),
		"  " + strings.ReplaceAll(text, "-", "--") + "\n",
		text[:2] + confusable,
		text[:2] + strings.ToLower(strings.NewReplacer("1", "I").Replace(text[2:])),
		strings.ReplaceAll(text, "-", "\u2013"), // en dash
		strings.ReplaceAll(noHyphen[:20], "", "") + " " + noHyphen[20:],
		text[:1] + "I" + text[2:], // prefix digit 1 typed as I
	}
}

func TestEveryTypoCaught(t *testing.T) {
	key := fixedKey()
	for _, c := range []struct {
		text  string
		parse func(string) error
	}{
		{RecoveryKey{key}.Reveal(), func(s string) error { _, err := ParseRecoveryKey(s); return err }},
		{SecretKey{key}.Reveal(), func(s string) error { _, err := ParseSecretKey(s); return err }},
	} {
		n := 0
		for pos := 3; pos < len(c.text); pos++ {
			if c.text[pos] == '-' {
				continue
			}
			for _, ch := range []byte(alphabet) {
				if ch == c.text[pos] {
					continue
				}
				typo := c.text[:pos] + string(ch) + c.text[pos+1:]
				if err := c.parse(typo); !errors.Is(err, ErrChecksum) {
					t.Fatalf("typo %q at %d: err = %v, want ErrChecksum", ch, pos, err)
				}
				n++
			}
		}
		if n != 32*31 {
			t.Fatalf("checked %d typos, want %d", n, 32*31)
		}
		// Adjacent transpositions of different characters are caught too.
		for pos := 3; pos+1 < len(c.text); pos++ {
			a, b := c.text[pos], c.text[pos+1]
			if a == '-' || b == '-' || a == b {
				continue
			}
			swapped := c.text[:pos] + string(b) + string(a) + c.text[pos+2:]
			if err := c.parse(swapped); !errors.Is(err, ErrChecksum) {
				t.Fatalf("transposition at %d: %v", pos, err)
			}
		}
	}
}

func TestWrongKind(t *testing.T) {
	rnd := random.NewDeterministic([]byte("kinds"))
	r, _ := NewRecoveryKey(rnd)
	s, _ := NewSecretKey(rnd)
	_, err := ParseSecretKey(r.Reveal())
	if !errors.Is(err, ErrWrongKind) || !strings.Contains(err.Error(), "this is a recovery key, not a secret key") {
		t.Fatalf("recovery key as secret key: %v", err)
	}
	_, err = ParseRecoveryKey(strings.ToLower(s.Reveal()))
	if !errors.Is(err, ErrWrongKind) || !strings.Contains(err.Error(), "this is a secret key, not a recovery key") {
		t.Fatalf("secret key as recovery key: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	good := RecoveryKey{fixedKey()}.Reveal()
	body := good[3:]
	cases := []struct {
		in   string
		want error
	}{
		{"", ErrFormat},
		{"R", ErrFormat},
		{"R1", ErrFormat},
		{body, ErrFormat},                              // prefix missing
		{"X1-" + body, ErrFormat},                      // unknown kind
		{"R2-" + body, ErrVersion},                     // future version
		{"R0-" + body, ErrVersion},                     //
		{"S2-" + body, ErrFormat},                      // other kind, unknown version: not our prefix
		{good[:len(good)-1], ErrFormat},                // one character short
		{good + "A", ErrFormat},                        // one character long
		{good + "-" + body, ErrFormat},                 // pasted twice
		{"R1-" + body[:4] + "U" + body[5:], ErrFormat}, // U is not in the alphabet
		{good[:10] + "*" + good[11:], ErrFormat},
		{good[:10] + "é" + good[11:], ErrFormat},
		{good[:10] + "\x00" + good[11:], ErrFormat},
		{strings.Repeat(" ", maxInput+1), ErrFormat},
		{strings.Repeat("-", maxInput) + good, ErrFormat},
	}
	for _, c := range cases {
		if _, err := ParseRecoveryKey(c.in); !errors.Is(err, c.want) {
			t.Errorf("ParseRecoveryKey(%q) = %v, want %v", c.in, err, c.want)
		}
	}
	// A bad character is located, never echoed.
	_, err := ParseRecoveryKey(good[:10] + "*" + good[11:])
	if !strings.Contains(err.Error(), "character 11") || strings.Contains(err.Error(), good[3:7]) {
		t.Fatalf("error message: %v", err)
	}
	// Checksum errors do not contain the key.
	_, err = ParseRecoveryKey(good[:5] + "Z" + good[6:])
	if strings.Contains(err.Error(), good[7:]) {
		t.Fatalf("key text in error: %v", err)
	}
}

func TestNewRejectsBrokenSource(t *testing.T) {
	if _, err := NewRecoveryKey(bytes.NewReader(make([]byte, 16))); !errors.Is(err, ErrZeroKey) {
		t.Fatalf("all-zero key accepted: %v", err)
	}
	if _, err := NewSecretKey(bytes.NewReader(make([]byte, 8))); err == nil {
		t.Fatal("short source accepted")
	}
	a, _ := NewSecretKey(random.NewDeterministic([]byte("a")))
	b, _ := NewSecretKey(random.NewDeterministic([]byte("b")))
	if a.Equal(b) {
		t.Fatal("distinct sources made the same key")
	}
}

func TestRedaction(t *testing.T) {
	r := RecoveryKey{fixedKey()}
	s := SecretKey{fixedKey()}
	text := r.Reveal()
	wrapper := struct {
		R RecoveryKey
		S SecretKey
		P *RecoveryKey
	}{r, s, &r}
	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(f, r), fmt.Sprintf(f, s), fmt.Sprintf(f, wrapper), fmt.Sprintf(f, &r))
	}
	outs = append(outs, r.String(), s.String(), fmt.Sprint(r), fmt.Sprintln(s))
	j, err := json.Marshal(wrapper)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "r", r, "s", s)
	outs = append(outs, logged.String())
	for _, o := range outs {
		if strings.Contains(o, text[3:7]) || strings.Contains(o, s.Reveal()[3:7]) ||
			strings.Contains(o, fmt.Sprint(r.k[0], " ", r.k[1])) || strings.Contains(o, fmt.Sprintf("%x", r.k[:4])) {
			t.Fatalf("secret printed: %s", o)
		}
		if !strings.Contains(o, "redacted") {
			t.Fatalf("no redaction marker: %s", o)
		}
	}
}

func TestRecoveryKEK(t *testing.T) {
	r := RecoveryKey{fixedKey()}
	salt := []byte("account-salt-0123456789abcdef")
	kek := r.KEK(salt)
	want, err := hkdf.Key(sha512.New, r.k[:], salt, "safehold/keycode/v1/recovery-kek", 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kek, want) || len(kek) != RecoveryKEKSize {
		t.Fatal("KEK does not match the spec")
	}
	if bytes.Equal(r.KEK([]byte("other account")), kek) {
		t.Fatal("KEK not bound to the account")
	}
	r2 := r
	r2.k[0] ^= 1
	if bytes.Equal(r2.KEK(salt), kek) {
		t.Fatal("KEK not bound to the key")
	}
	r.Wipe()
	if r.k != ([KeySize]byte{}) {
		t.Fatal("Wipe left key bytes")
	}
}

func FuzzParse(f *testing.F) {
	rnd := random.NewDeterministic([]byte("fuzz seeds"))
	r, _ := NewRecoveryKey(rnd)
	s, _ := NewSecretKey(rnd)
	for _, seed := range append(tolerantVariants(r.Reveal()), tolerantVariants(s.Reveal())...) {
		f.Add(seed)
	}
	f.Add("")
	f.Add("R1-")
	f.Add("R2-0000-0000-0000-0000-0000-0000-0000-0000")
	f.Add("r1 oooo iiii llll")
	f.Fuzz(func(t *testing.T, in string) {
		if r, err := ParseRecoveryKey(in); err == nil {
			canon := r.Reveal()
			again, err := ParseRecoveryKey(canon)
			if err != nil || !again.Equal(r) || again.Reveal() != canon {
				t.Fatalf("recovery key %q does not round-trip: %v", in, err)
			}
			if _, err := ParseSecretKey(in); !errors.Is(err, ErrWrongKind) {
				t.Fatalf("recovery key text accepted as a secret key: %v", err)
			}
		} else if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrWrongKind) && !errors.Is(err, ErrVersion) {
			t.Fatalf("unclassified error: %v", err)
		}
		if s, err := ParseSecretKey(in); err == nil {
			canon := s.Reveal()
			again, err := ParseSecretKey(canon)
			if err != nil || !again.Equal(s) || again.Reveal() != canon {
				t.Fatalf("secret key %q does not round-trip: %v", in, err)
			}
		}
	})
}

// FuzzRoundTrip: any 16 non-zero bytes make a key whose text parses back to
// the same key, byte for byte re-encoded.
func FuzzRoundTrip(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xff}, 16))
	f.Add([]byte("0123456789abcdef"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < KeySize {
			return
		}
		r, err := NewRecoveryKey(bytes.NewReader(b))
		if err != nil {
			return // all-zero
		}
		got, err := ParseRecoveryKey(r.Reveal())
		if err != nil || !got.Equal(r) || got.Reveal() != r.Reveal() {
			t.Fatalf("round trip: %v", err)
		}
		s, _ := NewSecretKey(bytes.NewReader(b))
		gs, err := ParseSecretKey(strings.ToLower(s.Reveal()))
		if err != nil || !gs.Equal(s) {
			t.Fatalf("secret round trip: %v", err)
		}
	})
}
