package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/server/storage"
)

// Login-history reasons (api.Login.Reason).
const (
	reasonRegister      = "register"
	reasonBadCredential = "bad_credentials"
	reasonDisabled      = "account_disabled"
	reasonRevoked       = "device_revoked"
	reasonTOTPRequired  = "totp_required"
	reasonBadTOTP       = "bad_second_factor"
	reasonRecoveryCode  = "recovery_code"
)

// handlePrelogin answers an account's KDF header. For an unknown address
// it answers a header derived from the server secret and the address:
// the client's default parameters and salts that are the same on every
// call and on every server sharing the store, so that the answer looks
// like a real account's. Both paths do the same work (the fake header is
// always computed).
func (s *Server) handlePrelogin(w http.ResponseWriter, r *http.Request) error {
	var req api.PreloginRequest
	if err := decodeJSON(w, r, smallBody, &req); err != nil {
		return err
	}
	email, ok := normalizeEmail(req.Email)
	if !ok {
		return badRequest("not a valid e-mail address")
	}
	ctx := r.Context()
	secret, err := s.serverSecret(ctx)
	if err != nil {
		return err
	}
	header, err := fakeHeader(secret, email)
	if err != nil {
		return err
	}
	a, err := s.store.AccountByEmail(ctx, email)
	switch {
	case err == nil:
		header = a.KDF
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("look up account: %w", err)
	}
	writeJSON(w, api.PreloginResponse{KDF: header})
	return nil
}

// fakeHeader is the KDF header of an unknown address: salts
// HMAC-SHA256(secret, label || email), and parameters derived the same way
// in the ranges `safe kdf tune` produces on common machines, so that a
// fake looks like an account made with tuned parameters.
func fakeHeader(secret []byte, email string) ([]byte, error) {
	h := kdf.Header{Params: fakeParams(secret, email)}
	for _, s := range []struct {
		label string
		dst   []byte
	}{{"prelogin-salt-a", h.Salts.Argon2[:]}, {"prelogin-salt-b", h.Salts.PBKDF2[:]}} {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(s.label))
		m.Write([]byte(email))
		copy(s.dst, m.Sum(nil))
	}
	b, err := h.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("make prelogin header: %w", err)
	}
	return b, nil
}

// fakeParams derives plausible tuned parameters for an unknown address:
// Argon2id 64..575 MiB (whole MiB), 2 passes, 1..4 lanes; PBKDF2
// 300,000..1,199,000 iterations (whole thousands).
func fakeParams(secret []byte, email string) kdf.Params {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("prelogin-params"))
	m.Write([]byte(email))
	sum := m.Sum(nil)
	u := func(i int) uint32 { return binary.BigEndian.Uint32(sum[4*i:]) }
	return kdf.Params{
		Argon2Memory:     (64 + u(0)%512) * 1024,
		Argon2Time:       2,
		Argon2Threads:    uint8(1 + u(1)%4),
		PBKDF2Iterations: (300 + u(2)%900) * 1000,
	}
}

// checkCredentials validates a KDF header and login key from a client.
func checkCredentials(kdfHeader, loginKey []byte) error {
	if _, err := kdf.ParseHeader(kdfHeader); err != nil {
		return badRequest("kdf header: %v", err)
	}
	if len(loginKey) != api.LoginKeySize {
		return badRequest("login key is %d bytes, want %d", len(loginKey), api.LoginKeySize)
	}
	return nil
}

func checkDocument(doc []byte) error {
	if len(doc) == 0 {
		return badRequest("the account document is empty")
	}
	if len(doc) > api.MaxDocument {
		return tooLarge(fmt.Sprintf("the account document is %d bytes, more than %d", len(doc), api.MaxDocument))
	}
	return nil
}

// handleRegister creates an account, its first device and a session.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) error {
	var req api.RegisterRequest
	if err := decodeJSON(w, r, docBody, &req); err != nil {
		return err
	}
	defer clear(req.LoginKey)
	email, ok := normalizeEmail(req.Email)
	if !ok {
		return badRequest("not a valid e-mail address")
	}
	if !validID(req.Account) {
		return badRequest("account id is not a 26-character id")
	}
	if err := checkCredentials(req.KDF, req.LoginKey); err != nil {
		return err
	}
	if err := checkDocument(req.Document); err != nil {
		return err
	}
	if err := checkDevice(req.Device); err != nil {
		return err
	}
	ctx := r.Context()
	verifier, err := s.newVerifier(ctx, req.LoginKey)
	if err != nil {
		return err
	}
	now := s.now()
	a := storage.Account{
		ID:       req.Account,
		Email:    email,
		KDF:      req.KDF,
		Verifier: verifier,
		Epoch:    1,
		Document: req.Document,
		Created:  now,
	}
	d := storage.Device{Account: req.Account, ID: req.Device.ID, Platform: req.Device.Platform, Created: now, LastSeen: now}
	if err := s.store.CreateAccount(ctx, a, d); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return &httpError{status: http.StatusConflict, code: api.CodeExists, msg: "the account id or the e-mail address is already registered"}
		}
		return fmt.Errorf("create account: %w", err)
	}
	sess, err := s.issueSession(ctx, a.ID, d.ID)
	if err != nil {
		return err
	}
	s.recordLogin(ctx, a.ID, d.ID, r, now, true, reasonRegister)
	writeJSON(w, sess)
	return nil
}

// handleLogin checks the login key (and second factor) and opens a
// session for the device.
//
// Unknown addresses take the same path as known ones: the same throttle
// (under a fake account id), the same scrypt (against a dummy verifier),
// the same 401. Whether an account is disabled, or a device revoked, is
// said only to a caller who proved the login key.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var req api.LoginRequest
	if err := decodeJSON(w, r, smallBody, &req); err != nil {
		return err
	}
	defer clear(req.LoginKey)
	email, ok := normalizeEmail(req.Email)
	if !ok {
		return badRequest("not a valid e-mail address")
	}
	if len(req.LoginKey) != api.LoginKeySize {
		return badRequest("login key is %d bytes, want %d", len(req.LoginKey), api.LoginKeySize)
	}
	if err := checkDevice(req.Device); err != nil {
		return err
	}
	ctx := r.Context()
	now := s.now()
	secret, err := s.serverSecret(ctx)
	if err != nil {
		return err
	}
	acct, err := s.store.AccountByEmail(ctx, email)
	known := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("look up account: %w", err)
	}
	id := fakeAccountID(secret, email)
	verifier := s.dummy
	if known {
		id, verifier = acct.ID, acct.Verifier
	}
	keys := []string{acctKey(id), throttleAddr(r)}
	record := func(ok bool, reason string) {
		if known {
			s.recordLogin(ctx, id, req.Device.ID, r, now, ok, reason)
		}
	}

	// A barred attempt is not recorded: it is refused before any check,
	// costs nothing, and recording it would let anyone grow an account's
	// history without bound. The 429s show in the metrics.
	if err := s.checkThrottle(ctx, now, keys...); err != nil {
		return err
	}
	match, err := s.checkVerifier(ctx, verifier, req.LoginKey)
	if err != nil {
		return fmt.Errorf("check login key: %w", err)
	}
	if !match || !known {
		if err := s.failThrottle(ctx, now, keys...); err != nil {
			return err
		}
		e := unauthorized("wrong e-mail address or login key")
		if !known {
			return e
		}
		// Answer before recording the attempt: the extra write for a
		// known account must not show in the response time.
		writeError(w, e)
		http.NewResponseController(w).Flush()
		record(false, reasonBadCredential)
		return nil
	}
	if acct.Disabled {
		record(false, reasonDisabled)
		return forbidden("the account is disabled; ask the server's operator")
	}
	dev, err := s.store.Device(ctx, id, req.Device.ID)
	switch {
	case err == nil:
		if !dev.Revoked.IsZero() {
			record(false, reasonRevoked)
			return forbidden("this device was revoked; it cannot log in again under the same id")
		}
	case errors.Is(err, storage.ErrNotFound):
		dev = storage.Device{Account: id, ID: req.Device.ID, Created: now}
	default:
		return fmt.Errorf("look up device: %w", err)
	}
	reason := ""
	if acct.TOTPEnabled {
		if req.TOTP == "" && req.RecoveryCode == "" {
			record(false, reasonTOTPRequired)
			return &httpError{status: http.StatusUnauthorized, code: api.CodeTOTPRequired, msg: "this account needs a two-factor code or a recovery code"}
		}
		ok, usedRecovery, err := s.checkSecondFactor(ctx, acct, req.TOTP, req.RecoveryCode, now)
		if err != nil {
			return err
		}
		if !ok {
			if err := s.failThrottle(ctx, now, keys...); err != nil {
				return err
			}
			record(false, reasonBadTOTP)
			return &httpError{status: http.StatusUnauthorized, code: api.CodeTOTPRequired, msg: "the two-factor code is wrong or was already used"}
		}
		if usedRecovery {
			reason = reasonRecoveryCode
		}
	}
	if err := s.store.ClearThrottle(ctx, keys[0]); err != nil {
		return fmt.Errorf("clear throttle: %w", err)
	}
	dev.Platform = req.Device.Platform
	dev.LastSeen = now
	if err := s.store.UpsertDevice(ctx, dev); err != nil {
		return fmt.Errorf("store device: %w", err)
	}
	sess, err := s.issueSession(ctx, id, dev.ID)
	if err != nil {
		return err
	}
	record(true, reason)
	writeJSON(w, sess)
	return nil
}

// recordLogin adds to the account's login history; a failure to record is
// logged, not fatal.
func (s *Server) recordLogin(ctx context.Context, account, device string, r *http.Request, now time.Time, ok bool, reason string) {
	err := s.store.RecordLogin(ctx, storage.LoginEvent{
		Account: account,
		Time:    now,
		Device:  device,
		Address: clientAddr(r),
		OK:      ok,
		Reason:  reason,
	})
	if err != nil {
		s.log.Warn("record login", "err", err)
	}
}

func accountView(a storage.Account) api.Account {
	return api.Account{
		Account:  a.ID,
		Email:    a.Email,
		KDF:      a.KDF,
		Epoch:    a.Epoch,
		Document: a.Document,
		TOTP:     a.TOTPEnabled,
	}
}

// handleAccountGet returns the caller's account.
func (s *Server) handleAccountGet(w http.ResponseWriter, r *http.Request, p *principal) error {
	view := accountView(p.account)
	if known := r.URL.Query().Get(api.QueryKnownEpoch); known != "" {
		n, err := strconv.ParseUint(known, 10, 64)
		if err != nil {
			return badRequest("%s must be an epoch number", api.QueryKnownEpoch)
		}
		if n == view.Epoch {
			view.Document = nil // the client has it
		}
	}
	writeJSON(w, view)
	return nil
}

// handleAccountPut replaces the account document if Base is the current
// epoch, and with Credentials the KDF header and login key too (password
// change, recovery). Other sessions stay: other devices learn the new
// password through the document.
func (s *Server) handleAccountPut(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req api.AccountUpdate
	if err := decodeJSON(w, r, docBody, &req); err != nil {
		return err
	}
	if err := checkDocument(req.Document); err != nil {
		return err
	}
	ctx := r.Context()
	var cred *storage.Credentials
	if req.Credentials != nil {
		defer clear(req.Credentials.LoginKey)
		if err := checkCredentials(req.Credentials.KDF, req.Credentials.LoginKey); err != nil {
			return err
		}
		v, err := s.newVerifier(ctx, req.Credentials.LoginKey)
		if err != nil {
			return err
		}
		cred = &storage.Credentials{KDF: req.Credentials.KDF, Verifier: v}
	}
	epoch, err := s.store.UpdateDocument(ctx, p.account.ID, req.Base, req.Document, cred)
	if errors.Is(err, storage.ErrStale) {
		cur, err := s.store.AccountByID(ctx, p.account.ID)
		if err != nil {
			return fmt.Errorf("look up account: %w", err)
		}
		return &httpError{status: http.StatusConflict, code: api.CodeStale, epoch: cur.Epoch,
			msg: fmt.Sprintf("the account document is at epoch %d, not %d; fetch it and merge", cur.Epoch, req.Base)}
	}
	if err != nil {
		return fmt.Errorf("update account document: %w", err)
	}
	a := p.account
	a.Epoch, a.Document = epoch, req.Document
	if cred != nil {
		a.KDF = cred.KDF
	}
	writeJSON(w, accountView(a))
	return nil
}
