package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/scrypt"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/server/storage"
)

// The login-key verifier. The client derives the login key with Argon2id
// and PBKDF2 (package kdf); the server stores scrypt of it, a different
// algorithm, so that a weakness of the client's cascade does not carry
// over to a stolen database, and a stolen database does not hold the login
// key. The login key is already a 256-bit uniformly random value, so the
// scrypt cost is defence in depth rather than the only protection.
//
// Encoding (52 bytes): alg (1 = scrypt) | log2 N | r | p | salt (16) |
// hash (32). The parameters travel with each verifier, so they can change
// without invalidating old ones.
const (
	verifierAlgScrypt = 1
	verifierLogN      = 15 // N = 32768
	verifierR         = 8
	verifierP         = 1
	verifierSaltLen   = 16
	verifierHashLen   = 32
	verifierLen       = 4 + verifierSaltLen + verifierHashLen

	// Bounds on parameters read back from the store, so that a tampered
	// row cannot make the server allocate gigabytes.
	verifierMaxLogN = 20
	verifierMaxR    = 16
	verifierMaxP    = 4
)

// newVerifier returns the verifier of a login key with fresh salt.
func (s *Server) newVerifier(ctx context.Context, loginKey []byte) ([]byte, error) {
	v := make([]byte, 4, verifierLen)
	v[0], v[1], v[2], v[3] = verifierAlgScrypt, s.logN, verifierR, verifierP
	salt := make([]byte, verifierSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("read randomness: %w", err)
	}
	h, err := s.scryptKey(ctx, loginKey, salt, int(s.logN), verifierR, verifierP)
	if err != nil {
		return nil, err
	}
	v = append(v, salt...)
	return append(v, h...), nil
}

// checkVerifier reports whether loginKey matches the verifier, comparing
// in constant time.
func (s *Server) checkVerifier(ctx context.Context, verifier, loginKey []byte) (bool, error) {
	if len(verifier) != verifierLen || verifier[0] != verifierAlgScrypt {
		return false, errors.New("stored login-key verifier has an unknown format")
	}
	logN, r, p := int(verifier[1]), int(verifier[2]), int(verifier[3])
	if logN < 1 || logN > verifierMaxLogN || r < 1 || r > verifierMaxR || p < 1 || p > verifierMaxP {
		return false, errors.New("stored login-key verifier has out-of-bounds parameters")
	}
	salt := verifier[4 : 4+verifierSaltLen]
	h, err := s.scryptKey(ctx, loginKey, salt, logN, r, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(h, verifier[4+verifierSaltLen:]) == 1, nil
}

// scryptKey runs scrypt, at most Config.ScryptWorkers at a time (each
// takes 128·r·N bytes: 32 MiB at the defaults).
func (s *Server) scryptKey(ctx context.Context, key, salt []byte, logN, r, p int) ([]byte, error) {
	select {
	case s.scrypt <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.scrypt }()
	h, err := scrypt.Key(key, salt, 1<<logN, r, p, verifierHashLen)
	if err != nil {
		return nil, fmt.Errorf("scrypt: %w", err)
	}
	return h, nil
}

// newDummyVerifier makes the verifier that unknown accounts are checked
// against, so that they cost the same time as known ones.
func (s *Server) newDummyVerifier() ([]byte, error) {
	k := make([]byte, api.LoginKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("server: read randomness: %w", err)
	}
	v, err := s.newVerifier(context.Background(), k)
	if err != nil {
		return nil, fmt.Errorf("server: make dummy verifier: %w", err)
	}
	return v, nil
}

// principal is the authenticated caller of a request.
type principal struct {
	account storage.Account
	device  storage.Device
	session storage.Session
	token   []byte // hash of the access token
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error
type authedFunc func(w http.ResponseWriter, r *http.Request, p *principal) error

// public adapts a handler that needs no session.
func (s *Server) public(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// authed adapts a handler that needs a valid access token. The principal
// is passed explicitly, not through the request context.
func (s *Server) authed(h authedFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.fail(w, r, err)
		}
	})
}

// lastSeenEvery is how stale a device's LastSeen may get before a request
// refreshes it; writing it on every request would double the writes.
const lastSeenEvery = time.Minute

// authenticate checks the bearer token: an unexpired access session, a
// device that is not revoked, an account that is not disabled.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	ctx := r.Context()
	hdr := r.Header.Get(api.HeaderAuth)
	tok, ok := strings.CutPrefix(hdr, "Bearer ")
	if !ok {
		return nil, unauthorized("missing bearer token; log in")
	}
	hash, ok := tokenHash(tok)
	if !ok {
		return nil, unauthorized("malformed bearer token; log in")
	}
	now := s.now()
	sess, err := s.store.Session(ctx, hash, now)
	if errors.Is(err, storage.ErrNotFound) || err == nil && sess.Kind != kindAccess {
		return nil, unauthorized("the access token is expired or revoked; refresh or log in")
	}
	if err != nil {
		return nil, fmt.Errorf("look up session: %w", err)
	}
	acct, dev, err := s.checkSessionOwner(ctx, sess)
	if err != nil {
		return nil, err
	}
	if now.Sub(dev.LastSeen) >= lastSeenEvery {
		d := dev
		d.LastSeen = now
		if err := s.store.UpsertDevice(ctx, d); err != nil {
			s.log.Warn("update device last seen", "err", err)
		} else {
			dev = d
		}
	}
	return &principal{account: acct, device: dev, session: sess, token: hash}, nil
}

// checkSessionOwner loads a session's account and device and refuses a
// disabled account or a revoked device.
func (s *Server) checkSessionOwner(ctx context.Context, sess storage.Session) (storage.Account, storage.Device, error) {
	acct, err := s.store.AccountByID(ctx, sess.Account)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Account{}, storage.Device{}, unauthorized("the account no longer exists")
	}
	if err != nil {
		return storage.Account{}, storage.Device{}, fmt.Errorf("look up account: %w", err)
	}
	if acct.Disabled {
		return storage.Account{}, storage.Device{}, forbidden("the account is disabled; ask the server's operator")
	}
	dev, err := s.store.Device(ctx, sess.Account, sess.Device)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Account{}, storage.Device{}, unauthorized("the session's device no longer exists; log in")
	}
	if err != nil {
		return storage.Account{}, storage.Device{}, fmt.Errorf("look up device: %w", err)
	}
	if !dev.Revoked.IsZero() {
		return storage.Account{}, storage.Device{}, forbidden("this device was revoked; it cannot log in again under the same id")
	}
	return acct, dev, nil
}
