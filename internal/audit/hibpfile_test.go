package audit

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sortedSums returns n distinct random sums in order, from a fixed seed.
func sortedSums(seed uint64, n int) [][sha1.Size]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	seen := make(map[[sha1.Size]byte]bool)
	var out [][sha1.Size]byte
	for len(out) < n {
		var s [sha1.Size]byte
		for i := range s {
			s[i] = byte(r.Uint32())
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b [sha1.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// writeList writes sums with counts i+1 as a breach file: lines end with
// eol; the last one only when final is set.
func writeList(t testing.TB, sums [][sha1.Size]byte, eol string, final bool) string {
	t.Helper()
	var b []byte
	for i, s := range sums {
		b = appendFileLine(b, s, int64(i+1))
		if i < len(sums)-1 || final {
			b = append(b, eol...)
		}
	}
	path := filepath.Join(t.TempDir(), "pwned.txt")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func openList(t testing.TB, path string) *File {
	t.Helper()
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Every listed sum is found with its count (first and last lines included),
// and sums around them are not, whatever the line ends and whether the last
// line has one.
func TestFileFindsEveryLine(t *testing.T) {
	sums := sortedSums(1, 2000)
	for _, tc := range []struct {
		name  string
		eol   string
		final bool
	}{{"lf", "\n", true}, {"crlf", "\r\n", true}, {"lf-unterminated", "\n", false}, {"crlf-unterminated", "\r\n", false}} {
		t.Run(tc.name, func(t *testing.T) {
			f := openList(t, writeList(t, sums, tc.eol, tc.final))
			for i, s := range sums {
				n, err := f.lookup(s)
				if err != nil || n != int64(i+1) {
					t.Fatalf("line %d: count %d, %v; want %d", i, n, err, i+1)
				}
				// A neighbour: the same sum with its last bit flipped is
				// (with overwhelming probability) not listed.
				s[sha1.Size-1] ^= 1
				if _, ok := slices.BinarySearchFunc(sums, s, func(a, b [sha1.Size]byte) int { return bytes.Compare(a[:], b[:]) }); !ok {
					if n, err := f.lookup(s); err != nil || n != 0 {
						t.Fatalf("neighbour of line %d: count %d, %v; want 0", i, n, err)
					}
				}
			}
			var zero, ones [sha1.Size]byte
			for i := range ones {
				ones[i] = 0xff
			}
			for _, s := range [][sha1.Size]byte{zero, ones} {
				if n, err := f.lookup(s); err != nil || n != 0 {
					t.Fatalf("%x: count %d, %v", s, n, err)
				}
			}
		})
	}
}

// Files of one, two and three lines: the edges of the search.
func TestFileTinyLists(t *testing.T) {
	all := sortedSums(2, 3)
	for n := 1; n <= 3; n++ {
		f := openList(t, writeList(t, all[:n], "\r\n", n%2 == 0))
		for i, s := range all {
			got, err := f.lookup(s)
			want := int64(0)
			if i < n {
				want = int64(i + 1)
			}
			if err != nil || got != want {
				t.Fatalf("%d lines, sum %d: %d, %v; want %d", n, i, got, err, want)
			}
		}
	}
}

// A line as the real list has it: the SHA-1 of "password", after a
// neighbour.
func TestFileRealLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pwned.txt")
	text := "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD7:1\r\n5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\r\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f := openList(t, path)
	counts := make([]int64, 1)
	if err := f.Counts(context.Background(), [][sha1.Size]byte{sha1.Sum([]byte("password"))}, counts); err != nil || counts[0] != 9545824 {
		t.Fatalf("password: %d, %v", counts[0], err)
	}
}

// A list ordered by prevalence (not by hash) is refused, not searched
// wrongly.
func TestFileUnsorted(t *testing.T) {
	sums := sortedSums(3, 5000)
	shuffled := slices.Clone(sums)
	rand.New(rand.NewPCG(3, 3)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	f := openList(t, writeList(t, shuffled, "\r\n", true))
	for _, s := range sums {
		if _, err := f.lookup(s); err != nil {
			if !errors.Is(err, ErrBreachFile) || !strings.Contains(err.Error(), "out of order") {
				t.Fatalf("unsorted: %v", err)
			}
			return
		}
	}
	t.Fatal("no lookup noticed that the file is not sorted")
}

// Malformed files: refused at open (first line) or when a probe lands on a
// bad line, with ErrBreachFile and the byte offset.
func TestFileMalformed(t *testing.T) {
	good := string(appendFileLine(nil, sortedSums(4, 1)[0], 7))
	for _, tc := range []struct{ name, text string }{
		{"ntlm", "8846F7EAEE8FB117AD06BDD830B7586C:1\r\n"},
		{"lower-case", strings.ToLower(good) + "\n"},
		{"no-count", good[:40] + "\n"},
		{"leading-zero", good[:41] + "07\n"},
		{"long-line", good + strings.Repeat("1", 100) + "\n"},
		{"blank-line", "\n" + good + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.txt")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := OpenFile(path)
			if err == nil {
				f.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, ErrBreachFile) || !strings.Contains(err.Error(), "byte 0") {
				t.Fatalf("error: %v", err)
			}
		})
	}
	// A bad line in the middle is found by the lookup that lands on it.
	sums := sortedSums(5, 3)
	text := string(appendFileLine(nil, sums[0], 1)) + "\nGARBAGE\n" + string(appendFileLine(nil, sums[2], 3)) + "\n"
	path := filepath.Join(t.TempDir(), "mid.txt")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f := openList(t, path)
	if _, err := f.lookup(sums[1]); !errors.Is(err, ErrBreachFile) {
		t.Fatalf("bad middle line: %v", err)
	}
	// Empty files and directories are refused.
	empty := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{empty, t.TempDir()} {
		if f, err := OpenFile(p); !errors.Is(err, ErrBreachFile) {
			if f != nil {
				f.Close()
			}
			t.Fatalf("%s: %v", p, err)
		}
	}
}

// A cancelled context stops the lookups.
func TestFileCancelled(t *testing.T) {
	sums := sortedSums(6, 10)
	f := openList(t, writeList(t, sums, "\n", true))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Counts(ctx, sums[:1], make([]int64, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestParseFileLine(t *testing.T) {
	s := sha1.Sum([]byte("x"))
	line := appendFileLine(nil, s, 42)
	for _, l := range [][]byte{line, append(slices.Clone(line), '\r')} {
		got, n, err := parseFileLine(l)
		if err != nil || got != s || n != 42 {
			t.Fatalf("%q: %x %d %v", l, got, n, err)
		}
	}
	for _, bad := range []string{"", ":1", string(line) + "\r\r", string(line[:40]) + ":", string(line[:40]) + ":-1",
		string(line[:40]) + ":1234567890123456789", string(line[:40]) + ";1", string(line[:39]) + "G:1", string(line) + " "} {
		if _, _, err := parseFileLine([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParseFileLine: whatever parses re-encodes to the same bytes (one
// canonical form), and nothing panics.
func FuzzParseFileLine(f *testing.F) {
	f.Add([]byte("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD7:9545824"))
	f.Add([]byte("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD7:0\r"))
	f.Add([]byte("5baa61e4c9b93f3f0682250b6cf8331b7ee68fd7:1"))
	f.Add([]byte("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD7:007"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, line []byte) {
		sum, n, err := parseFileLine(line)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("negative count %d", n)
		}
		if got := appendFileLine(nil, sum, n); !bytes.Equal(got, bytes.TrimSuffix(line, []byte{'\r'})) {
			t.Fatalf("%q re-encodes as %q", line, got)
		}
	})
}

// FuzzFileSearch: whatever a breach file holds, a search ends (without
// panicking) in a count, a "not there", or ErrBreachFile; a count comes from
// a line that says so.
func FuzzFileSearch(f *testing.F) {
	f.Add([]byte("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\r\n"), []byte("password"))
	f.Add([]byte("0000000000000000000000000000000000000001:3\n5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:2\nFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:1"), []byte("password"))
	f.Add([]byte("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:1\n0000000000000000000000000000000000000001:3\n"), []byte("x"))
	f.Add([]byte("\n\n\n"), []byte(""))
	f.Fuzz(func(t *testing.T, data, pw []byte) {
		if len(data) > 1<<16 {
			return
		}
		path := filepath.Join(t.TempDir(), "list.txt")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		bf, err := OpenFile(path)
		if err != nil {
			if !errors.Is(err, ErrBreachFile) {
				t.Fatalf("open: %v", err)
			}
			return
		}
		defer bf.Close()
		sum := sha1.Sum(pw)
		n, err := bf.lookup(sum)
		if err != nil {
			if !errors.Is(err, ErrBreachFile) {
				t.Fatalf("lookup: %v", err)
			}
			return
		}
		if n > 0 && !bytes.Contains(data, appendFileLine(nil, sum, n)) {
			t.Fatalf("count %d for a sum the file does not list so", n)
		}
	})
}
