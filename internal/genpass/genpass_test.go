package genpass

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

// seeded returns a deterministic stream for reproducible statistics.
func seeded(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

// constReader returns the same byte forever.
type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// chiSquare returns the chi-square statistic of counts against a uniform
// expectation.
func chiSquare(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	exp := float64(total) / float64(len(counts))
	x := 0.0
	for _, c := range counts {
		d := float64(c) - exp
		x += d * d / exp
	}
	return x
}

// chiCritical approximates the chi-square quantile for p = 1e-4 with
// Wilson–Hilferty (z = 3.719).
func chiCritical(df int) float64 {
	k := float64(df)
	a := 2 / (9 * k)
	return k * math.Pow(1-a+3.719*math.Sqrt(a), 3)
}

func TestUniformNoBias(t *testing.T) {
	for _, n := range []int{2, 3, 10, 88, 94, 7776} {
		s := newSampler(seeded(byte(n)))
		counts := make([]int, n)
		draws := n * 400
		if draws < 40000 {
			draws = 40000
		}
		for range draws {
			v, err := s.uniform(uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			counts[v]++
		}
		if x, c := chiSquare(counts), chiCritical(n-1); x > c {
			t.Errorf("n=%d: chi-square %.1f > critical %.1f: biased", n, x, c)
		}
	}
}

// TestModuloBiasIsDetectable shows that the chi-square check above has the
// power to see the bias that a byte-modulo reduction would cause.
func TestModuloBiasIsDetectable(t *testing.T) {
	r := seeded(1)
	counts := make([]int, 94)
	buf := make([]byte, 94*400)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	for _, b := range buf {
		counts[int(b)%94]++
	}
	if x, c := chiSquare(counts), chiCritical(93); x <= c {
		t.Fatalf("modulo reduction not detected: %.1f <= %.1f", x, c)
	}
}

func TestUniformRejectsExactly(t *testing.T) {
	// n = 94 uses 7-bit values: 0xE4&0x7f = 100 is rejected, 0x05 accepted.
	s := newSampler(bytes.NewReader(append([]byte{0xE4, 0x05}, make([]byte, samplerChunk-2)...)))
	v, err := s.uniform(94)
	if err != nil || v != 5 {
		t.Fatalf("got %d, %v; want 5", v, err)
	}
	// n = 7776 uses 13 bits of two bytes, big-endian: 0x1E60 = 7776 is
	// rejected, 0x1E5F = 7775 accepted.
	s = newSampler(bytes.NewReader(append([]byte{0x1E, 0x60, 0xFE, 0x5F}, make([]byte, samplerChunk-4)...)))
	v, err = s.uniform(7776)
	if err != nil || v != 7775 {
		t.Fatalf("got %d, %v; want 7775", v, err)
	}
}

func TestBrokenReader(t *testing.T) {
	// 0xFF masks to 127 >= 94 forever.
	if _, _, err := Password(constReader(0xFF), PasswordOptions{}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("constant reader: got %v, want ErrExhausted", err)
	}
	// Zero always picks 'a', which can never satisfy RequireEachClass.
	if _, _, err := Password(constReader(0), PasswordOptions{RequireEachClass: true}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("zero reader: got %v, want ErrExhausted", err)
	}
	short := bytes.NewReader(make([]byte, 10))
	if _, _, err := Password(short, PasswordOptions{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short reader: got %v, want ErrUnexpectedEOF", err)
	}
}

func TestPasswordDefaults(t *testing.T) {
	pw, bits, err := Password(rand.Reader, PasswordOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pw) != DefaultLength {
		t.Fatalf("length %d, want %d", len(pw), DefaultLength)
	}
	if want := 20 * math.Log2(94); bits != want {
		t.Fatalf("entropy %v, want %v", bits, want)
	}
}

func TestPasswordClasses(t *testing.T) {
	all := lowerChars + upperChars + digitChars + symbolChars
	cases := []struct {
		name    string
		o       PasswordOptions
		allowed string
	}{
		{"all", PasswordOptions{Length: 64}, all},
		{"lower+digits", PasswordOptions{Length: 64, NoUpper: true, NoSymbols: true}, lowerChars + digitChars},
		{"symbols", PasswordOptions{Length: 64, NoLower: true, NoUpper: true, NoDigits: true}, symbolChars},
		{"no ambiguous", PasswordOptions{Length: 64, ExcludeAmbiguous: true}, "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{}~"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[byte]bool{}
			r := seeded(7)
			for range 200 {
				pw, _, err := Password(r, tc.o)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range pw {
					if !strings.ContainsRune(tc.allowed, rune(c)) {
						t.Fatalf("character %q not allowed", c)
					}
					seen[c] = true
				}
			}
			// 12800 draws: every allowed character appears.
			if len(seen) != len(tc.allowed) {
				t.Fatalf("saw %d distinct characters, want %d", len(seen), len(tc.allowed))
			}
		})
	}
}

func TestRequireEachClass(t *testing.T) {
	o := PasswordOptions{Length: 4, RequireEachClass: true, ExcludeAmbiguous: true}
	r := seeded(3)
	cls := o.classes()
	for range 2000 {
		pw, _, err := Password(r, o)
		if err != nil {
			t.Fatal(err)
		}
		if !hasEachClass(pw, cls) {
			t.Fatalf("password misses a class")
		}
	}
}

// bruteCount counts length-L strings over disjoint classes of the given
// sizes that use every class, by enumerating class sequences — an
// independent check of the inclusion–exclusion formula.
func bruteCount(sizes []int, length int) *big.Int {
	k := len(sizes)
	total := new(big.Int)
	seq := make([]int, length)
	var rec func(pos int)
	rec = func(pos int) {
		if pos == length {
			used := 0
			prod := big.NewInt(1)
			for _, c := range seq {
				used |= 1 << c
				prod.Mul(prod, big.NewInt(int64(sizes[c])))
			}
			if used == 1<<k-1 {
				total.Add(total, prod)
			}
			return
		}
		for c := range k {
			seq[pos] = c
			rec(pos + 1)
		}
	}
	rec(0)
	return total
}

func TestPasswordEntropyExact(t *testing.T) {
	cases := []struct {
		o    PasswordOptions
		want float64
	}{
		{PasswordOptions{}, 20 * math.Log2(94)},
		{PasswordOptions{Length: 16, NoSymbols: true}, 16 * math.Log2(62)},
		{PasswordOptions{Length: 12, ExcludeAmbiguous: true}, 12 * math.Log2(88)},
		{PasswordOptions{Length: 8, NoLower: true, NoUpper: true, NoSymbols: true}, 8 * math.Log2(10)},
		// Length 4 with 4 required classes: exactly one of each, 4! orders.
		{PasswordOptions{Length: 4, RequireEachClass: true}, math.Log2(24 * 26 * 26 * 10 * 32)},
		{PasswordOptions{Length: 4, RequireEachClass: true, ExcludeAmbiguous: true}, math.Log2(24 * 25 * 24 * 8 * 31)},
		// A single class: the constraint is always met.
		{PasswordOptions{Length: 10, RequireEachClass: true, NoUpper: true, NoDigits: true, NoSymbols: true}, 10 * math.Log2(26)},
	}
	for _, tc := range cases {
		got, err := PasswordEntropy(tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%+v: entropy %v, want %v", tc.o, got, tc.want)
		}
	}
	for _, length := range []int{5, 8, 9} {
		for _, o := range []PasswordOptions{
			{Length: length, RequireEachClass: true},
			{Length: length, RequireEachClass: true, ExcludeAmbiguous: true, NoSymbols: true},
		} {
			var sizes []int
			for _, c := range o.classes() {
				sizes = append(sizes, len(c))
			}
			want := log2Big(bruteCount(sizes, length))
			got, err := PasswordEntropy(o)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-want) > 1e-9 {
				t.Errorf("%+v: entropy %v, brute force %v", o, got, want)
			}
			if unconstrained := float64(length) * math.Log2(float64(sumSizes(sizes))); got >= unconstrained {
				t.Errorf("%+v: constrained entropy %v not below %v", o, got, unconstrained)
			}
		}
	}
	// Long passwords exercise the big-integer path.
	got, err := PasswordEntropy(PasswordOptions{Length: 1024, RequireEachClass: true})
	if err != nil {
		t.Fatal(err)
	}
	if max := 1024 * math.Log2(94); got > max || got < max-1e-6 {
		t.Errorf("length 1024: entropy %v, want just below %v", got, max)
	}
}

func sumSizes(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

func TestPasswordBounds(t *testing.T) {
	cases := []struct {
		o    PasswordOptions
		err  error
		text string
	}{
		{PasswordOptions{Length: 3}, ErrLength, "password length out of range: 3 is not between 4 and 1024"},
		{PasswordOptions{Length: 1025}, ErrLength, "1025 is not between 4 and 1024"},
		{PasswordOptions{Length: -1}, ErrLength, "-1 is not between"},
		{PasswordOptions{NoLower: true, NoUpper: true, NoDigits: true, NoSymbols: true}, ErrNoClasses, "enable at least one of lower, upper, digits, symbols"},
	}
	for _, tc := range cases {
		_, _, err := Password(rand.Reader, tc.o)
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%+v: got %v, want %v containing %q", tc.o, err, tc.err, tc.text)
		}
	}
	for _, n := range []int{MinLength, MaxLength} {
		pw, _, err := Password(rand.Reader, PasswordOptions{Length: n, RequireEachClass: true})
		if err != nil || len(pw) != n {
			t.Errorf("length %d: %d, %v", n, len(pw), err)
		}
	}
}

func TestWordList(t *testing.T) {
	seen := map[string]bool{}
	for i := range EFFWords {
		w, err := WordAt(i)
		if err != nil {
			t.Fatal(err)
		}
		if w == "" || len(w) > maxWordLen || seen[w] {
			t.Fatalf("index %d: bad or duplicate word %q", i, w)
		}
		seen[w] = true
	}
	for i, want := range map[int]string{0: "abacus", 1: "abdomen", 6: "ablaze", 7775: "zoom"} {
		if w, _ := WordAt(i); w != want {
			t.Errorf("WordAt(%d) = %q, want %q", i, w, want)
		}
	}
	if _, err := WordAt(EFFWords); err == nil {
		t.Error("WordAt(7776) succeeded")
	}
	if rollKey(0) != 11111 || rollKey(7775) != 66666 || rollKey(6) != 11121 {
		t.Error("rollKey mapping wrong")
	}
}

func TestPassphraseDeterministic(t *testing.T) {
	// All-zero input selects index 0 ("abacus") every time; the 13-bit draw
	// for 7776 uses two bytes, the capitalization coin and digit one byte.
	pp, bits, err := Passphrase(constReader(0), PassphraseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(pp) != "abacus-abacus-abacus-abacus-abacus-abacus" {
		t.Fatalf("got %q", string(pp))
	}
	if want := 6 * math.Log2(7776); bits != want {
		t.Fatalf("entropy %v, want %v", bits, want)
	}
	pp, _, _ = Passphrase(constReader(0), PassphraseOptions{Words: 3, Separator: " ", Capitalization: CapTitle, AppendDigit: true})
	if string(pp) != "Abacus Abacus Abacus0" {
		t.Fatalf("got %q", string(pp))
	}
	pp, _, _ = Passphrase(constReader(0), PassphraseOptions{Words: 3, Capitalization: CapUpper})
	if string(pp) != "ABACUS-ABACUS-ABACUS" {
		t.Fatalf("got %q", string(pp))
	}
	// Stream: word 7775 (0x1E5F), coin 1, word 0, coin 0, word 1, coin 1, digit 9.
	stream := []byte{0x1E, 0x5F, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x09}
	stream = append(stream, make([]byte, samplerChunk-len(stream))...)
	pp, _, err = Passphrase(bytes.NewReader(stream), PassphraseOptions{Words: 3, Separator: "_", Capitalization: CapRandom, AppendDigit: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(pp) != "ZOOM_abacus_ABDOMEN9" {
		t.Fatalf("got %q", string(pp))
	}
}

func TestPassphraseEntropy(t *testing.T) {
	l := math.Log2(7776)
	cases := []struct {
		o    PassphraseOptions
		want float64
	}{
		{PassphraseOptions{}, 6 * l},
		{PassphraseOptions{Words: 3}, 3 * l},
		{PassphraseOptions{Words: 64, Capitalization: CapTitle}, 64 * l},
		{PassphraseOptions{Words: 5, Capitalization: CapRandom}, 5*l + 5},
		{PassphraseOptions{Words: 7, AppendDigit: true}, 7*l + math.Log2(10)},
		{PassphraseOptions{Words: 4, Capitalization: CapRandom, AppendDigit: true}, 4*l + 4 + math.Log2(10)},
	}
	for _, tc := range cases {
		got, err := PassphraseEntropy(tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.o, got, tc.want)
		}
	}
}

func TestPassphraseRandom(t *testing.T) {
	r := seeded(9)
	for range 200 {
		pp, _, err := Passphrase(r, PassphraseOptions{Words: 8, Separator: "::", Capitalization: CapRandom, AppendDigit: true})
		if err != nil {
			t.Fatal(err)
		}
		s := string(pp)
		last := s[len(s)-1]
		if last < '0' || last > '9' {
			t.Fatalf("%q: no trailing digit", s)
		}
		words := strings.Split(s[:len(s)-1], "::")
		if len(words) != 8 {
			t.Fatalf("%q: %d words", s, len(words))
		}
		for _, w := range words {
			if w != strings.ToLower(w) && w != strings.ToUpper(w) {
				t.Fatalf("%q: mixed-case word %q", s, w)
			}
		}
	}
}

func TestPassphraseBounds(t *testing.T) {
	cases := []struct {
		o    PassphraseOptions
		err  error
		text string
	}{
		{PassphraseOptions{Words: 2}, ErrWords, "passphrase word count out of range: 2 is not between 3 and 64"},
		{PassphraseOptions{Words: 65}, ErrWords, "65 is not between 3 and 64"},
		{PassphraseOptions{Separator: "a"}, ErrSeparator, `"a"`},
		{PassphraseOptions{Separator: "1"}, ErrSeparator, "printable ASCII punctuation"},
		{PassphraseOptions{Separator: "\n"}, ErrSeparator, "invalid passphrase separator"},
		{PassphraseOptions{Separator: "é"}, ErrSeparator, "invalid passphrase separator"},
		{PassphraseOptions{Separator: "---------"}, ErrSeparator, "longer than 8 bytes"},
		{PassphraseOptions{Capitalization: 9}, ErrCapitalization, "unknown capitalization: 9"},
	}
	for _, tc := range cases {
		_, _, err := Passphrase(rand.Reader, tc.o)
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%+v: got %v, want %v containing %q", tc.o, err, tc.err, tc.text)
		}
	}
}

func TestCapitalizationNames(t *testing.T) {
	for c := CapNone; c <= CapRandom; c++ {
		got, err := ParseCapitalization(c.String())
		if err != nil || got != c {
			t.Errorf("%v: %v, %v", c, got, err)
		}
	}
	if _, err := ParseCapitalization("Title"); !errors.Is(err, ErrCapitalization) {
		t.Errorf("ParseCapitalization(Title): %v", err)
	}
}

func TestStrength(t *testing.T) {
	for bits, want := range map[float64]string{0: "weak", 49.9: "weak", 50: "fair", 79.9: "fair", 80: "strong", 99.9: "strong", 100: "very strong", 500: "very strong"} {
		if got := Strength(bits); got != want {
			t.Errorf("Strength(%v) = %q, want %q", bits, got, want)
		}
	}
}

func TestRedacts(t *testing.T) {
	pw, _, err := Password(rand.Reader, PasswordOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%v %s %x %q", pw, pw, pw, pw); strings.Contains(s, string(pw)) || strings.Contains(s, fmt.Sprintf("%x", []byte(pw))) {
		t.Fatalf("password printed: %s", s)
	}
}
