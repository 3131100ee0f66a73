package totp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rfcSeeds = map[Algorithm]string{
	SHA1:   "12345678901234567890",
	SHA256: "12345678901234567890123456789012",
	SHA512: "1234567890123456789012345678901234567890123456789012345678901234",
}

func TestRFC6238Vectors(t *testing.T) {
	f, err := os.Open("testdata/rfc6238-vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 3 {
			t.Fatalf("bad vector line %q", line)
		}
		unix, _ := strconv.ParseInt(fs[0], 10, 64)
		alg := Algorithm(fs[1])
		c := Config{Secret: []byte(rfcSeeds[alg]), Algorithm: alg, Digits: 8, Period: 30}
		at := time.Unix(unix, 0).UTC()
		code, rem, err := Code(c, at)
		if err != nil {
			t.Fatal(err)
		}
		if code != fs[2] {
			t.Errorf("%s at %d: got %s, want %s", alg, unix, code, fs[2])
		}
		if want := time.Duration(30-unix%30) * time.Second; rem != want {
			t.Errorf("%s at %d: remaining %v, want %v", alg, unix, rem, want)
		}
		n++
	}
	if n != 18 {
		t.Fatalf("ran %d vectors, want 18", n)
	}
}

func TestRemainingSubSecond(t *testing.T) {
	c := mustParse(t, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	at := time.Unix(1000, 250_000_000) // 1000 = 33*30 + 10
	_, rem, err := Code(c, at)
	if err != nil {
		t.Fatal(err)
	}
	if rem != 19*time.Second+750*time.Millisecond {
		t.Fatalf("remaining %v", rem)
	}
	if _, _, err := Code(c, time.Unix(-1, 0)); !errors.Is(err, ErrTime) {
		t.Fatalf("negative time: %v", err)
	}
}

func mustParse(t *testing.T, s string) Config {
	t.Helper()
	c, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return c
}

func TestParseSeedTolerance(t *testing.T) {
	want := mustParse(t, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ") // "12345678901234567890"
	if string(want.Secret) != "12345678901234567890" || want.Algorithm != SHA1 || want.Digits != 6 || want.Period != 30 {
		t.Fatalf("defaults wrong: %+v", want)
	}
	for _, s := range []string{
		"gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
		"gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
		"  GEZDGNBVGY3TQOJQ\tGEZDGNBVGY3TQOJQ\n",
	} {
		if got := mustParse(t, s); !got.Equal(want) {
			t.Errorf("%q parsed differently", s)
		}
	}
	// 10 bytes: 16 characters, no padding needed.
	if c := mustParse(t, "JBSWY3DPEHPK3PXP"); len(c.Secret) != 10 {
		t.Fatalf("len %d", len(c.Secret))
	}
	// 11 bytes: 18 characters unpadded, 24 padded.
	a := mustParse(t, "JBSWY3DPEHPK3PXPJA")
	b := mustParse(t, "JBSWY3DPEHPK3PXPJA======")
	if !a.Equal(b) || len(a.Secret) != 11 {
		t.Fatal("padding not tolerated")
	}
}

func TestParseSeedErrors(t *testing.T) {
	cases := map[string]error{
		"":                                 ErrSeed,
		"JBSWY3DPEHPK3PX":                  ErrSeed, // 15 characters: 9 bytes, below the 10-byte floor
		"JBSWY3DPEHPK3PXPJ":                ErrSeed, // 17 chars: impossible length
		"JBSWY3DPEHPK3PXPJA====":           ErrSeed, // wrong padding amount
		"JBSWY3DPEHPK3PX1":                 ErrSeed, // '1' is not base32
		"JBSWY3DP-EHPK3PXP":                ErrSeed,
		strings.Repeat("A", 206):           ErrSeed, // 128.75 bytes
		strings.Repeat("A", MaxInputLen+1): ErrTooLarge,
	}
	for in, want := range cases {
		_, err := Parse(in)
		if !errors.Is(err, want) {
			t.Errorf("Parse(%.20q): %v, want %v", in, err, want)
		}
	}
	// Errors never echo the seed.
	_, err := Parse("JBSWY3DPEHPK3PX1ZZZZ")
	if err == nil || strings.Contains(err.Error(), "JBSWY3DP") {
		t.Fatalf("error leaks input: %v", err)
	}
}

func TestParseURI(t *testing.T) {
	c := mustParse(t, "otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=ACME%20Co&algorithm=SHA256&digits=8&period=60")
	if c.Issuer != "ACME Co" || c.Account != "john.doe@email.com" || c.Algorithm != SHA256 || c.Digits != 8 || c.Period != 60 || len(c.Secret) != 20 {
		t.Fatalf("got %+v", c)
	}
	c = mustParse(t, "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example")
	if c.Issuer != "Example" || c.Account != "alice@google.com" || c.Algorithm != SHA1 || c.Digits != 6 || c.Period != 30 {
		t.Fatalf("got %+v", c)
	}
	c = mustParse(t, "OTPAUTH://TOTP/Example:%20alice?secret=jbsw%20y3dp%20ehpk%203pxp&algorithm=sha512&digits=7&image=https%3A%2F%2Fx")
	if c.Issuer != "Example" || c.Account != "alice" || c.Algorithm != SHA512 || c.Digits != 7 {
		t.Fatalf("got %+v", c)
	}
	c = mustParse(t, "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&issuer=Only%20Param")
	if c.Issuer != "Only Param" || c.Account != "bob" {
		t.Fatalf("got %+v", c)
	}
	c = mustParse(t, "otpauth://totp/?secret=JBSWY3DPEHPK3PXP")
	if c.Issuer != "" || c.Account != "" {
		t.Fatalf("got %+v", c)
	}
}

func TestParseURIErrors(t *testing.T) {
	const s = "secret=JBSWY3DPEHPK3PXP"
	cases := []struct {
		in   string
		err  error
		text string
	}{
		{"otpauth://hotp/x?" + s + "&counter=1", ErrURI, "hotp"},
		{"otpauth://foo/x?" + s, ErrURI, `type "foo"`},
		{"otpauth://totp/x?issuer=A", ErrURI, "missing secret"},
		{"otpauth://totp/x?" + s + "&" + s, ErrURI, `"secret" repeated`},
		{"otpauth://totp/x?" + s + "&algorithm=MD5", ErrInvalid, `algorithm "MD5"`},
		{"otpauth://totp/x?" + s + "&digits=9", ErrInvalid, "9 digits"},
		{"otpauth://totp/x?" + s + "&digits=5", ErrInvalid, "5 digits"},
		{"otpauth://totp/x?" + s + "&digits=06", ErrURI, `digits "06"`},
		{"otpauth://totp/x?" + s + "&digits=-6", ErrURI, `digits "-6"`},
		{"otpauth://totp/x?" + s + "&period=0", ErrURI, `period "0"`},
		{"otpauth://totp/x?" + s + "&period=301", ErrInvalid, "period 301"},
		{"otpauth://totp/x?" + s + "&period=99999", ErrURI, "small decimal"},
		{"otpauth://totp/x?" + s + "&foo=bar", ErrURI, `unknown parameter "foo"`},
		{"otpauth://totp/A:x?" + s + "&issuer=B", ErrURI, "differs"},
		{"otpauth://totp/A:x:y?" + s, ErrInvalid, "colon"},
		{"otpauth://totp/A:x%0A?" + s, ErrInvalid, "control"},
		{"otpauth://totp/x?" + s + "#frag", ErrURI, "want otpauth"},
		{"otpauth://totp/x?secret=JBSWY3DP", ErrSeed, "5 bytes"},
		{"otpauth://totp/x?secret=%zz", ErrURI, "bad query"},
	}
	for _, tc := range cases {
		_, err := Parse(tc.in)
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Parse(%q): %v, want %v containing %q", tc.in, err, tc.err, tc.text)
		}
	}
}

func TestURIRoundTrip(t *testing.T) {
	c := Config{Secret: []byte("12345678901234567890"), Algorithm: SHA256, Digits: 8, Period: 45, Issuer: "Big & Co/Ltd", Account: "a b+c@d?e"}
	u, err := c.URI()
	if err != nil {
		t.Fatal(err)
	}
	want := "otpauth://totp/Big%20&%20Co%2FLtd:a%20b+c@d%3Fe?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Big+%26+Co%2FLtd&algorithm=SHA256&digits=8&period=45"
	if u != want {
		t.Fatalf("URI\n got %s\nwant %s", u, want)
	}
	back := mustParse(t, u)
	if !back.Equal(c) {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestJSON(t *testing.T) {
	c := Config{Secret: []byte("12345678901234567890"), Algorithm: SHA1, Digits: 6, Period: 30, Issuer: "A<B>", Account: "me"}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","algorithm":"SHA1","digits":6,"period":30,"issuer":"A\u003cB\u003e","account":"me"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || !back.Equal(c) {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	// Embedded in an indented document it still decodes.
	doc, _ := json.MarshalIndent(map[string]Config{"totp": c}, "", "  ")
	var m map[string]Config
	if err := json.Unmarshal(doc, &m); err != nil || !m["totp"].Equal(c) {
		t.Fatalf("indented: %v", err)
	}
	bad := []string{
		strings.Replace(want, `"v":1`, `"v":2`, 1),
		strings.Replace(want, `GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ`, `gezdgnbvgy3tqojqgezdgnbvgy3tqojq`, 1),
		strings.Replace(want, `GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ`, `GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====`, 1),
		strings.Replace(want, `"digits":6`, `"digits":9`, 1),
		strings.Replace(want, `"digits":6`, `"digits":6.0`, 1),
		strings.Replace(want, `"account":"me"`, `"account":"me","x":1`, 1),
		strings.Replace(want, `,"account":"me"`, ``, 1),
		strings.Replace(want, `"v":1,`, `"v":1,"v":1,`, 1),
		strings.Replace(want, `"secret"`, `"Secret"`, 1),
		strings.Replace(want, `A\u003cB\u003e`, `A<B>`, 1),
		want + `{}`,
		`null`,
	}
	for _, in := range bad {
		var c Config
		if err := json.Unmarshal([]byte(in), &c); err == nil {
			t.Errorf("accepted %s", in)
		} else if strings.Contains(err.Error(), "GEZDGNBV") || strings.Contains(strings.ToLower(err.Error()), "gezdgnbv") {
			t.Errorf("error leaks seed: %v", err)
		}
	}
}

func TestNoSeedInPrintingPaths(t *testing.T) {
	c := mustParse(t, "otpauth://totp/I:a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "cfg", c)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", c, c, c), logBuf.String()} {
		if strings.Contains(s, "12345678901234567890") || strings.Contains(s, "GEZDGNBV") || strings.Contains(s, "49 50 51") {
			t.Errorf("seed printed: %s", s)
		}
	}
}
