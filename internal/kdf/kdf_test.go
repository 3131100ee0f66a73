package kdf

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/safehold/safehold/internal/random"
)

func TestCheck(t *testing.T) {
	floor := Params{Argon2Memory: MinArgon2MemoryKiB, Argon2Time: MinArgon2Time, Argon2Threads: 1, PBKDF2Iterations: MinPBKDF2Iterations}
	ceil := Params{Argon2Memory: MaxArgon2MemoryKiB, Argon2Time: MaxArgon2Time, Argon2Threads: MaxArgon2Threads, PBKDF2Iterations: MaxPBKDF2Iterations}
	with := func(p Params, f func(*Params)) Params { f(&p); return p }
	tests := []struct {
		name  string
		p     Params
		allow bool
		want  error
	}{
		{"floor", floor, false, nil},
		{"ceiling", ceil, false, nil},
		{"defaults", Defaults(), false, nil},
		{"memory below", with(floor, func(p *Params) { p.Argon2Memory-- }), true, ErrBelowFloor},
		{"time below", with(floor, func(p *Params) { p.Argon2Time-- }), true, ErrBelowFloor},
		{"threads 0", with(floor, func(p *Params) { p.Argon2Threads = 0 }), true, ErrBelowFloor},
		{"pbkdf2 below", with(floor, func(p *Params) { p.PBKDF2Iterations-- }), true, ErrBelowFloor},
		{"zero", Params{}, true, ErrBelowFloor},
		{"memory above", with(ceil, func(p *Params) { p.Argon2Memory++ }), true, ErrAboveCeiling},
		{"memory 64 GiB", with(floor, func(p *Params) { p.Argon2Memory = 64 << 20 }), true, ErrAboveCeiling},
		{"time above", with(ceil, func(p *Params) { p.Argon2Time++ }), true, ErrAboveCeiling},
		{"threads above", with(ceil, func(p *Params) { p.Argon2Threads++ }), true, ErrAboveCeiling},
		{"pbkdf2 above", with(ceil, func(p *Params) { p.PBKDF2Iterations++ }), true, ErrAboveCeiling},
		{"test profile allowed", TestParams(), true, nil},
		{"test profile refused", TestParams(), false, ErrInsecureNotAllowed},
		{"test sizes unflagged", with(TestParams(), func(p *Params) { p.InsecureTest = false }), true, ErrBelowFloor},
		{"test profile below test floor", with(TestParams(), func(p *Params) { p.Argon2Memory-- }), true, ErrBelowFloor},
		{"test profile above ceiling", with(TestParams(), func(p *Params) { p.PBKDF2Iterations = MaxPBKDF2Iterations + 1 }), true, ErrAboveCeiling},
		{"insecure flag on strong params refused", with(Defaults(), func(p *Params) { p.InsecureTest = true }), false, ErrInsecureNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Check(tt.allow)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

// A 64 GiB request is refused before any work: Derive returns at once.
func TestHugeRequestRefusedWithoutWork(t *testing.T) {
	p := Defaults()
	p.Argon2Memory = 64 << 20
	start := time.Now()
	_, err := Derive([]byte("pw"), nil, p, Salts{})
	if !errors.Is(err, ErrAboveCeiling) {
		t.Fatalf("Derive = %v, want ErrAboveCeiling", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("refusal took %v: work was attempted", d)
	}
	if !strings.Contains(err.Error(), "67108864 KiB") {
		t.Fatalf("error does not name the value: %v", err)
	}
}

// TestArgon2idMatchesReference checks x/crypto/argon2 against the C
// reference implementation's output (Debian package argon2):
//
//	echo -n pw | argon2 somesalt -id -t 2 -m 16 -p 1 -l 32
func TestArgon2idMatchesReference(t *testing.T) {
	const want = "131f79ac9f8f5b1a9473efda02275bd276d170af1c37d8eaea52e7ad8ba135e4"
	got := hex.EncodeToString(argon2.IDKey([]byte("pw"), []byte("somesalt"), 2, 64*1024, 1, 32))
	if got != want {
		t.Fatalf("argon2id = %s, want %s", got, want)
	}
}

func TestWeakerThan(t *testing.T) {
	d := Defaults()
	for _, f := range []func(*Params){
		func(p *Params) { p.Argon2Memory-- },
		func(p *Params) { p.Argon2Time-- },
		func(p *Params) { p.PBKDF2Iterations-- },
		func(p *Params) { p.InsecureTest = true },
	} {
		p := d
		f(&p)
		if !p.WeakerThan(d) || d.WeakerThan(p) && !p.InsecureTest {
			t.Fatalf("%+v vs defaults: wrong order", p)
		}
	}
	p := d
	p.Argon2Threads = 1
	if p.WeakerThan(d) || d.WeakerThan(d) {
		t.Fatal("equal work reported weaker")
	}
}

func testSalts(t testing.TB) Salts {
	s, err := NewSalts(random.NewDeterministic([]byte(t.Name())))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func deriveTest(t *testing.T, pw string, sk []byte, s Salts) *Keys {
	t.Helper()
	k, err := DeriveWith([]byte(pw), sk, TestParams(), s, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Wipe)
	return k
}

func TestNewSalts(t *testing.T) {
	s, err := NewSalts(random.NewDeterministic([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Argon2 == s.PBKDF2 || s.Argon2 == ([32]byte{}) {
		t.Fatal("salts not independent")
	}
	if _, err := NewSalts(bytes.NewReader(make([]byte, 40))); err == nil {
		t.Fatal("short reader accepted")
	}
}

func TestDeriveProperties(t *testing.T) {
	s := testSalts(t)
	sk := bytes.Repeat([]byte{7}, 16)
	k := deriveTest(t, "hunter2", sk, s)
	if !k.InsecureTest() {
		t.Fatal("test-profile keys not marked insecure")
	}
	kek, login := k.KEK(), k.LoginKey()
	if len(kek) != 32 || len(login) != 32 || bytes.Equal(kek, login) {
		t.Fatal("KEK and LoginKey must be distinct 32-byte keys")
	}
	if !bytes.Equal(deriveTest(t, "hunter2", sk, s).KEK(), kek) {
		t.Fatal("not deterministic")
	}
	differs := func(name string, k2 *Keys) {
		t.Helper()
		if bytes.Equal(k2.KEK(), kek) || bytes.Equal(k2.LoginKey(), login) {
			t.Fatalf("%s: same keys", name)
		}
	}
	differs("password", deriveTest(t, "hunter3", sk, s))
	differs("secret key", deriveTest(t, "hunter2", bytes.Repeat([]byte{8}, 16), s))
	differs("no secret key", deriveTest(t, "hunter2", nil, s))
	zero := deriveTest(t, "hunter2", make([]byte, 16), s)
	if bytes.Equal(zero.KEK(), deriveTest(t, "hunter2", nil, s).KEK()) {
		t.Fatal("zero secret key equals absent secret key")
	}
	s2 := s
	s2.Argon2[0] ^= 1
	differs("argon2 salt", deriveTest(t, "hunter2", sk, s2))
	s3 := s
	s3.PBKDF2[31] ^= 1
	differs("pbkdf2 salt", deriveTest(t, "hunter2", sk, s3))
	s4 := Salts{Argon2: s.PBKDF2, PBKDF2: s.Argon2}
	differs("swapped salts", deriveTest(t, "hunter2", sk, s4))
	p := TestParams()
	p.Argon2Threads = 2
	k5, err := DeriveWith([]byte("hunter2"), sk, p, s, true)
	if err != nil {
		t.Fatal(err)
	}
	differs("params", k5)

	a, b := k.Expand("a", 64), k.Expand("b", 64)
	if bytes.Equal(a, b) || bytes.Equal(a[:32], kek) || bytes.Equal(a[:32], login) {
		t.Fatal("Expand labels not separated")
	}
	if !bytes.Equal(k.Expand("a", 16), a[:16]) {
		t.Fatal("Expand not a prefix-stable HKDF output")
	}
}

func TestNFKC(t *testing.T) {
	s := testSalts(t)
	pairs := [][2]string{
		{"\uFB01", "fi"},                       // ligature
		{"\u212B", "\u00C5"},                   // angstrom sign
		{"e\u0301", "\u00E9"},                  // decomposed é
		{"\uFF21\uFF22", "AB"},                 // fullwidth
		{"x\u00A0y", "x y"},                    // no-break space
		{"\u2460", "1"},                        // circled digit one
		{"\u0041\u030A", "\u00C5"},             // A + ring
		{"\u1E9B\u0323", "\u1E69"},             // UAX #15 example
		{"\u3300", "\u30A2\u30D1\u30FC\u30C8"}, // square apaato
	}
	for _, p := range pairs {
		if !bytes.Equal(deriveTest(t, p[0], nil, s).KEK(), deriveTest(t, p[1], nil, s).KEK()) {
			t.Errorf("%q and %q derive different keys", p[0], p[1])
		}
	}
	if bytes.Equal(deriveTest(t, "A", nil, s).KEK(), deriveTest(t, "a", nil, s).KEK()) {
		t.Fatal("case folded: NFKC must not fold case")
	}
}

func TestDeriveRejects(t *testing.T) {
	s := testSalts(t)
	tp := TestParams()
	cases := []struct {
		name string
		pw   []byte
		sk   []byte
		p    Params
		want error
	}{
		{"invalid utf-8", []byte("a\xffb"), nil, tp, ErrInvalidPassword},
		{"lone surrogate", []byte("\xed\xa0\x80"), nil, tp, ErrInvalidPassword},
		{"empty", nil, nil, tp, ErrInvalidPassword},
		{"too long", bytes.Repeat([]byte("a"), MaxPasswordBytes+1), nil, tp, ErrInvalidPassword},
		// U+FDFA expands 3 bytes to 33 under NFKC.
		{"too long after nfkc", bytes.Repeat([]byte("\uFDFA"), MaxPasswordBytes/3), nil, tp, ErrInvalidPassword},
		{"secret key 15", []byte("pw"), make([]byte, 15), tp, ErrSecretKeySize},
		{"secret key 0 non-nil", []byte("pw"), []byte{}, tp, ErrSecretKeySize},
		{"secret key 32", []byte("pw"), make([]byte, 32), tp, ErrSecretKeySize},
	}
	for _, c := range cases {
		if _, err := DeriveWith(c.pw, c.sk, c.p, s, true); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Derive([]byte("pw"), nil, TestParams(), s); !errors.Is(err, ErrInsecureNotAllowed) {
		t.Fatalf("Derive accepted the test profile: %v", err)
	}
	// Errors never contain the password.
	_, err := DeriveWith([]byte("secretpw\xff"), nil, tp, s, true)
	if strings.Contains(err.Error(), "secretpw") {
		t.Fatal("password in error")
	}
	if _, err := DeriveWith(bytes.Repeat([]byte("a"), MaxPasswordBytes), nil, tp, s, true); err != nil {
		t.Fatalf("max-length password refused: %v", err)
	}
}

func TestDeriveDoesNotModifyInputs(t *testing.T) {
	pw := []byte("\uFB01 password")
	sk := bytes.Repeat([]byte{1}, 16)
	pw0, sk0 := bytes.Clone(pw), bytes.Clone(sk)
	deriveTest(t, string(pw), sk, testSalts(t))
	if _, err := DeriveWith(pw, sk, TestParams(), testSalts(t), true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pw, pw0) || !bytes.Equal(sk, sk0) {
		t.Fatal("inputs modified")
	}
}

func TestKeysMisuse(t *testing.T) {
	k := deriveTest(t, "pw", nil, testSalts(t))
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	for _, l := range []string{"", "UPPER", "with space", "nul\x00", strings.Repeat("a", 65)} {
		mustPanic("label "+l, func() { k.Expand(l, 32) })
	}
	mustPanic("size 0", func() { k.Expand("ok", 0) })
	mustPanic("size 65", func() { k.Expand("ok", 65) })
	k.Expand(strings.Repeat("a", 64), 64)
	k.Wipe()
	mustPanic("KEK after Wipe", func() { k.KEK() })
	mustPanic("LoginKey after Wipe", func() { k.LoginKey() })
	k2 := deriveTest(t, "pw", nil, testSalts(t))
	raw := k2.prk
	for _, f := range []string{"%v", "%+v", "%#v", "%x", "%s", "%d"} {
		for _, v := range []any{k2, *k2} {
			out := fmt.Sprintf(f, v)
			if strings.Contains(out, hex.EncodeToString(raw)) || strings.Contains(out, fmt.Sprint([]byte(raw))) || strings.Contains(out, fmt.Sprint(raw[0], " ", raw[1])) {
				t.Fatalf("%s printed key material: %s", f, out)
			}
		}
	}
}

func TestConcurrentDerive(t *testing.T) {
	s := testSalts(t)
	want := deriveTest(t, "pw", nil, s).KEK()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			k, err := DeriveWith([]byte("pw"), nil, TestParams(), s, true)
			if err != nil {
				t.Error(err)
				return
			}
			defer k.Wipe()
			if !bytes.Equal(k.KEK(), want) {
				t.Error("concurrent derive differs")
			}
		})
	}
	wg.Wait()
}

type vectorFile struct {
	Comment string `json:"comment"`
	Vectors []struct {
		Name          string  `json:"name"`
		PasswordHex   string  `json:"password_hex"`
		SecretKeyHex  *string `json:"secret_key_hex"`
		HeaderHex     string  `json:"header_hex"`
		AllowInsecure bool    `json:"allow_insecure"`
		Error         string  `json:"error"`
		Stage         string  `json:"stage"`
		KEKHex        string  `json:"kek_hex"`
		LoginKeyHex   string  `json:"login_key_hex"`
		ExpandLabel   string  `json:"expand_label"`
		ExpandHex     string  `json:"expand_hex"`
	} `json:"vectors"`
}

var vectorErrors = map[string]error{
	"malformed":            ErrMalformed,
	"unsupported":          ErrUnsupported,
	"below_floor":          ErrBelowFloor,
	"above_ceiling":        ErrAboveCeiling,
	"insecure_not_allowed": ErrInsecureNotAllowed,
	"invalid_password":     ErrInvalidPassword,
	"secret_key_size":      ErrSecretKeySize,
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 20 {
		t.Fatalf("only %d vectors", len(f.Vectors))
	}
	kek := map[string]string{}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			want := vectorErrors[v.Error]
			if v.Error != "" && want == nil {
				t.Fatalf("unknown error kind %q", v.Error)
			}
			hb := unhex(t, v.HeaderHex)
			h, err := ParseHeader(hb)
			if v.Stage == "parse" {
				if !errors.Is(err, want) {
					t.Fatalf("ParseHeader = %v, want %v", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if enc, err := h.MarshalBinary(); err != nil || !bytes.Equal(enc, hb) {
				t.Fatalf("re-encoding differs: %x, %v", enc, err)
			}
			var sk []byte
			if v.SecretKeyHex != nil {
				sk = unhex(t, *v.SecretKeyHex)
			}
			k, err := DeriveWith(unhex(t, v.PasswordHex), sk, h.Params, h.Salts, v.AllowInsecure)
			if v.Error != "" {
				if v.Stage != "derive" || !errors.Is(err, want) {
					t.Fatalf("DeriveWith = %v, want %v at %s", err, want, v.Stage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer k.Wipe()
			if got := hex.EncodeToString(k.KEK()); got != v.KEKHex {
				t.Errorf("KEK = %s, want %s", got, v.KEKHex)
			}
			if got := hex.EncodeToString(k.LoginKey()); got != v.LoginKeyHex {
				t.Errorf("LoginKey = %s, want %s", got, v.LoginKeyHex)
			}
			if got := hex.EncodeToString(k.Expand(v.ExpandLabel, len(v.ExpandHex)/2)); got != v.ExpandHex {
				t.Errorf("Expand = %s, want %s", got, v.ExpandHex)
			}
			if k.InsecureTest() != h.Params.InsecureTest {
				t.Error("insecure flag lost")
			}
			kek[v.Name] = v.KEKHex
		})
	}
	if a, b := kek["nfkc: compatibility form"], kek["nfkc: normalised form"]; a == "" || a != b {
		t.Fatal("NFKC vectors disagree")
	}
}
