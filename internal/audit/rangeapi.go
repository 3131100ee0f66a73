package audit

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The range API is Pwned Passwords' k-anonymity interface:
//
//	GET {base}/range/{PREFIX}        PREFIX = the first 5 upper-case hex digits of the SHA-1
//	Add-Padding: true                (the answer is padded with entries of count 0)
//	User-Agent: safehold
//
// answered by lines
//
//	line   = SUFFIX ":" COUNT (CR LF | LF)    the last line may lack its line break
//	SUFFIX = the other 35 upper-case hex digits of a SHA-1 with that prefix
//	COUNT  = as in the local file; 0 marks a padding entry, which is ignored
//
// Only the prefix leaves the machine; the suffix is compared locally.

// DefaultRangeAPI is the base URL of the public service.
const DefaultRangeAPI = "https://api.pwnedpasswords.com"

// Limits of the range client.
const (
	// maxRangeBody bounds one answer. A real padded answer is 800 to 1,000
	// lines of 37 to 45 bytes (about 40 KB).
	maxRangeBody = 1 << 20
	// rangeTimeout bounds one request, answer included.
	rangeTimeout = 30 * time.Second
	// rangeAttempts is how often a request is made when the service asks
	// to come back later (429, 503).
	rangeAttempts = 3
	// maxRetryAfter caps the wait a Retry-After header may ask for.
	maxRetryAfter = 5 * time.Second
	prefixLen     = 5
	suffixLen     = 2*sha1.Size - prefixLen
)

// ErrBreachAPI marks a range API that failed or answered something else
// than the format above.
var ErrBreachAPI = errors.New("breach API")

// RangeAPI queries a Pwned Passwords range API. It is safe for concurrent
// use.
type RangeAPI struct {
	base   string // without a trailing slash
	host   string // for messages
	client *http.Client
}

var _ Breaches = (*RangeAPI)(nil)

// NewRangeAPI checks base (https, or http to a loopback address for a local
// mirror or a test) and returns a client for it. client nil means a client
// of its own that follows no redirects, keeps no cookies and uses the
// environment's proxy settings.
func NewRangeAPI(base string, client *http.Client) (*RangeAPI, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("breach API URL %q does not parse: %w", base, err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("breach API URL %q: use https:// (plain http only to localhost)", base)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("breach API URL %q: give scheme, host and optional path only", base)
	}
	if client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = rangeTimeout
		t.MaxIdleConnsPerHost = 16 // the audit's workers share the connections
		client = &http.Client{
			Transport: t,
			Timeout:   rangeTimeout,
			// The API answers directly; a redirect would send the prefix
			// somewhere that was not asked for.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &RangeAPI{base: strings.TrimRight(u.String(), "/"), host: u.Host, client: client}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Counts implements Breaches: one request for the prefix the sums share.
func (r *RangeAPI) Counts(ctx context.Context, sums [][sha1.Size]byte, counts []int64) error {
	if len(sums) == 0 {
		return nil
	}
	var hexes [][]byte
	for _, s := range sums {
		hexes = append(hexes, appendUpperHex(nil, s[:]))
	}
	defer func() {
		for _, h := range hexes {
			clear(h)
		}
	}()
	prefix := string(hexes[0][:prefixLen])
	for _, h := range hexes {
		if string(h[:prefixLen]) != prefix {
			return errors.New("audit: Counts takes sums that share their first 5 hex digits")
		}
	}
	body, err := r.fetch(ctx, prefix)
	if err != nil {
		return err
	}
	clear(counts)
	return parseRange(body, func(suffix []byte, n int64) {
		for i, h := range hexes {
			if bytes.Equal(h[prefixLen:], suffix) {
				counts[i] = n
			}
		}
	})
}

// fetch gets the answer for one prefix, retrying when asked to wait.
// Errors never name the prefix.
func (r *RangeAPI) fetch(ctx context.Context, prefix string) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		body, wait, err := r.get(ctx, prefix)
		if err == nil || wait < 0 || attempt == rangeAttempts {
			return body, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// get makes one request. wait >= 0 says that the service asked to come
// back after that long.
func (r *RangeAPI) get(ctx context.Context, prefix string) (body []byte, wait time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, rangeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/range/"+prefix, nil)
	if err != nil {
		return nil, -1, fmt.Errorf("%w %s: %w", ErrBreachAPI, r.host, err)
	}
	req.Header.Set("Add-Padding", "true")
	req.Header.Set("User-Agent", "safehold")
	resp, err := r.client.Do(req)
	if err != nil {
		// A *url.Error names the URL, and with it the prefix.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, -1, fmt.Errorf("%w %s: %w", ErrBreachAPI, r.host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxRangeBody))
		return nil, retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("%w %s answered %q", ErrBreachAPI, r.host, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, -1, fmt.Errorf("%w %s answered %q", ErrBreachAPI, r.host, resp.Status)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxRangeBody+1))
	if err != nil {
		return nil, -1, fmt.Errorf("%w %s: reading the answer: %w", ErrBreachAPI, r.host, err)
	}
	if len(body) > maxRangeBody {
		return nil, -1, fmt.Errorf("%w %s: the answer is larger than %d bytes", ErrBreachAPI, r.host, maxRangeBody)
	}
	return body, -1, nil
}

// retryAfter reads a Retry-After header in seconds (default 1 s), capped.
func retryAfter(h string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || s < 0 {
		return time.Second
	}
	return min(time.Duration(s)*time.Second, maxRetryAfter)
}

// parseRange parses a range answer, calling visit for each entry whose
// count is not 0 (padding entries are skipped). suffix is only valid during
// the call.
func parseRange(body []byte, visit func(suffix []byte, count int64)) error {
	line := 0
	for len(body) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			l, body = body[:i], body[i+1:]
		} else {
			l, body = body, nil
		}
		l = bytes.TrimSuffix(l, []byte{'\r'})
		if len(l) < suffixLen+2 || l[suffixLen] != ':' {
			return fmt.Errorf("%w: line %d of the answer is not SUFFIX:COUNT", ErrBreachAPI, line)
		}
		if !upperHexOnly(l[:suffixLen]) {
			return fmt.Errorf("%w: line %d of the answer: suffix %q is not upper-case hex", ErrBreachAPI, line, clip(l[:suffixLen]))
		}
		n, err := parseCount(l[suffixLen+1:])
		if err != nil {
			return fmt.Errorf("%w: line %d of the answer: %w", ErrBreachAPI, line, err)
		}
		if n > 0 {
			visit(l[:suffixLen], n)
		}
	}
	return nil
}
