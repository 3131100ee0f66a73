package genpass

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/sethvargo/go-diceware/diceware"

	"github.com/safehold/safehold/internal/secret"
)

// Passphrase word-count bounds, defaults and the EFF large list size.
const (
	DefaultWords     = 6
	MinWords         = 3
	MaxWords         = 64
	DefaultSeparator = "-"
	MaxSeparatorLen  = 8

	// EFFWords is the size of the EFF long word list (6^5: five dice).
	EFFWords = 7776

	// maxWordLen bounds the length of a list word (the longest EFF word has
	// 9 letters).
	maxWordLen = 16
)

// Capitalization selects how passphrase words are cased.
type Capitalization int

const (
	// CapNone leaves every word in lower case, as in the list.
	CapNone Capitalization = iota
	// CapTitle upper-cases the first letter of every word.
	CapTitle
	// CapUpper upper-cases every word.
	CapUpper
	// CapRandom upper-cases each word independently with probability 1/2,
	// adding exactly one bit of entropy per word.
	CapRandom
)

// String returns the name used in the CLI and the design document.
func (c Capitalization) String() string {
	switch c {
	case CapNone:
		return "none"
	case CapTitle:
		return "title"
	case CapUpper:
		return "upper"
	case CapRandom:
		return "random"
	}
	return fmt.Sprintf("Capitalization(%d)", int(c))
}

// ParseCapitalization is the inverse of Capitalization.String.
func ParseCapitalization(s string) (Capitalization, error) {
	for c := CapNone; c <= CapRandom; c++ {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want none, title, upper or random)", ErrCapitalization, s)
}

// Errors wrapped by the errors returned for invalid PassphraseOptions.
var (
	ErrWords          = errors.New("passphrase word count out of range")
	ErrSeparator      = errors.New("invalid passphrase separator")
	ErrCapitalization = errors.New("unknown capitalization")
	ErrWordList       = errors.New("unexpected word list")
)

// PassphraseOptions configures Passphrase. The zero value is the default:
// six lower-case words joined by "-", no digit.
type PassphraseOptions struct {
	// Words is the number of words; 0 means DefaultWords, otherwise
	// MinWords..MaxWords.
	Words int
	// Separator joins the words; "" means DefaultSeparator. It is 1 to
	// MaxSeparatorLen printable ASCII characters, none a letter or digit, so
	// that it can never be confused with part of a word or the digit.
	Separator string
	// Capitalization of the words.
	Capitalization Capitalization
	// AppendDigit appends one uniformly chosen digit 0-9 to the last word.
	AppendDigit bool
}

func (o PassphraseOptions) resolve() (int, string, error) {
	n := o.Words
	if n == 0 {
		n = DefaultWords
	}
	if n < MinWords || n > MaxWords {
		return 0, "", fmt.Errorf("%w: %d is not between %d and %d", ErrWords, n, MinWords, MaxWords)
	}
	sep := o.Separator
	if sep == "" {
		sep = DefaultSeparator
	}
	if len(sep) > MaxSeparatorLen {
		return 0, "", fmt.Errorf("%w: longer than %d bytes", ErrSeparator, MaxSeparatorLen)
	}
	for i := 0; i < len(sep); i++ {
		c := sep[i]
		if c < 0x20 || c > 0x7e || isAlnum(c) {
			return 0, "", fmt.Errorf("%w: %q (use printable ASCII punctuation or space)", ErrSeparator, sep)
		}
	}
	if o.Capitalization < CapNone || o.Capitalization > CapRandom {
		return 0, "", fmt.Errorf("%w: %d", ErrCapitalization, int(o.Capitalization))
	}
	return n, sep, nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// passphraseEntropy is words*log2(7776), plus one bit per word for
// CapRandom, plus log2(10) for the digit.
func passphraseEntropy(words int, o PassphraseOptions) float64 {
	bits := float64(words) * math.Log2(EFFWords)
	if o.Capitalization == CapRandom {
		bits += float64(words)
	}
	if o.AppendDigit {
		bits += math.Log2(10)
	}
	return bits
}

// PassphraseEntropy returns the entropy in bits of passphrases generated
// with o, without generating one.
func PassphraseEntropy(o PassphraseOptions) (float64, error) {
	n, _, err := o.resolve()
	if err != nil {
		return 0, err
	}
	return passphraseEntropy(n, o), nil
}

// effWords returns the EFF long list and checks its size.
func effWords() (diceware.WordList, error) {
	wl := diceware.WordListEffLarge()
	nw, ok := wl.(diceware.WordListNumWordser)
	if !ok || nw.NumWords() != EFFWords || wl.Digits() != 5 {
		return nil, ErrWordList
	}
	return wl, nil
}

// rollKey maps an index in [0, 7776) to the list's dice key: the index
// written in base 6 with five digits, each digit plus one, read as a
// decimal number (0 -> 11111, 7775 -> 66666).
func rollKey(i int) int {
	key := 0
	for pos := 10000; pos > 0; pos /= 10 {
		key += (i/pow6(pos)%6 + 1) * pos
	}
	return key
}

// pow6 maps a decimal place (1, 10, ..., 10000) to the matching power of 6.
func pow6(decimalPlace int) int {
	p := 1
	for d := 1; d < decimalPlace; d *= 10 {
		p *= 6
	}
	return p
}

// WordAt returns word i (0 <= i < 7776) of the EFF long list in list order.
func WordAt(i int) (string, error) {
	if i < 0 || i >= EFFWords {
		return "", fmt.Errorf("word index %d out of range", i)
	}
	wl, err := effWords()
	if err != nil {
		return "", err
	}
	w := wl.WordAt(rollKey(i))
	if w == "" {
		return "", ErrWordList
	}
	return w, nil
}

// Passphrase generates a passphrase from r and returns it with its entropy
// in bits.
func Passphrase(r io.Reader, o PassphraseOptions) (secret.Bytes, float64, error) {
	n, sep, err := o.resolve()
	if err != nil {
		return nil, 0, err
	}
	wl, err := effWords()
	if err != nil {
		return nil, 0, err
	}
	s := newSampler(r)
	defer s.close()
	// Capacity for the longest possible result so that append never moves
	// (and leaves behind an unwiped copy of) the passphrase. No EFF word is
	// longer than maxWordLen bytes.
	out := make(secret.Bytes, 0, n*(maxWordLen+len(sep))+1)
	word := make([]byte, 0, maxWordLen)
	defer secret.Wipe(word[:cap(word)])
	fail := func(err error) (secret.Bytes, float64, error) {
		out.Wipe()
		return nil, 0, err
	}
	for w := range n {
		i, err := s.uniform(EFFWords)
		if err != nil {
			return fail(err)
		}
		word = append(word[:0], wl.WordAt(rollKey(int(i)))...)
		if len(word) == 0 || len(word) > maxWordLen {
			return fail(ErrWordList)
		}
		upper := false
		switch o.Capitalization {
		case CapTitle:
			word[0] = toUpper(word[0])
		case CapUpper:
			upper = true
		case CapRandom:
			b, err := s.uniform(2)
			if err != nil {
				return fail(err)
			}
			upper = b == 1
		}
		if upper {
			for j := range word {
				word[j] = toUpper(word[j])
			}
		}
		if w > 0 {
			out = append(out, sep...)
		}
		out = append(out, word...)
	}
	if o.AppendDigit {
		d, err := s.uniform(10)
		if err != nil {
			return fail(err)
		}
		out = append(out, byte('0'+d))
	}
	return out, passphraseEntropy(n, o), nil
}

func toUpper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
