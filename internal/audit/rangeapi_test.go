package audit

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// rangeServer is a local Pwned Passwords range API over a list of sums. It
// checks every request the way the real service would see it, records the
// prefixes asked for, and pads each answer with entries of count 0.
type rangeServer struct {
	t      *testing.T
	counts map[[sha1.Size]byte]int64

	mu       sync.Mutex
	prefixes []string
	// status, when not 0, answers the next requests with it.
	status []int
}

var prefixPath = regexp.MustCompile(`^/range/[0-9A-F]{5}$`)

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !prefixPath.MatchString(r.URL.Path) || r.URL.RawQuery != "" {
		s.t.Errorf("request %s %q: only GET /range/PREFIX (5 upper-case hex digits) may be asked", r.Method, r.URL)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Add-Padding") != "true" {
		s.t.Errorf("request without Add-Padding: true")
	}
	if r.Header.Get("User-Agent") != "safehold" {
		s.t.Errorf("User-Agent %q", r.Header.Get("User-Agent"))
	}
	if r.ContentLength > 0 || r.Header.Get("Cookie") != "" || r.Header.Get("Authorization") != "" {
		s.t.Errorf("the request carries more than the prefix: %v", r.Header)
	}
	prefix := strings.TrimPrefix(r.URL.Path, "/range/")
	s.mu.Lock()
	s.prefixes = append(s.prefixes, prefix)
	var status int
	if len(s.status) > 0 {
		status, s.status = s.status[0], s.status[1:]
	}
	s.mu.Unlock()
	if status != 0 {
		w.Header().Set("Retry-After", "0")
		http.Error(w, "come back later", status)
		return
	}
	var body bytes.Buffer
	for sum, n := range s.counts {
		h := appendUpperHex(nil, sum[:])
		if string(h[:5]) == prefix {
			fmt.Fprintf(&body, "%s:%d\r\n", h[5:], n)
		}
	}
	// Padding: entries of count 0, one of them the sum of "padding".
	pad := appendUpperHex(nil, func() []byte { s := sha1.Sum([]byte("padding")); return s[:] }())
	for i := range 5 {
		fmt.Fprintf(&body, "%s%05X:0\r\n", pad[5:35], i)
	}
	fmt.Fprintf(&body, "%s:0", pad[5:]) // no final line break
	w.Header().Set("Content-Type", "text/plain")
	w.Write(body.Bytes())
}

func newRangeServer(t *testing.T, pw map[string]int64) (*rangeServer, *RangeAPI) {
	s := &rangeServer{t: t, counts: make(map[[sha1.Size]byte]int64)}
	for p, n := range pw {
		s.counts[sha1.Sum([]byte(p))] = n
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	api, err := NewRangeAPI(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, api
}

func TestRangeAPICounts(t *testing.T) {
	s, api := newRangeServer(t, map[string]int64{"password": 9545824, "hunter2": 17000})
	for _, tc := range []struct {
		pw   string
		want int64
	}{{"password", 9545824}, {"hunter2", 17000}, {"padding", 0}, {"a long unbreached passphrase", 0}} {
		sum := sha1.Sum([]byte(tc.pw))
		counts := []int64{-1}
		if err := api.Counts(context.Background(), [][sha1.Size]byte{sum}, counts); err != nil || counts[0] != tc.want {
			t.Fatalf("%q: %d, %v; want %d", tc.pw, counts[0], err, tc.want)
		}
		want := strings.ToUpper(fmt.Sprintf("%x", sum[:])[:5])
		if got := s.prefixes[len(s.prefixes)-1]; got != want {
			t.Fatalf("%q: asked for %q, want only the prefix %q", tc.pw, got, want)
		}
	}
}

// The sums of one call share a prefix; one request answers all of them.
func TestRangeAPIOneRequestPerPrefix(t *testing.T) {
	a, b := sha1.Sum([]byte("password")), sha1.Sum([]byte("password"))
	b[19] ^= 1 // same prefix, another sum
	s, api := newRangeServer(t, map[string]int64{"password": 5})
	counts := make([]int64, 2)
	if err := api.Counts(context.Background(), [][sha1.Size]byte{a, b}, counts); err != nil || counts[0] != 5 || counts[1] != 0 {
		t.Fatalf("counts %v, %v", counts, err)
	}
	if len(s.prefixes) != 1 {
		t.Fatalf("%d requests for one prefix", len(s.prefixes))
	}
	c := sha1.Sum([]byte("other"))
	if err := api.Counts(context.Background(), [][sha1.Size]byte{a, c}, counts); err == nil {
		t.Fatal("sums with two prefixes in one call")
	}
}

// 429 and 503 are retried (Retry-After 0 here); other failures are errors
// that name the host, never the prefix.
func TestRangeAPIFailures(t *testing.T) {
	sum := sha1.Sum([]byte("password"))
	prefix := strings.ToUpper(fmt.Sprintf("%x", sum[:])[:5])
	s, api := newRangeServer(t, map[string]int64{"password": 3})
	s.status = []int{429, 503}
	counts := make([]int64, 1)
	if err := api.Counts(context.Background(), [][sha1.Size]byte{sum}, counts); err != nil || counts[0] != 3 {
		t.Fatalf("after two retries: %d, %v", counts[0], err)
	}
	for _, status := range [][]int{{500}, {429, 429, 429}, {404}} {
		s.status = status
		err := api.Counts(context.Background(), [][sha1.Size]byte{sum}, counts)
		if !errors.Is(err, ErrBreachAPI) || strings.Contains(err.Error(), prefix) {
			t.Fatalf("status %v: %v", status, err)
		}
	}
	// A server that does not answer the format, answers too much, or
	// redirects.
	for name, h := range map[string]http.HandlerFunc{
		"garbage": func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "<html>hello</html>") },
		"huge":    func(w http.ResponseWriter, _ *http.Request) { w.Write(bytes.Repeat([]byte("0"), maxRangeBody+1)) },
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://example.com/x", http.StatusFound)
		},
	} {
		srv := httptest.NewServer(h)
		api, err := NewRangeAPI(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = api.Counts(context.Background(), [][sha1.Size]byte{sum}, counts)
		srv.Close()
		if !errors.Is(err, ErrBreachAPI) || strings.Contains(err.Error(), prefix) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Nobody listening: the error names the host, not the prefix.
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	api, err := NewRangeAPI(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = api.Counts(context.Background(), [][sha1.Size]byte{sum}, counts)
	if !errors.Is(err, ErrBreachAPI) || strings.Contains(err.Error(), prefix) || strings.Contains(err.Error(), "/range/") {
		t.Fatalf("closed server: %v", err)
	}
	// A cancelled context is reported as such.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, api = newRangeServer(t, nil)
	if err := api.Counts(ctx, [][sha1.Size]byte{sum}, counts); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestNewRangeAPIURLs(t *testing.T) {
	for _, ok := range []string{"https://api.pwnedpasswords.com", "https://mirror.example/hibp/", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"} {
		if _, err := NewRangeAPI(ok, nil); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://api.pwnedpasswords.com", "ftp://x", "https://u:p@x", "https://x?q=1", "https://x#f", "api.pwnedpasswords.com", "https://", "::"} {
		if _, err := NewRangeAPI(bad, nil); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestParseRange(t *testing.T) {
	body := "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2\n011053FD0102E94D6AE2F8B83D76FAF94F6:0\r\n012A7CA357541F0AC487871FEEC1891C49C:31"
	var got []string
	if err := parseRange([]byte(body), func(s []byte, n int64) { got = append(got, fmt.Sprintf("%s=%d", s, n)) }); err != nil {
		t.Fatal(err)
	}
	want := "0018A45C4D1DEF81644B54AB7F969B88D65=1 00D4F6E8FA6EECAD2A3AA415EEC418D38EC=2 012A7CA357541F0AC487871FEEC1891C49C=31"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v", got)
	}
	for _, bad := range []string{"\r\n", "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n\r\n", "0018a45c4d1def81644b54ab7f969b88d65:1",
		"0018A45C4D1DEF81644B54AB7F969B88D6:1", "0018A45C4D1DEF81644B54AB7F969B88D65:", "0018A45C4D1DEF81644B54AB7F969B88D65:01",
		"0018A45C4D1DEF81644B54AB7F969B88D65 1", "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\r\n"} {
		if err := parseRange([]byte(bad), func([]byte, int64) {}); !errors.Is(err, ErrBreachAPI) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := parseRange(nil, func([]byte, int64) { t.Fatal("entry in an empty answer") }); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseRange: nothing panics, every entry visited is a 35-digit
// upper-case suffix with a positive count, and what parses re-encodes
// (CR LF lines) to an answer that parses to the same entries.
func FuzzParseRange(f *testing.F) {
	f.Add([]byte("0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n011053FD0102E94D6AE2F8B83D76FAF94F6:0"))
	f.Add([]byte("0018A45C4D1DEF81644B54AB7F969B88D65:1\n"))
	f.Add([]byte("0018A45C4D1DEF81644B54AB7F969B88D65:00\r\n"))
	f.Add([]byte("\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		var entries []string
		err := parseRange(body, func(s []byte, n int64) {
			if len(s) != suffixLen || !upperHexOnly(s) || n <= 0 {
				t.Fatalf("entry %q:%d", s, n)
			}
			entries = append(entries, fmt.Sprintf("%s:%d", s, n))
		})
		if err != nil {
			return
		}
		var again []string
		enc := strings.Join(entries, "\r\n")
		if err := parseRange([]byte(enc), func(s []byte, n int64) { again = append(again, fmt.Sprintf("%s:%d", s, n)) }); err != nil {
			t.Fatalf("re-encoded %q: %v", enc, err)
		}
		if strings.Join(again, "\n") != strings.Join(entries, "\n") {
			t.Fatalf("%q re-parses as %q", entries, again)
		}
	})
}
