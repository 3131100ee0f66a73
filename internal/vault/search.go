package vault

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/secret"
)

// scoreOverview rates how well query matches an item: 0 is no match.
// Each query word must match some field; an exact title beats a prefix, a
// prefix beats a substring, and a substring beats a fuzzy subsequence.
func scoreOverview(words []string, o *Overview) int {
	if len(words) == 0 {
		return 1
	}
	fields := [...]struct {
		text   string
		weight int
	}{
		{o.lower.title, 4}, {o.lower.username, 2}, {o.lower.folder, 2}, {o.lower.tags, 2}, {o.lower.urls, 1},
	}
	total := 0
	for _, w := range words {
		best := 0
		for _, f := range fields {
			if s := scoreText(w, f.text) * f.weight; s > best {
				best = s
			}
		}
		if best == 0 {
			return 0
		}
		total += best
	}
	return total
}

func scoreText(q, text string) int {
	switch {
	case text == "":
		return 0
	case text == q:
		return 100
	case strings.HasPrefix(text, q):
		return 60
	case strings.Contains(text, q):
		i := strings.Index(text, q)
		if i > 0 && !unicode.IsLetter(rune(text[i-1])) && !unicode.IsDigit(rune(text[i-1])) {
			return 50 // starts a word
		}
		return 40
	}
	// Fuzzy: q's letters in order, fewer gaps score higher.
	pos, gaps, last := 0, 0, -1
	for i := 0; i < len(text) && pos < len(q); i++ {
		if text[i] == q[pos] {
			if last >= 0 && i != last+1 {
				gaps++
			}
			last = i
			pos++
		}
	}
	if pos < len(q) || len(q) < 2 {
		return 0
	}
	if s := 30 - 3*gaps; s > 1 {
		return s
	}
	return 1
}

// encodeItem is the payload plaintext: the item's JSON. Revision is not
// part of it (the envelope binds it).
func encodeItem(it item.Item) ([]byte, error) {
	b, err := json.Marshal(it)
	if err != nil {
		return nil, fmt.Errorf("encode item: %w", err)
	}
	if len(b) > item.MaxPayload {
		return nil, fmt.Errorf("%w: item is %d bytes encoded, more than %d", item.ErrInvalid, len(b), item.MaxPayload)
	}
	return b, nil
}

func wipeBytes(b []byte) { secret.Wipe(b) }

func equalDigest(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
