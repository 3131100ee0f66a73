// Package audittest writes the test inputs of internal/audit: breach lists
// in the Pwned Passwords SHA-1 format (sorted by hash) of any size, without
// holding them in memory, and vaults' worth of items with a known mix of
// passwords. Everything comes from a fixed seed, so that a benchmark or a
// test sees the same data each run.
package audittest

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/safehold/safehold/internal/item"
)

// WriteList writes n random SHA-1 sums plus the sums of include (with their
// counts) as a breach list, sorted by hash, CR LF line ends. The random sums
// are made in order (the i-th lies in the i-th of n equal slices of the hash
// space), so nothing is sorted in memory. Counts of random sums are 1..1000.
func WriteList(w io.Writer, n int, seed uint64, include map[[sha1.Size]byte]int64) error {
	r := rand.New(rand.NewPCG(seed, 0x5afe))
	known := make([][sha1.Size]byte, 0, len(include))
	for s := range include {
		known = append(known, s)
	}
	slices.SortFunc(known, func(a, b [sha1.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	bw := bufio.NewWriterSize(w, 1<<20)
	line := make([]byte, 0, 64)
	emit := func(s [sha1.Size]byte, count int64) error {
		line = line[:0]
		line = hex.AppendEncode(line, s[:])
		for i := range 2 * sha1.Size {
			if line[i] >= 'a' {
				line[i] -= 'a' - 'A'
			}
		}
		line = append(line, ':')
		line = strconv.AppendInt(line, count, 10)
		line = append(line, '\r', '\n')
		_, err := bw.Write(line)
		return err
	}
	step := ^uint64(0) / uint64(max(n, 1))
	for i := range n {
		var s [sha1.Size]byte
		binary.BigEndian.PutUint64(s[:8], uint64(i)*step+r.Uint64N(step))
		binary.BigEndian.PutUint64(s[8:16], r.Uint64())
		binary.BigEndian.PutUint32(s[16:], r.Uint32())
		for len(known) > 0 && bytes.Compare(known[0][:], s[:]) <= 0 {
			if known[0] != s {
				if err := emit(known[0], include[known[0]]); err != nil {
					return err
				}
			}
			known = known[1:]
		}
		if err := emit(s, 1+r.Int64N(1000)); err != nil {
			return err
		}
	}
	for _, s := range known {
		if err := emit(s, include[s]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Vault is a set of items like a real vault's, and what an audit of it
// must find.
type Vault struct {
	Items []item.Item
	// Breached maps the SHA-1 of each password that belongs in the breach
	// list to its count.
	Breached map[[sha1.Size]byte]int64
}

// Epoch is the "now" of the items' dates: they were created up to 1,500
// days before it, and their passwords changed since.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Items returns n login items from seed: about 60% with generated
// passwords (20 random characters), 15% with human passwords (a word and a
// year, all of them breached), 10% reusing an earlier item's password, 10%
// with passphrases and 5% without a password but with an empty TOTP field.
func Items(n int, seed uint64) Vault {
	r := rand.New(rand.NewPCG(seed, 0x17e5))
	const chars = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#$%&*+-=?@^_"
	words := []string{"summer", "dragon", "monkey", "sunshine", "football", "shadow", "master", "princess", "welcome", "qwerty",
		"orange", "purple", "cheese", "banana", "guitar", "coffee", "winter", "silver", "rocket", "garden"}
	v := Vault{Breached: make(map[[sha1.Size]byte]int64)}
	for i := range n {
		site := words[r.IntN(len(words))] + strconv.Itoa(i)
		it := item.Item{ID: fmt.Sprintf("item%06d", i), Type: item.Login, Title: strings.ToUpper(site[:1]) + site[1:],
			Username: fmt.Sprintf("user%d@example.com", i), URLs: []string{"https://" + site + ".example.com/login"}}
		it.Created = Epoch.AddDate(0, 0, -r.IntN(1500))
		it.Modified = it.Created
		switch p := r.IntN(100); {
		case p < 60:
			b := make([]byte, 20)
			for j := range b {
				b[j] = chars[r.IntN(len(chars))]
			}
			it.Password = string(b)
		case p < 75:
			w := words[r.IntN(len(words))]
			it.Password = strings.ToUpper(w[:1]) + w[1:] + strconv.Itoa(1970+r.IntN(55)) + "!"
			v.Breached[sha1.Sum([]byte(it.Password))] = 1 + r.Int64N(100000)
		case p < 85 && i > 0:
			it.Password = v.Items[r.IntN(i)].Password
		case p < 95:
			ws := make([]string, 5)
			for j := range ws {
				ws[j] = words[r.IntN(len(words))]
			}
			it.Password = strings.Join(ws, "-")
		default:
			it.Fields = []item.Field{{Name: "one-time password", Kind: item.KindTOTP}}
		}
		if it.Password != "" {
			it.PasswordChanged = it.Created.AddDate(0, 0, r.IntN(int(Epoch.Sub(it.Created).Hours()/24)+1))
		}
		v.Items = append(v.Items, it)
	}
	return v
}
