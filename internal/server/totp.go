package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/server/storage"
)

// Two-factor authentication: TOTP (RFC 6238: SHA-1, 6 digits, 30 s, one
// step of skew either way) with ten one-time recovery codes.
const (
	totpIssuer    = "Safehold"
	totpPeriod    = 30
	totpDigits    = otp.DigitsSix
	totpSkew      = 1
	recoveryCodes = 10
	recoveryBytes = 10 // 80 bits: 16 base32 characters
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}

// totpStep returns the RFC 6238 time step that code belongs to, if it is
// the code of a step within the skew of now. Every candidate is computed
// and compared in constant time.
func totpStep(secret, code string, now time.Time) (int64, bool) {
	if len(code) != 6 {
		return 0, false
	}
	if _, err := strconv.ParseUint(code, 10, 32); err != nil {
		return 0, false
	}
	cur := now.Unix() / totpPeriod
	var step int64
	found := 0
	for k := int64(-totpSkew); k <= totpSkew; k++ {
		c, err := totp.GenerateCodeCustom(secret, time.Unix((cur+k)*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(c), []byte(code)) == 1 && found == 0 {
			step, found = cur+k, 1
		}
	}
	return step, found == 1
}

// useTOTP checks a code and marks its step used, atomically in the store,
// so that a code works once even across server processes. The marker is
// a throttle key counted with Fail: the first use sees one failure.
func (s *Server) useTOTP(ctx context.Context, account, secret, code string, now time.Time) (bool, error) {
	step, ok := totpStep(secret, code, now)
	if !ok {
		return false, nil
	}
	t, err := s.store.Fail(ctx, fmt.Sprintf("totp:%s:%d", account, step), now, func(int) time.Duration { return 0 })
	if err != nil {
		return false, fmt.Errorf("mark totp step used: %w", err)
	}
	return t.Failures == 1, nil
}

// normalizeRecoveryCode lower-cases a recovery code and drops dashes and
// spaces.
func normalizeRecoveryCode(c string) string {
	c = strings.ToLower(c)
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, c)
}

func recoveryHash(code string) []byte {
	h := sha256.Sum256([]byte(normalizeRecoveryCode(code)))
	return h[:]
}

// newRecoveryCodes returns fresh codes ("xxxx-xxxx-xxxx-xxxx") and their
// hashes.
func newRecoveryCodes() ([]string, [][]byte, error) {
	codes := make([]string, recoveryCodes)
	hashes := make([][]byte, recoveryCodes)
	for i := range codes {
		b := make([]byte, recoveryBytes)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, fmt.Errorf("read randomness: %w", err)
		}
		e := idEncoding.EncodeToString(b)
		codes[i] = e[0:4] + "-" + e[4:8] + "-" + e[8:12] + "-" + e[12:16]
		hashes[i] = recoveryHash(codes[i])
	}
	return codes, hashes, nil
}

// checkSecondFactor checks a TOTP code or, without one, a recovery code
// (which it consumes).
func (s *Server) checkSecondFactor(ctx context.Context, a storage.Account, code, recovery string, now time.Time) (ok, usedRecovery bool, err error) {
	if code != "" {
		ok, err := s.useTOTP(ctx, a.ID, a.TOTPSecret, code, now)
		return ok, false, err
	}
	if recovery == "" || len(recovery) > 64 {
		return false, false, nil
	}
	ok, err = s.store.UseRecoveryCode(ctx, a.ID, recoveryHash(recovery))
	if err != nil {
		return false, false, fmt.Errorf("use recovery code: %w", err)
	}
	return ok, true, nil
}

var errBadCode = &httpError{status: http.StatusUnauthorized, code: api.CodeTOTPRequired, msg: "the two-factor code is wrong or was already used"}

// handleTOTPSetup makes a new secret, stored but not enabled until
// confirmed with a code. It refuses while 2FA is on: replacing the secret
// would turn 2FA off without a code.
func (s *Server) handleTOTPSetup(w http.ResponseWriter, r *http.Request, p *principal) error {
	if p.account.TOTPEnabled {
		return &httpError{status: http.StatusConflict, code: api.CodeExists, msg: "two-factor authentication is already on; disable it first"}
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      totpIssuer,
		AccountName: p.account.Email,
		Period:      totpPeriod,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
		Rand:        rand.Reader,
	})
	if err != nil {
		return fmt.Errorf("generate totp secret: %w", err)
	}
	if err := s.store.SetTOTP(r.Context(), p.account.ID, key.Secret(), false, nil); err != nil {
		return fmt.Errorf("store totp secret: %w", err)
	}
	writeJSON(w, api.TOTPSetup{Secret: key.Secret(), URI: key.URL()})
	return nil
}

// handleTOTPEnable turns 2FA on with a code of the pending secret and
// answers the recovery codes (the only time they are shown).
func (s *Server) handleTOTPEnable(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req api.TOTPEnable
	if err := decodeJSON(w, r, smallBody, &req); err != nil {
		return err
	}
	a := p.account
	if a.TOTPEnabled {
		return &httpError{status: http.StatusConflict, code: api.CodeExists, msg: "two-factor authentication is already on"}
	}
	if a.TOTPSecret == "" {
		return badRequest("no two-factor secret is pending; call %s first", api.Path2FASetup)
	}
	ctx := r.Context()
	now := s.now()
	keys := []string{acctKey(a.ID), throttleAddr(r)}
	if err := s.checkThrottle(ctx, now, keys...); err != nil {
		return err
	}
	ok, err := s.useTOTP(ctx, a.ID, a.TOTPSecret, req.Code, now)
	if err != nil {
		return err
	}
	if !ok {
		if err := s.failThrottle(ctx, now, keys...); err != nil {
			return err
		}
		return errBadCode
	}
	codes, hashes, err := newRecoveryCodes()
	if err != nil {
		return err
	}
	if err := s.store.SetTOTP(ctx, a.ID, a.TOTPSecret, true, hashes); err != nil {
		return fmt.Errorf("enable totp: %w", err)
	}
	writeJSON(w, api.RecoveryCodes{Codes: codes})
	return nil
}

// handleTOTPDisable turns 2FA off; it needs a current code or a recovery
// code, so that a stolen access token alone cannot.
func (s *Server) handleTOTPDisable(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req api.TOTPDisable
	if err := decodeJSON(w, r, smallBody, &req); err != nil {
		return err
	}
	a := p.account
	if !a.TOTPEnabled {
		return badRequest("two-factor authentication is off")
	}
	ctx := r.Context()
	now := s.now()
	keys := []string{acctKey(a.ID), throttleAddr(r)}
	if err := s.checkThrottle(ctx, now, keys...); err != nil {
		return err
	}
	ok, _, err := s.checkSecondFactor(ctx, a, req.Code, req.RecoveryCode, now)
	if err != nil {
		return err
	}
	if !ok {
		if err := s.failThrottle(ctx, now, keys...); err != nil {
			return err
		}
		return errBadCode
	}
	if err := s.store.SetTOTP(ctx, a.ID, "", false, nil); err != nil {
		return fmt.Errorf("disable totp: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
