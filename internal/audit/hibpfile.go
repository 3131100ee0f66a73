package audit

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
)

// The local breach file is the Pwned Passwords list as the downloader
// writes it (the SHA-1 version, ordered by hash): one line per password,
//
//	line  = HASH ":" COUNT [CR] LF
//	HASH  = 40 upper-case hex digits (the SHA-1 of the password)
//	COUNT = decimal, no leading zeros ("0" alone is allowed), at most 18 digits
//
// sorted by HASH, each HASH once. The last line may lack its LF. The real
// file is about 40 GB, so it is never read whole: File.lookup binary-searches
// byte offsets with ReadAt, O(log size) small reads per password.

// maxFileLine bounds one line of the file: 40 + 1 + 18 + CR LF is 61.
const maxFileLine = 64

// maxCountDigits keeps a count below 10^18, inside an int64.
const maxCountDigits = 18

// ErrBreachFile marks a local breach file that is not the sorted SHA-1 list.
var ErrBreachFile = errors.New("not a Pwned Passwords SHA-1 file ordered by hash")

// File searches a local Pwned Passwords file. It is safe for concurrent use
// (it only calls ReadAt).
type File struct {
	f    *os.File
	size int64

	// top caches the probes of the first cachedLevels steps of a search:
	// they are the same few offsets for every lookup. At most
	// 2^cachedLevels entries.
	mu  sync.RWMutex
	top map[int64]probe
}

// cachedLevels is how many steps of each search go through File.top.
const cachedLevels = 14

// probe is what File.lineAt found at an offset.
type probe struct {
	start int64
	key   [sha1.Size]byte
	count int64
	eof   bool
}

var _ Breaches = (*File)(nil)

// OpenFile opens the local breach file at path and checks that its first
// line has the right form.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %q is not a regular file", ErrBreachFile, path)
	}
	bf := &File{f: f, size: st.Size(), top: make(map[int64]probe)}
	if bf.size == 0 {
		f.Close()
		return nil, fmt.Errorf("%w: %q is empty", ErrBreachFile, path)
	}
	if _, _, _, err := bf.lineAt(0); err != nil {
		f.Close()
		return nil, err
	}
	return bf, nil
}

// Close closes the file.
func (bf *File) Close() error { return bf.f.Close() }

// Counts implements Breaches: one binary search per sum.
func (bf *File) Counts(ctx context.Context, sums [][sha1.Size]byte, counts []int64) error {
	for i := range sums {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := bf.lookup(sums[i])
		if err != nil {
			return err
		}
		counts[i] = n
	}
	return nil
}

// lookup returns the count of sum in the file, 0 when it is not there.
//
// The candidates are the lines that start at an offset in [lo, hi). A probe
// at mid reads the first line that starts at or after mid: when there is
// none before hi, every candidate starts before mid; when its hash is
// smaller, the candidates start after it; when larger, they start before
// mid (no line starts between mid and the probed one). Each step halves the
// range, so a lookup takes about log2(size) reads. Every probed hash must
// also lie strictly between the hashes that moved lo and hi, which catches
// a file that is not sorted (such as the list ordered by prevalence).
func (bf *File) lookup(sum [sha1.Size]byte) (int64, error) {
	var loKey, hiKey [sha1.Size]byte
	haveLo, haveHi := false, false
	lo, hi := int64(0), bf.size
	for step := 0; lo < hi; step++ {
		mid := lo + (hi-lo)/2
		start, key, count, err := bf.probe(mid, step < cachedLevels)
		if errors.Is(err, io.EOF) || err == nil && start >= hi {
			hi = mid
			continue
		}
		if err != nil {
			return 0, err
		}
		if haveLo && bytes.Compare(key[:], loKey[:]) <= 0 || haveHi && bytes.Compare(key[:], hiKey[:]) >= 0 {
			return 0, fmt.Errorf("%w: the hashes near byte %d are out of order", ErrBreachFile, start)
		}
		switch c := bytes.Compare(key[:], sum[:]); {
		case c == 0:
			return count, nil
		case c < 0:
			lo, loKey, haveLo = start+1, key, true
		default:
			hi, hiKey, haveHi = mid, key, true
		}
	}
	return 0, nil
}

// probe is lineAt through the cache when cached is set.
func (bf *File) probe(off int64, cached bool) (start int64, key [sha1.Size]byte, count int64, err error) {
	if !cached {
		return bf.lineAt(off)
	}
	bf.mu.RLock()
	p, ok := bf.top[off]
	bf.mu.RUnlock()
	if ok {
		if p.eof {
			return p.start, p.key, 0, io.EOF
		}
		return p.start, p.key, p.count, nil
	}
	start, key, count, err = bf.lineAt(off)
	if err == nil || errors.Is(err, io.EOF) {
		bf.mu.Lock()
		bf.top[off] = probe{start, key, count, err != nil}
		bf.mu.Unlock()
	}
	return start, key, count, err
}

// lineAt parses the first line that starts at or after off (a line starts
// at 0 or after a LF). It returns io.EOF when no line starts before the end
// of the file.
func (bf *File) lineAt(off int64) (start int64, key [sha1.Size]byte, count int64, err error) {
	var buf [2 * maxFileLine]byte
	start = off
	if off > 0 {
		// Read from off-1: if that byte is a LF, a line starts at off.
		n, rerr := bf.f.ReadAt(buf[:], off-1)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return 0, key, 0, fmt.Errorf("reading the breach file: %w", rerr)
		}
		i := bytes.IndexByte(buf[:n], '\n')
		if i < 0 {
			if off-1+int64(n) >= bf.size {
				return 0, key, 0, io.EOF
			}
			return 0, key, 0, fmt.Errorf("%w: no line break in %d bytes at byte %d", ErrBreachFile, n, off-1)
		}
		start = off + int64(i)
	}
	if start >= bf.size {
		return start, key, 0, io.EOF
	}
	n, rerr := bf.f.ReadAt(buf[:maxFileLine], start)
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return 0, key, 0, fmt.Errorf("reading the breach file: %w", rerr)
	}
	line := buf[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	} else if start+int64(n) < bf.size {
		return 0, key, 0, fmt.Errorf("%w: the line at byte %d is longer than %d bytes", ErrBreachFile, start, maxFileLine)
	}
	key, count, err = parseFileLine(line)
	if err != nil {
		return 0, key, 0, fmt.Errorf("%w: the line at byte %d: %w", ErrBreachFile, start, err)
	}
	return start, key, count, nil
}

// parseFileLine parses one line of the breach file without its LF: HASH
// ":" COUNT, then at most one CR.
func parseFileLine(line []byte) (sum [sha1.Size]byte, count int64, err error) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) < 2*sha1.Size+2 || line[2*sha1.Size] != ':' {
		return sum, 0, errors.New("not HASH:COUNT (40 hex digits, a colon, a count)")
	}
	if err := decodeUpperHex(sum[:], line[:2*sha1.Size]); err != nil {
		return sum, 0, err
	}
	count, err = parseCount(line[2*sha1.Size+1:])
	return sum, count, err
}

// appendFileLine is parseFileLine's inverse (without a line break).
func appendFileLine(dst []byte, sum [sha1.Size]byte, count int64) []byte {
	dst = appendUpperHex(dst, sum[:])
	dst = append(dst, ':')
	return strconv.AppendInt(dst, count, 10)
}

// parseCount parses a canonical decimal count: digits only, no leading
// zero unless it is "0", at most maxCountDigits digits.
func parseCount(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > maxCountDigits || len(b) > 1 && b[0] == '0' {
		return 0, fmt.Errorf("count %q is not a decimal number of 1 to %d digits without leading zeros", clip(b), maxCountDigits)
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("count %q is not a decimal number", clip(b))
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// decodeUpperHex decodes upper-case hex (the only case the lists use) into
// dst, which is len(src)/2 bytes.
func decodeUpperHex(dst, src []byte) error {
	for i := range dst {
		hi, ok1 := unhex(src[2*i])
		lo, ok2 := unhex(src[2*i+1])
		if !ok1 || !ok2 {
			return fmt.Errorf("hash %q is not upper-case hex", clip(src))
		}
		dst[i] = hi<<4 | lo
	}
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func upperHexOnly(b []byte) bool {
	for _, c := range b {
		if _, ok := unhex(c); !ok {
			return false
		}
	}
	return true
}

const upperHex = "0123456789ABCDEF"

func appendUpperHex(dst, src []byte) []byte {
	for _, b := range src {
		dst = append(dst, upperHex[b>>4], upperHex[b&15])
	}
	return dst
}

// clip shortens bad input quoted in an error. The breach data is public
// (hashes and counts), never the user's secrets.
func clip(b []byte) string {
	if len(b) > 48 {
		return string(b[:48]) + "…"
	}
	return string(b)
}
