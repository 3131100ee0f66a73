package link

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/sethvargo/go-diceware/diceware"
)

// A code is "N-word-word-word": N, the nameplate (1 to 99), tells the new
// device which waiting device to reach and is sent in the clear during
// discovery; the three words (from the EFF long list of 7,776, about 38.8
// bits) are the secret. The whole code is CPace's password.
const (
	codeWords    = 3
	maxNameplate = 99
	effWords     = 7776
)

// ErrCode: a code that is not of the form N-word-word-word.
var ErrCode = errors.New("the code is not of the form N-word-word-word (for example 12-purple-walrus-tiger)")

// Code is a parsed link code.
type Code struct {
	Nameplate int
	Words     []string
}

// String is the code's canonical text.
func (c Code) String() string {
	return strconv.Itoa(c.Nameplate) + "-" + strings.Join(c.Words, "-")
}

// newCode draws a code from r.
func newCode(r io.Reader) (Code, error) {
	var b [2]byte
	c := Code{}
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Code{}, fmt.Errorf("draw a link code: %w", err)
		}
		n := int(binary.BigEndian.Uint16(b[:2]))
		if n >= 65536/maxNameplate*maxNameplate { // reject to stay uniform
			continue
		}
		c.Nameplate = n%maxNameplate + 1
		break
	}
	wl := diceware.WordListEffLarge()
	for len(c.Words) < codeWords {
		var d [2]byte
		if _, err := io.ReadFull(r, d[:]); err != nil {
			return Code{}, fmt.Errorf("draw a link code: %w", err)
		}
		i := int(binary.BigEndian.Uint16(d[:]))
		if i >= 65536/effWords*effWords {
			continue
		}
		w := wl.WordAt(rollKey(i % effWords))
		if strings.ContainsAny(w, "- ") {
			continue // the list's few hyphenated words would break parsing
		}
		c.Words = append(c.Words, w)
	}
	return c, nil
}

// ParseCode reads a code as a person typed it: case, surrounding spaces
// and spaces instead of dashes do not matter.
func ParseCode(s string) (Code, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == ' ' || r == '\t' })
	if len(parts) != 1+codeWords {
		return Code{}, ErrCode
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 1 || n > maxNameplate || parts[0] != strconv.Itoa(n) {
		return Code{}, ErrCode
	}
	words := wordSet()
	for _, w := range parts[1:] {
		if !words[w] {
			// Caught here, a typo does not spend the code.
			return Code{}, fmt.Errorf("%w: %.20q is not one of the code's words; check the spelling", ErrCode, w)
		}
	}
	return Code{Nameplate: n, Words: parts[1:]}, nil
}

// wordSet is the words a code can hold (the EFF long list without its
// hyphenated words).
var wordSet = sync.OnceValue(func() map[string]bool {
	wl := diceware.WordListEffLarge()
	m := make(map[string]bool, effWords)
	for i := range effWords {
		if w := wl.WordAt(rollKey(i)); !strings.ContainsAny(w, "- ") {
			m[w] = true
		}
	}
	return m
})

// rollKey maps an index in [0, 7776) to the EFF list's dice key: the index
// in base 6, five digits, each plus one, read as a decimal number.
func rollKey(i int) int {
	key := 0
	for pos, p6 := 10000, 1296; pos > 0; pos, p6 = pos/10, p6/6 {
		key += (i/p6%6 + 1) * pos
	}
	return key
}

// defaultRand is crypto/rand, the one source here: a code needs
// unpredictability only, and CPace's scalars come from the caller's reader.
var defaultRand io.Reader = rand.Reader
