package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/server/storage"
)

// Sessions: an access token (short) and a refresh token (long), issued as
// a pair and bound to one account and device. A token is api.TokenSize
// random bytes in unpadded base64url; the store keeps only its SHA-256.
// SHA-256 without salt suffices: a token is 256 bits of randomness, not
// something guessable.
const (
	accessTTL  = 15 * time.Minute
	refreshTTL = 30 * 24 * time.Hour

	kindAccess  = "access"
	kindRefresh = "refresh"
)

// tokenLen is the length of an encoded token.
var tokenLen = base64.RawURLEncoding.EncodedLen(api.TokenSize)

// newToken returns a fresh token and its hash.
func newToken() (string, []byte, error) {
	b := make([]byte, api.TokenSize)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("read randomness: %w", err)
	}
	h := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(b), h[:], nil
}

// tokenHash decodes a token strictly and returns its hash.
func tokenHash(tok string) ([]byte, bool) {
	if len(tok) != tokenLen {
		return nil, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) != api.TokenSize {
		return nil, false
	}
	h := sha256.Sum256(b)
	return h[:], true
}

// issueSession creates an access and a refresh session for the device.
// Each names the other as its pair, so that deleting either ends both.
func (s *Server) issueSession(ctx context.Context, account, device string) (api.Session, error) {
	now := s.now()
	access, ah, err := newToken()
	if err != nil {
		return api.Session{}, err
	}
	refresh, rh, err := newToken()
	if err != nil {
		return api.Session{}, err
	}
	as := storage.Session{Hash: ah, Kind: kindAccess, Account: account, Device: device, Created: now, Expires: now.Add(accessTTL), Pair: rh}
	rs := storage.Session{Hash: rh, Kind: kindRefresh, Account: account, Device: device, Created: now, Expires: now.Add(refreshTTL), Pair: ah}
	if err := s.store.CreateSession(ctx, rs); err != nil {
		return api.Session{}, fmt.Errorf("create session: %w", err)
	}
	if err := s.store.CreateSession(ctx, as); err != nil {
		return api.Session{}, fmt.Errorf("create session: %w", err)
	}
	return api.Session{
		Account:        account,
		AccessToken:    access,
		AccessExpires:  as.Expires.Unix(),
		RefreshToken:   refresh,
		RefreshExpires: rs.Expires.Unix(),
	}, nil
}

// handleRefresh exchanges a refresh token for a new pair; the old refresh
// token and its access token stop working.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) error {
	var req api.RefreshRequest
	if err := decodeJSON(w, r, smallBody, &req); err != nil {
		return err
	}
	hash, ok := tokenHash(req.RefreshToken)
	if !ok {
		return unauthorized("malformed refresh token; log in")
	}
	ctx := r.Context()
	sess, err := s.store.Session(ctx, hash, s.now())
	if errors.Is(err, storage.ErrNotFound) || err == nil && sess.Kind != kindRefresh {
		return unauthorized("the refresh token is expired or revoked; log in")
	}
	if err != nil {
		return fmt.Errorf("look up session: %w", err)
	}
	if _, _, err := s.checkSessionOwner(ctx, sess); err != nil {
		return err
	}
	deleted, err := s.store.DeleteSession(ctx, hash)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if !deleted {
		// Another refresh with the same token won the race.
		return unauthorized("the refresh token is expired or revoked; log in")
	}
	out, err := s.issueSession(ctx, sess.Account, sess.Device)
	if err != nil {
		return err
	}
	writeJSON(w, out)
	return nil
}

// handleLogout ends the caller's session pair.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, p *principal) error {
	if _, err := s.store.DeleteSession(r.Context(), p.token); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
