package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/safehold/safehold/internal/api"
)

// Login rate limits. Each failed login (wrong login key, wrong second
// factor) counts against two keys: the account ("acct:" + id) and the
// peer address ("addr:" + IPv4 or IPv6 /64). The first freeFailures cost
// nothing; then each failure bars the key for 2^(n-freeFailures) seconds,
// capped at maxBackoff. The state lives in the Store, so every server
// process sees it.
//
// A success clears the account key only: clearing the address key would
// let an attacker reset it by logging into an account of their own between
// guesses. A key that has been quiet for throttleDecay after its last
// bar is forgotten.
const (
	freeFailures  = 5
	maxBackoff    = 15 * time.Minute
	throttleDecay = time.Hour
)

// backoff is the bar after the n-th consecutive failure.
func backoff(n int) time.Duration {
	if n <= freeFailures {
		return 0
	}
	e := n - freeFailures
	if e >= 20 {
		return maxBackoff
	}
	return min(time.Duration(1<<e)*time.Second, maxBackoff)
}

// acctKey is the per-account throttle key. An unknown address gets the key
// of a fake account id derived from the server secret, so that it is
// throttled exactly like a real one and the limits reveal nothing.
func acctKey(id string) string { return "acct:" + id }

// fakeAccountID derives the id used for an unknown e-mail address.
func fakeAccountID(secret []byte, email string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("prelogin-account-id"))
	m.Write([]byte(email))
	return idEncoding.EncodeToString(m.Sum(nil)[:16])
}

// checkThrottle refuses with 429 if any key is barred at now.
func (s *Server) checkThrottle(ctx context.Context, now time.Time, keys ...string) error {
	var until time.Time
	for _, k := range keys {
		t, err := s.store.Throttle(ctx, k)
		if err != nil {
			return fmt.Errorf("read throttle: %w", err)
		}
		if t.Failures > 0 && now.Sub(t.Until) > throttleDecay {
			if err := s.store.ClearThrottle(ctx, k); err != nil {
				return fmt.Errorf("clear throttle: %w", err)
			}
			continue
		}
		if t.Until.After(until) {
			until = t.Until
		}
	}
	if !until.After(now) {
		return nil
	}
	return &httpError{
		status:     http.StatusTooManyRequests,
		code:       api.CodeRateLimited,
		msg:        "too many failed attempts; wait before trying again",
		retryAfter: int(math.Ceil(until.Sub(now).Seconds())),
	}
}

// failThrottle counts a failure against every key.
func (s *Server) failThrottle(ctx context.Context, now time.Time, keys ...string) error {
	for _, k := range keys {
		if _, err := s.store.Fail(ctx, k, now, backoff); err != nil {
			return fmt.Errorf("record failure: %w", err)
		}
	}
	return nil
}
