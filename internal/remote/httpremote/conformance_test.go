package httpremote_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/remote/remotetest"
	"github.com/safehold/safehold/internal/server"
	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/server/storage/postgres"
	"github.com/safehold/safehold/internal/server/storage/postgres/pgtest"
	"github.com/safehold/safehold/internal/server/storage/sqlite"
	"github.com/safehold/safehold/internal/totp"
)

// startServer runs a real `safe serve` (SQLite) on a loopback port and
// returns its address and certificate fingerprint.
func startServer(t *testing.T) (url, fingerprint string) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "safehold.db"))
	if err != nil {
		t.Fatal(err)
	}
	return serveStore(t, st)
}

// serveStore runs a real server on st (closed at the end).
func serveStore(t *testing.T, st storage.Store) (url, fingerprint string) {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Config{
		Store:   st,
		DataDir: dir,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "https://" + ln.Addr().String(), srv.Fingerprint()
}

func TestConformance(t *testing.T) {
	url, fp := startServer(t)
	got, err := httpremote.Probe(t.Context(), url)
	if err != nil || got != fp {
		t.Fatalf("Probe = %q, %v; want the server's fingerprint %q", got, err, fp)
	}
	remotetest.Run(t, func(t *testing.T) remote.Remote {
		c, err := httpremote.New(url, fp, httpremote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	})
}

// TestConformancePostgres runs the same suite against a server on
// PostgreSQL (skipped without one; CI=true makes that a failure).
func TestConformancePostgres(t *testing.T) {
	st, err := postgres.Open(t.Context(), pgtest.FreshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	url, fp := serveStore(t, st)
	remotetest.Run(t, func(t *testing.T) remote.Remote {
		c, err := httpremote.New(url, fp, httpremote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	})
}

func TestPinnedAgainstRealServer(t *testing.T) {
	url, _ := startServer(t)
	_, other := startServer(t)
	c, err := httpremote.New(url, other, httpremote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Prelogin(t.Context(), "a@example.com")
	var fe *httpremote.FingerprintError
	if !errors.As(err, &fe) || !errors.Is(err, httpremote.ErrFingerprint) || errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("Prelogin with another server's fingerprint: err = %v", err)
	}
	if fe.Pinned != other {
		t.Errorf("FingerprintError.Pinned = %q, want %q", fe.Pinned, other)
	}
}

// TestAccountAPI drives the account methods the CLI uses against the real
// server: devices, login history, two-factor setup and login, revocation,
// logout, and a restored session that refreshes.
func TestAccountAPI(t *testing.T) {
	ctx := t.Context()
	url, fp := startServer(t)
	var saved []api.Session
	c, err := httpremote.New(url, fp, httpremote.Options{OnSession: func(s api.Session) { saved = append(saved, s) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	email, dev, loginKey := "acct-"+remotetest.NewID()[:8]+"@example.com", remotetest.NewID(), make([]byte, api.LoginKeySize)
	err = c.Register(ctx, api.RegisterRequest{
		Email: email, Account: remotetest.NewID(), KDF: remotetest.KDFHeader(t), LoginKey: loginKey,
		Document: []byte("doc"), Device: api.DeviceHello{ID: dev, Platform: "test/1"},
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if len(saved) != 1 || saved[0].RefreshToken == "" {
		t.Fatalf("OnSession after Register: %+v", saved)
	}

	devs, err := c.Devices(ctx)
	if err != nil || len(devs) != 1 || devs[0].ID != dev || !devs[0].Current || devs[0].Platform != "test/1" {
		t.Errorf("Devices = %+v, %v", devs, err)
	}

	// Two-factor on.
	setup, err := c.TOTPSetup(ctx)
	if err != nil {
		t.Fatalf("TOTPSetup: %v", err)
	}
	cfg, err := totp.Parse(setup.URI)
	if err != nil {
		t.Fatalf("parse the TOTP URI: %v", err)
	}
	code, _, err := totp.Code(cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	codes, err := c.TOTPEnable(ctx, code)
	if err != nil || len(codes) < 2 {
		t.Fatalf("TOTPEnable = %d codes, %v", len(codes), err)
	}
	if a, err := c.Account(ctx); err != nil || !a.TOTP {
		t.Errorf("Account after enabling 2FA: TOTP %v, %v", a.TOTP, err)
	}

	// A second device needs the second factor.
	c2, err := httpremote.New(url, fp, httpremote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	dev2 := remotetest.NewID()
	login := api.LoginRequest{Email: email, LoginKey: loginKey, Device: api.DeviceHello{ID: dev2, Platform: "test/2"}}
	if err := c2.Login(ctx, login); !errors.Is(err, remote.ErrTOTPRequired) {
		t.Fatalf("Login without a code: err = %v, want ErrTOTPRequired", err)
	}
	login.RecoveryCode = codes[0]
	if err := c2.Login(ctx, login); err != nil {
		t.Fatalf("Login with a recovery code: %v", err)
	}
	logins, err := c.Logins(ctx)
	if err != nil || len(logins) == 0 || !logins[0].OK || logins[0].Device != dev2 {
		t.Errorf("Logins = %+v, %v", logins, err)
	}
	if err := c.TOTPDisable(ctx, api.TOTPDisable{RecoveryCode: codes[1]}); err != nil {
		t.Errorf("TOTPDisable: %v", err)
	}

	// Revoking the second device ends its session.
	if err := c.RevokeDevice(ctx, dev2); err != nil {
		t.Fatalf("RevokeDevice: %v", err)
	}
	if _, err := c2.Account(ctx); !errors.Is(err, remote.ErrAuth) {
		t.Errorf("Account on a revoked device: err = %v, want ErrAuth", err)
	}

	// A restored session whose access token has expired refreshes.
	restored := saved[len(saved)-1]
	restored.AccessExpires = time.Now().Add(-time.Minute).Unix()
	var renewed []api.Session
	c3, err := httpremote.New(url, fp, httpremote.Options{Session: &restored, OnSession: func(s api.Session) { renewed = append(renewed, s) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := c3.Account(ctx); err != nil {
		t.Fatalf("Account with a restored, expired session: %v", err)
	}
	if len(renewed) != 1 || renewed[0].RefreshToken == restored.RefreshToken {
		t.Errorf("OnSession after the refresh: %d sessions", len(renewed))
	}

	// Logout forgets the session.
	if err := c3.Logout(ctx); err != nil {
		t.Errorf("Logout: %v", err)
	}
	if len(renewed) != 2 || renewed[1] != (api.Session{}) || c3.LoggedIn() {
		t.Errorf("after Logout: %+v, logged in %v", renewed, c3.LoggedIn())
	}
	if _, err := c3.Account(ctx); !errors.Is(err, remote.ErrAuth) {
		t.Errorf("Account after Logout: err = %v, want ErrAuth", err)
	}
}
