package server

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/kdf"
)

func TestRegisterAndLogin(t *testing.T) {
	e := newEnv(t)
	u := e.register("  Alice@Example.ORG ")

	var a api.Account
	want(t, u.do("GET", api.PathAccount, nil, &a), 200, "")
	if a.Account != u.id || a.Email != "alice@example.org" || a.Epoch != 1 || !bytes.Equal(a.KDF, u.kdf) || a.TOTP {
		t.Fatalf("account %+v", a)
	}

	// The same address (in another case) or the same id cannot register.
	dup := *u
	dup.id = newID(t)
	dup.email = "ALICE@example.org"
	want(t, e.do("POST", api.PathRegister, "", dup.registerRequest(), nil), 409, api.CodeExists)
	dup = *u
	dup.email = "other@example.org"
	want(t, e.do("POST", api.PathRegister, "", dup.registerRequest(), nil), 409, api.CodeExists)

	// A second device logs in.
	d := u.newDevice()
	if d.sess.AccessToken == u.sess.AccessToken {
		t.Fatal("two logins got the same token")
	}
	want(t, d.do("GET", api.PathAccount, nil, nil), 200, "")

	// Wrong login key and unknown account: the same 401.
	bad := *u
	bad.loginKey = randomBytes(32)
	r1 := bad.login("")
	want(t, r1, 401, api.CodeUnauthorized)
	ghost := *u
	ghost.email = "nobody@example.org"
	r2 := ghost.login("")
	want(t, r2, 401, api.CodeUnauthorized)
	if !bytes.Equal(r1.body, r2.body) {
		t.Fatalf("wrong key and unknown account answer differently:\n%s\n%s", r1.body, r2.body)
	}

	// Both paths run scrypt: with every scrypt slot taken, a login for an
	// unknown account waits like one for a known account.
	for _, x := range []*user{&bad, &ghost} {
		for range cap(e.srv.scrypt) {
			e.srv.scrypt <- struct{}{}
		}
		done := make(chan resp, 1)
		go func() { done <- x.login("") }()
		select {
		case <-done:
			t.Fatalf("%s: login answered without running scrypt", x.email)
		case <-time.After(100 * time.Millisecond):
		}
		for range cap(e.srv.scrypt) {
			<-e.srv.scrypt
		}
		want(t, <-done, 401, api.CodeUnauthorized)
	}

	// Login history: register, the second device, the wrong key (twice).
	// (A failed attempt is recorded just after the answer.)
	var h api.Logins
	waitFor(t, func() bool {
		want(t, u.do("GET", api.PathLogins, nil, &h), 200, "")
		return len(h.Logins) >= 4
	})
	if len(h.Logins) != 4 || h.Logins[0].OK || h.Logins[0].Reason != reasonBadCredential || !h.Logins[2].OK || h.Logins[3].Reason != reasonRegister {
		t.Fatalf("login history %+v", h.Logins)
	}
	if h.Logins[0].Address != "127.0.0.1" {
		t.Fatalf("login address %q", h.Logins[0].Address)
	}
}

func TestRegisterValidation(t *testing.T) {
	e := newEnv(t)
	base := (&user{email: "bob@example.org", id: newID(t), kdf: kdfHeader(t), loginKey: randomBytes(32), device: newID(t)}).registerRequest()
	cases := map[string]func(r *api.RegisterRequest){
		"email no at":       func(r *api.RegisterRequest) { r.Email = "bob.example.org" },
		"email two at":      func(r *api.RegisterRequest) { r.Email = "bob@x@example.org" },
		"email too long":    func(r *api.RegisterRequest) { r.Email = strings.Repeat("b", 250) + "@x.org" },
		"email space":       func(r *api.RegisterRequest) { r.Email = "b ob@example.org" },
		"account id":        func(r *api.RegisterRequest) { r.Account = "ABC" },
		"account id char":   func(r *api.RegisterRequest) { r.Account = strings.Repeat("u", 26) },
		"noncanonical id":   func(r *api.RegisterRequest) { r.Account = strings.Repeat("0", 25) + "1" },
		"kdf short":         func(r *api.RegisterRequest) { r.KDF = r.KDF[:79] },
		"kdf ceiling":       func(r *api.RegisterRequest) { k := bytes.Clone(r.KDF); k[4] = 0xff; r.KDF = k },
		"login key short":   func(r *api.RegisterRequest) { r.LoginKey = r.LoginKey[:31] },
		"document empty":    func(r *api.RegisterRequest) { r.Document = nil },
		"device id":         func(r *api.RegisterRequest) { r.Device.ID = "x" },
		"device platform":   func(r *api.RegisterRequest) { r.Device.Platform = "evil\x1b[2J" },
		"platform too long": func(r *api.RegisterRequest) { r.Device.Platform = strings.Repeat("p", 200) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			req := base
			f(&req)
			want(t, e.do("POST", api.PathRegister, "", req, nil), 400, api.CodeBadRequest)
		})
	}
	// Strict JSON: unknown fields, trailing data and wrong types are refused.
	for name, body := range map[string]string{
		"unknown field": `{"email":"x@y.z","bogus":1}`,
		"trailing":      `{"email":"x@y.z"} {}`,
		"wrong type":    `{"email":5}`,
		"not json":      `hello`,
		"empty":         ``,
	} {
		t.Run(name, func(t *testing.T) {
			want(t, e.raw("POST", api.PathPrelogin, "", "application/json", strings.NewReader(body), nil), 400, api.CodeBadRequest)
		})
	}
	// A document over the limit is too large, and so is a body over the
	// limit.
	req := base
	req.Document = make([]byte, api.MaxDocument+1)
	want(t, e.do("POST", api.PathRegister, "", req, nil), 413, api.CodeTooLarge)
	big := `{"email":"` + strings.Repeat("a", smallBody) + `"}`
	want(t, e.raw("POST", api.PathLogin, "", "application/json", strings.NewReader(big), nil), 413, api.CodeTooLarge)
}

func TestPreloginIndistinguishable(t *testing.T) {
	e := newEnv(t)
	u := e.register("carol@example.org")

	prelogin := func(e *env, email string) ([]byte, resp) {
		var p api.PreloginResponse
		r := e.do("POST", api.PathPrelogin, "", api.PreloginRequest{Email: email}, &p)
		want(t, r, 200, "")
		return p.KDF, r
	}
	known, rk := prelogin(e, "Carol@example.org")
	if !bytes.Equal(known, u.kdf) {
		t.Fatal("prelogin does not answer the account's header")
	}
	fake, rf := prelogin(e, "dave@example.org")
	if len(rk.body) != len(rf.body) || len(fake) != kdf.HeaderSize {
		t.Fatalf("known and unknown answers differ in size: %d vs %d", len(rk.body), len(rf.body))
	}
	h, err := kdf.ParseHeader(fake)
	if err != nil {
		t.Fatalf("fake header does not parse: %v", err)
	}
	if err := h.Params.Check(false); err != nil || h.Params.Argon2Memory%1024 != 0 || h.Params.PBKDF2Iterations%1000 != 0 {
		t.Fatalf("fake header params %+v do not look tuned: %v", h.Params, err)
	}
	// Derived per address, not one constant a prober could recognise.
	seen := map[kdf.Params]bool{}
	for i := range 8 {
		other, _ := prelogin(e, fmt.Sprintf("nobody%d@example.org", i))
		h2, err := kdf.ParseHeader(other)
		if err != nil {
			t.Fatal(err)
		}
		seen[h2.Params] = true
	}
	if len(seen) < 4 {
		t.Fatalf("8 unknown addresses drew only %d distinct parameter sets", len(seen))
	}
	if h.Salts.Argon2 == h.Salts.PBKDF2 {
		t.Fatal("fake header has equal salts")
	}
	if again, _ := prelogin(e, " DAVE@example.org"); !bytes.Equal(again, fake) {
		t.Fatal("fake header changes between calls")
	}
	if other, _ := prelogin(e, "erin@example.org"); bytes.Equal(other, fake) {
		t.Fatal("two unknown addresses get the same header")
	}
	// A second server on the same store answers the same.
	e2 := startEnv(t, e.store, t.TempDir())
	if again, _ := prelogin(e2, "dave@example.org"); !bytes.Equal(again, fake) {
		t.Fatal("fake header differs between two servers on one store")
	}
	if e2.srv.Fingerprint() == e.srv.Fingerprint() {
		t.Fatal("two data directories share a certificate")
	}
	// And the throttle of an unknown address behaves like a real one's.
	throttled := func(x *user) resp {
		for i := 0; i <= freeFailures; i++ {
			want(t, x.login(""), 401, api.CodeUnauthorized)
		}
		r := x.login("")
		want(t, r, 429, api.CodeRateLimited)
		e.clock.Advance(throttleDecay + time.Minute)
		return r
	}
	rg := throttled(&user{e: e, email: "dave@example.org", loginKey: randomBytes(32), device: newID(t)})
	rr := throttled(&user{e: e, email: u.email, loginKey: randomBytes(32), device: newID(t)})
	if !bytes.Equal(rg.body, rr.body) || rg.header.Get(api.HeaderRetryAfter) != rr.header.Get(api.HeaderRetryAfter) {
		t.Fatal("throttled unknown and known accounts answer differently")
	}
}

func TestThrottle(t *testing.T) {
	e := newEnv(t)
	u := e.register("frank@example.org")
	bad := *u
	bad.loginKey = randomBytes(32)
	for i := 1; i <= freeFailures; i++ {
		want(t, bad.login(""), 401, api.CodeUnauthorized)
	}
	// The sixth failure bars the account for 2 s.
	want(t, bad.login(""), 401, api.CodeUnauthorized)
	r := u.login("")
	want(t, r, 429, api.CodeRateLimited)
	if ra := r.header.Get(api.HeaderRetryAfter); ra != "2" {
		t.Fatalf("Retry-After %q, want 2", ra)
	}
	e.clock.Advance(3 * time.Second)
	want(t, bad.login(""), 401, api.CodeUnauthorized) // seventh: 4 s
	r = u.login("")
	want(t, r, 429, api.CodeRateLimited)
	if ra, _ := strconv.Atoi(r.header.Get(api.HeaderRetryAfter)); ra != 4 {
		t.Fatalf("Retry-After %d, want 4", ra)
	}
	e.clock.Advance(5 * time.Second)
	want(t, u.login(""), 200, "")

	// The account key is cleared by the success; the address key is not.
	if th, _ := e.store.Throttle(context.Background(), acctKey(u.id)); th.Failures != 0 {
		t.Fatalf("account throttle after success: %+v", th)
	}
	if th, _ := e.store.Throttle(context.Background(), "addr:127.0.0.1"); th.Failures != 7 {
		t.Fatalf("address throttle after success: %+v", th)
	}
	// Another account from the same address is barred by the address key
	// after one more failure.
	v := e.register("grace@example.org")
	badv := *v
	badv.loginKey = randomBytes(32)
	want(t, badv.login(""), 401, api.CodeUnauthorized)
	want(t, v.login(""), 429, api.CodeRateLimited)
	// A quiet hour forgets.
	e.clock.Advance(throttleDecay + 20*time.Second)
	want(t, v.login(""), 200, "")
	if th, _ := e.store.Throttle(context.Background(), "addr:127.0.0.1"); th.Failures != 0 {
		t.Fatalf("address throttle after decay: %+v", th)
	}

	if backoff(freeFailures) != 0 || backoff(freeFailures+1) != 2*time.Second || backoff(100) != maxBackoff || backoff(freeFailures+10) != maxBackoff {
		t.Fatal("backoff schedule")
	}
}

func TestTOTP(t *testing.T) {
	e := newEnv(t)
	u := e.register("heidi@example.org")
	code := func() string {
		c, err := totp.GenerateCodeCustom(secretOf(t, e, u.id), e.clock.Now(), totpOpts)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Enable needs setup first.
	want(t, u.do("POST", api.Path2FAEnable, api.TOTPEnable{Code: "123456"}, nil), 400, api.CodeBadRequest)
	var setup api.TOTPSetup
	want(t, u.do("POST", api.Path2FASetup, nil, &setup), 200, "")
	if setup.Secret == "" || !strings.HasPrefix(setup.URI, "otpauth://totp/Safehold:heidi@example.org?") || !strings.Contains(setup.URI, "issuer=Safehold") {
		t.Fatalf("setup %+v", setup)
	}
	// Not enabled yet: login needs no code.
	want(t, u.login(""), 200, "")

	want(t, u.do("POST", api.Path2FAEnable, api.TOTPEnable{Code: wrongCode(code())}, nil), 401, api.CodeTOTPRequired)
	var rc api.RecoveryCodes
	want(t, u.do("POST", api.Path2FAEnable, api.TOTPEnable{Code: code()}, &rc), 200, "")
	if len(rc.Codes) != recoveryCodes {
		t.Fatalf("%d recovery codes", len(rc.Codes))
	}
	want(t, u.do("POST", api.Path2FASetup, nil, nil), 409, api.CodeExists)
	var a api.Account
	want(t, u.do("GET", api.PathAccount, nil, &a), 200, "")
	if !a.TOTP {
		t.Fatal("account does not say 2FA is on")
	}

	// Now a code is required.
	want(t, u.login(""), 401, api.CodeTOTPRequired)
	// The code used to enable was used in this step: refused.
	want(t, u.login(code()), 401, api.CodeTOTPRequired)
	e.clock.Advance(totpPeriod * time.Second)
	want(t, u.login(wrongCode(code())), 401, api.CodeTOTPRequired)
	c := code()
	want(t, u.login(c), 200, "")
	want(t, u.login(c), 401, api.CodeTOTPRequired) // reused in its step
	e.clock.Advance(totpPeriod * time.Second)
	want(t, u.login(c), 401, api.CodeTOTPRequired) // still within the skew: still used
	// The next step's code is accepted (one step of skew), once.
	next, err := totp.GenerateCodeCustom(secretOf(t, e, u.id), e.clock.Now().Add(totpPeriod*time.Second), totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	want(t, u.login(next), 200, "")
	want(t, u.login(next), 401, api.CodeTOTPRequired)
	e.clock.Advance(throttleDecay + time.Minute) // forget the address's failures
	// Two steps away is refused.
	far, _ := totp.GenerateCodeCustom(secretOf(t, e, u.id), e.clock.Now().Add(-2*totpPeriod*time.Second), totpOpts)
	want(t, u.login(far), 401, api.CodeTOTPRequired)

	// A recovery code works once, whatever its case and dashes.
	rec := func(code string) resp {
		var s api.Session
		return e.do("POST", api.PathLogin, "", api.LoginRequest{Email: u.email, LoginKey: u.loginKey,
			Device: api.DeviceHello{ID: u.device}, RecoveryCode: code}, &s)
	}
	want(t, rec(strings.ToUpper(strings.ReplaceAll(rc.Codes[0], "-", ""))), 200, "")
	want(t, rec(rc.Codes[0]), 401, api.CodeTOTPRequired)
	want(t, rec("not-a-code"), 401, api.CodeTOTPRequired)

	// Disable needs a code or a recovery code.
	e.clock.Advance(throttleDecay + time.Minute)
	want(t, u.login(code()), 200, "")
	want(t, u.do("POST", api.Path2FADisable, api.TOTPDisable{}, nil), 401, api.CodeTOTPRequired)
	want(t, u.do("POST", api.Path2FADisable, api.TOTPDisable{RecoveryCode: rc.Codes[1]}, nil), 204, "")
	want(t, u.login(""), 200, "")
	want(t, u.do("POST", api.Path2FADisable, api.TOTPDisable{RecoveryCode: rc.Codes[2]}, nil), 400, api.CodeBadRequest)
}

func secretOf(t *testing.T, e *env, id string) string {
	a, err := e.store.AccountByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a.TOTPSecret
}

func wrongCode(c string) string {
	b := []byte(c)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func TestSessions(t *testing.T) {
	e := newEnv(t)
	u := e.register("ivan@example.org")
	old := u.sess

	// Refresh rotates: the new pair works, the old pair does not.
	var s api.Session
	want(t, e.do("POST", api.PathRefresh, "", api.RefreshRequest{RefreshToken: old.RefreshToken}, &s), 200, "")
	if s.AccessToken == old.AccessToken || s.RefreshToken == old.RefreshToken || s.Account != u.id {
		t.Fatalf("refresh answered %+v", s)
	}
	if s.AccessExpires != e.clock.Now().Add(accessTTL).Unix() || s.RefreshExpires != e.clock.Now().Add(refreshTTL).Unix() {
		t.Fatalf("expiries %d %d", s.AccessExpires, s.RefreshExpires)
	}
	want(t, e.do("POST", api.PathRefresh, "", api.RefreshRequest{RefreshToken: old.RefreshToken}, nil), 401, api.CodeUnauthorized)
	want(t, e.do("GET", api.PathAccount, old.AccessToken, nil, nil), 401, api.CodeUnauthorized)
	want(t, e.do("GET", api.PathAccount, s.AccessToken, nil, nil), 200, "")
	// An access token is no refresh token and vice versa.
	want(t, e.do("POST", api.PathRefresh, "", api.RefreshRequest{RefreshToken: s.AccessToken}, nil), 401, api.CodeUnauthorized)
	want(t, e.do("GET", api.PathAccount, s.RefreshToken, nil, nil), 401, api.CodeUnauthorized)
	// Malformed and missing tokens.
	want(t, e.do("GET", api.PathAccount, "abc", nil, nil), 401, api.CodeUnauthorized)
	want(t, e.do("GET", api.PathAccount, "", nil, nil), 401, api.CodeUnauthorized)

	// The access token expires after 15 minutes; the refresh token lives on.
	e.clock.Advance(accessTTL + time.Second)
	want(t, e.do("GET", api.PathAccount, s.AccessToken, nil, nil), 401, api.CodeUnauthorized)
	var s2 api.Session
	want(t, e.do("POST", api.PathRefresh, "", api.RefreshRequest{RefreshToken: s.RefreshToken}, &s2), 200, "")

	// Logout ends both tokens.
	want(t, e.do("POST", api.PathLogout, s2.AccessToken, nil, nil), 204, "")
	want(t, e.do("GET", api.PathAccount, s2.AccessToken, nil, nil), 401, api.CodeUnauthorized)
	want(t, e.do("POST", api.PathRefresh, "", api.RefreshRequest{RefreshToken: s2.RefreshToken}, nil), 401, api.CodeUnauthorized)
}

func TestDevices(t *testing.T) {
	e := newEnv(t)
	u := e.register("judy@example.org")
	d := u.newDevice()

	var ds api.Devices
	want(t, u.do("GET", api.PathDevices, nil, &ds), 200, "")
	if len(ds.Devices) != 2 {
		t.Fatalf("devices %+v", ds)
	}
	for _, x := range ds.Devices {
		if x.Current != (x.ID == u.device) || x.Revoked != 0 || x.Created == 0 || x.LastSeen == 0 || x.Platform != "safe/1 test" {
			t.Fatalf("device %+v", x)
		}
	}

	// Last seen moves at most once a minute.
	dev0, _ := e.store.Device(context.Background(), u.id, d.device)
	e.clock.Advance(30 * time.Second)
	want(t, d.do("GET", api.PathAccount, nil, nil), 200, "")
	dev1, _ := e.store.Device(context.Background(), u.id, d.device)
	if !dev1.LastSeen.Equal(dev0.LastSeen) {
		t.Fatal("last seen written within a minute")
	}
	e.clock.Advance(31 * time.Second)
	want(t, d.do("GET", api.PathAccount, nil, nil), 200, "")
	dev2, _ := e.store.Device(context.Background(), u.id, d.device)
	if dev2.LastSeen.Unix() != e.clock.Now().Unix() {
		t.Fatalf("last seen %v, want %v", dev2.LastSeen, e.clock.Now())
	}

	// Revoke the second device: its tokens die, it cannot log in again.
	refresh := d.sess.RefreshToken
	want(t, u.do("DELETE", api.PathDevices+"/"+d.device, nil, nil), 204, "")
	want(t, d.do("GET", api.PathAccount, nil, nil), 401, api.CodeUnauthorized)
	want(t, e.do("POST", api.PathRefresh, "", api.RefreshRequest{RefreshToken: refresh}, nil), 401, api.CodeUnauthorized)
	want(t, d.login(""), 403, api.CodeForbidden)
	want(t, u.do("DELETE", api.PathDevices+"/"+d.device, nil, nil), 204, "") // again: no change
	want(t, u.do("DELETE", api.PathDevices+"/"+newID(t), nil, nil), 404, api.CodeNotFound)
	want(t, u.do("DELETE", api.PathDevices+"/nope", nil, nil), 400, api.CodeBadRequest)
	want(t, u.do("GET", api.PathDevices, nil, &ds), 200, "")
	for _, x := range ds.Devices {
		if (x.ID == d.device) != (x.Revoked != 0) {
			t.Fatalf("device %+v", x)
		}
	}
	// Another account cannot revoke this account's device.
	o := e.register("mallory@example.org")
	want(t, o.do("DELETE", api.PathDevices+"/"+u.device, nil, nil), 404, api.CodeNotFound)

	// A revoked device whose session survived (a race) is refused.
	s3, err := e.srv.issueSession(context.Background(), u.id, d.device)
	if err != nil {
		t.Fatal(err)
	}
	want(t, e.do("GET", api.PathAccount, s3.AccessToken, nil, nil), 403, api.CodeForbidden)
}

func TestDisabledAccount(t *testing.T) {
	e := newEnv(t)
	u := e.register("ken@example.org")
	ctx := context.Background()

	// Disabled in the store while a session lives: refused.
	if err := e.store.SetDisabled(ctx, u.id, true); err != nil {
		t.Fatal(err)
	}
	want(t, u.do("GET", api.PathAccount, nil, nil), 403, api.CodeForbidden)
	want(t, e.do("POST", api.PathRefresh, "", api.RefreshRequest{RefreshToken: u.sess.RefreshToken}, nil), 403, api.CodeForbidden)
	want(t, u.login(""), 403, api.CodeForbidden)
	// The wrong key still gets the plain 401: being disabled is said only
	// to who proves the key.
	bad := *u
	bad.loginKey = randomBytes(32)
	want(t, bad.login(""), 401, api.CodeUnauthorized)

	if err := SetDisabled(ctx, e.store, u.id, false); err != nil {
		t.Fatal(err)
	}
	want(t, u.login(""), 200, "")
	// Through the admin function, sessions end too.
	if err := SetDisabled(ctx, e.store, u.id, true); err != nil {
		t.Fatal(err)
	}
	want(t, u.do("GET", api.PathAccount, nil, nil), 401, api.CodeUnauthorized)
}

func TestAccountDocument(t *testing.T) {
	e := newEnv(t)
	u := e.register("leo@example.org")
	d := u.newDevice()

	var a api.Account
	want(t, u.do("PUT", api.PathAccount, api.AccountUpdate{Base: 1, Document: []byte("doc 2")}, &a), 200, "")
	if a.Epoch != 2 || string(a.Document) != "doc 2" {
		t.Fatalf("account %+v", a)
	}
	r := d.do("PUT", api.PathAccount, api.AccountUpdate{Base: 1, Document: []byte("doc 2 from d")}, nil)
	want(t, r, 409, api.CodeStale)
	if r.err.Epoch != 2 {
		t.Fatalf("stale epoch %d", r.err.Epoch)
	}
	want(t, u.do("PUT", api.PathAccount, api.AccountUpdate{Base: 2}, nil), 400, api.CodeBadRequest)
	want(t, u.do("PUT", api.PathAccount, api.AccountUpdate{Base: 2, Document: []byte("x"),
		Credentials: &api.Credentials{KDF: []byte("short"), LoginKey: randomBytes(32)}}, nil), 400, api.CodeBadRequest)

	// Password change: new KDF header and login key, in the same step.
	newKDF, newKey := kdfHeader(t), randomBytes(32)
	want(t, d.do("PUT", api.PathAccount, api.AccountUpdate{Base: 2, Document: []byte("doc 3"),
		Credentials: &api.Credentials{KDF: newKDF, LoginKey: newKey}}, &a), 200, "")
	if a.Epoch != 3 || !bytes.Equal(a.KDF, newKDF) {
		t.Fatalf("account %+v", a)
	}
	// Other sessions live on; prelogin shows the new header; the old key fails.
	want(t, u.do("GET", api.PathAccount, nil, &a), 200, "")
	if !bytes.Equal(a.KDF, newKDF) || string(a.Document) != "doc 3" {
		t.Fatal("other device does not see the change")
	}
	var p api.PreloginResponse
	want(t, e.do("POST", api.PathPrelogin, "", api.PreloginRequest{Email: u.email}, &p), 200, "")
	if !bytes.Equal(p.KDF, newKDF) {
		t.Fatal("prelogin answers the old header")
	}
	want(t, u.login(""), 401, api.CodeUnauthorized)
	u.loginKey = newKey
	want(t, u.login(""), 200, "")
}

func TestVerifier(t *testing.T) {
	s := &Server{logN: testLogN, scrypt: make(chan struct{}, 1)}
	ctx := context.Background()
	k := randomBytes(32)
	v, err := s.newVerifier(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != verifierLen || v[0] != verifierAlgScrypt || v[1] != testLogN {
		t.Fatalf("verifier % x", v)
	}
	v2, _ := s.newVerifier(ctx, k)
	if bytes.Equal(v, v2) {
		t.Fatal("two verifiers of one key are equal: no salt")
	}
	if ok, err := s.checkVerifier(ctx, v, k); !ok || err != nil {
		t.Fatal("verifier does not match its key", err)
	}
	k[0] ^= 1
	if ok, _ := s.checkVerifier(ctx, v, k); ok {
		t.Fatal("verifier matches another key")
	}
	// Parameters from the store are bounded.
	bad := bytes.Clone(v)
	bad[1] = 40
	if _, err := s.checkVerifier(ctx, bad, k); err == nil {
		t.Fatal("accepted log2 N = 40")
	}
	if _, err := s.checkVerifier(ctx, v[:10], k); err == nil {
		t.Fatal("accepted a truncated verifier")
	}
	// The default cost is scrypt N=32768, r=8, p=1.
	if verifierLogN != 15 || verifierR != 8 || verifierP != 1 {
		t.Fatal("verifier defaults changed")
	}
}

func TestValidate(t *testing.T) {
	for s, ok := range map[string]bool{
		newID(t):                     true,
		"00000000000000000000000000": true,
		"0000000000000000000000000w": true,
		"00000000000000000000000001": false, // non-zero trailing bits
		"0000000000000000000000000i": false, // not in the alphabet
		"0000000000000000000000000":  false,
		"":                           false,
		"0000000000000000000000000O": false,
	} {
		if validID(s) != ok {
			t.Errorf("validID(%q) = %t", s, !ok)
		}
	}
	for in, out := range map[string]string{
		" A@B.c ":   "a@b.c",
		"a@b":       "a@b",
		"@b.c":      "",
		"a@":        "",
		"a@b@c":     "",
		"a\tb@c.d":  "",
		"a@b\x00.c": "",
	} {
		got, ok := normalizeEmail(in)
		if got != out || ok != (out != "") {
			t.Errorf("normalizeEmail(%q) = %q, %t", in, got, ok)
		}
	}
}
