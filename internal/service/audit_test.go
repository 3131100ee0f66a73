package service

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/audit"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/vault"
)

// auditHandler is an unlocked handler whose vault clock the test sets:
// items added while it is in the past have old password dates.
func auditHandler(t *testing.T) (*Handler, *time.Time) {
	t.Helper()
	clock := time.Now().UTC().Add(-2 * 365 * 24 * time.Hour)
	path := filepath.Join(t.TempDir(), "vault.db")
	opts := vault.Options{Rand: rand.Reader, AllowInsecureKDF: true, Now: func() time.Time { return clock }}
	if _, err := vault.Create(ctx, path, []byte("correct horse battery"), kdf.TestParams(), opts); err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	if err := v.Unlock(ctx, []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	return &Handler{V: v}, &clock
}

func runAudit(t *testing.T, h *Handler, c context.Context, a AuditArgs, report func(done, total int64)) (*audit.Report, error) {
	t.Helper()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	res, ok, err := h.handleAudit(c, agent.Request{Op: OpAudit, Args: raw}, report)
	if !ok {
		t.Fatal("handleAudit did not take the audit op")
	}
	if err != nil {
		return nil, err
	}
	return res.(*audit.Report), nil
}

// breachList writes a sorted local list holding the SHA-1 of each password
// (count 100+i) among filler lines.
func breachList(t *testing.T, passwords ...string) string {
	t.Helper()
	lines := []string{"0000000000000000000000000000000000000000:1", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:2"}
	for i, p := range passwords {
		lines = append(lines, fmt.Sprintf("%X:%d", sha1.Sum([]byte(p)), 100+i))
	}
	slices.Sort(lines)
	path := filepath.Join(t.TempDir(), "pwned.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\r\n")+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditOp(t *testing.T) {
	h, clock := auditHandler(t)
	// Added two years ago: the password is old.
	if _, err := h.V.Add(ctx, []item.Item{{Type: item.Login, Title: "Forum", Username: "ann", Password: "Vq3#mZ8!pL2@xR7$"}}); err != nil {
		t.Fatal(err)
	}
	*clock = time.Now().UTC()
	items := []item.Item{
		{Type: item.Login, Title: "Bank", Username: "ann", Password: "password"},
		{Type: item.Login, Title: "Mail", Username: "ann", Password: "kT9$wQ2!vN6#hB4%"},
		{Type: item.Login, Title: "Chat", Username: "ann", Password: "kT9$wQ2!vN6#hB4%"},
		{Type: item.Login, Title: "Cloud", Username: "ann", Password: "Jx7&rM3^sD8*", Fields: []item.Field{{Name: "otp", Kind: item.KindTOTP}}},
		{Type: item.Note, Title: "Plain note", Notes: "nothing"},
	}
	if _, err := h.V.Add(ctx, items); err != nil {
		t.Fatal(err)
	}
	trashed, err := h.V.Add(ctx, []item.Item{{Type: item.Login, Title: "Gone", Password: "password"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.V.Trash(ctx, trashed[0].ID); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var last [2]int64
	rep, err := runAudit(t, h, ctx, AuditArgs{MinScore: 3, OldAfterSeconds: 365 * 24 * 3600, Breach: BreachFile, BreachFile: breachList(t, "password")},
		func(done, total int64) { mu.Lock(); last = [2]int64{done, total}; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rep.Findings {
		got = append(got, f.Title+":"+string(f.Kind))
	}
	want := []string{"Bank:breached", "Chat:reused", "Mail:reused", "Bank:weak", "Forum:old", "Cloud:no_totp"}
	if !slices.Equal(got, want) {
		t.Fatalf("findings %v\nwant     %v", got, want)
	}
	if rep.Items != 6 || rep.Summary.Passwords != 5 || rep.Summary.Breach != BreachFile || last != [2]int64{6, 6} {
		t.Fatalf("items %d, summary %+v, progress %v", rep.Items, rep.Summary, last)
	}
	js, _ := json.Marshal(rep)
	for _, secret := range []string{"password\"", "kT9$", "Vq3#", "Jx7&", fmt.Sprintf("%X", sha1.Sum([]byte("password")))[:5]} {
		if strings.Contains(string(js), secret) {
			t.Fatalf("the result holds %q", secret)
		}
	}
	// Other ops are not audit's.
	if _, ok, _ := h.handleAudit(ctx, agent.Request{Op: OpList}, nil); ok {
		t.Fatal("handleAudit took list")
	}
}

// With the range API, only 5-digit prefixes reach the server, with padding.
func TestAuditOpRangeAPI(t *testing.T) {
	h, clock := auditHandler(t)
	*clock = time.Now().UTC()
	if _, err := h.V.Add(ctx, []item.Item{{Type: item.Login, Title: "A", Password: "password"}, {Type: item.Login, Title: "B", Password: "a much better passphrase 4 me"}}); err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("%X", sha1.Sum([]byte("password")))
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		if r.Header.Get("Add-Padding") != "true" || len(strings.TrimPrefix(r.URL.Path, "/range/")) != 5 {
			t.Errorf("request %s %v", r.URL, r.Header)
		}
		fmt.Fprintf(w, "%s:3\r\n%s:0\r\n", sum[5:], strings.Repeat("A", 35))
	}))
	defer srv.Close()
	rep, err := runAudit(t, h, ctx, AuditArgs{Breach: BreachAPI, BreachAPI: srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The server lists "password"'s suffix under every prefix: B's sum
	// has another suffix, so only A is breached; one request per prefix.
	if rep.Summary.Breached != 1 || rep.Findings[0].Title != "A" || rep.Findings[0].BreachCount != 3 || len(asked) != 2 {
		t.Fatalf("findings %+v, asked %v", rep.Findings, asked)
	}
}

func TestAuditOpErrors(t *testing.T) {
	h, _ := auditHandler(t)
	if _, err := h.V.Add(ctx, []item.Item{{Type: item.Login, Title: "A", Password: "password"}}); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte("not a list\n"), 0o600)
	unsorted := filepath.Join(t.TempDir(), "unsorted.txt")
	os.WriteFile(unsorted, []byte(strings.Repeat("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:1\r\n0000000000000000000000000000000000000000:1\r\n", 3)), 0o600)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", 500) }))
	defer srv.Close()
	for _, tc := range []struct {
		args AuditArgs
		code string
	}{
		{AuditArgs{Breach: "maybe"}, CodeInvalid},
		{AuditArgs{Breach: BreachOff, MinScore: 5}, CodeInvalid},
		{AuditArgs{Breach: BreachOff, OldAfterSeconds: -1}, CodeInvalid},
		{AuditArgs{Breach: BreachFile, BreachFile: "pwned.txt"}, CodeInvalid},
		{AuditArgs{Breach: BreachAPI, BreachAPI: "http://example.com"}, CodeInvalid},
		{AuditArgs{Breach: BreachFile, BreachFile: filepath.Join(t.TempDir(), "missing.txt")}, CodeBreachCheck},
		{AuditArgs{Breach: BreachFile, BreachFile: bad}, CodeBreachCheck},
		{AuditArgs{Breach: BreachFile, BreachFile: unsorted}, CodeBreachCheck},
		{AuditArgs{Breach: BreachAPI, BreachAPI: srv.URL}, CodeBreachCheck},
		{AuditArgs{Breach: BreachOff, Vault: "no such vault"}, CodeNoOrg},
	} {
		_, err := runAudit(t, h, ctx, tc.args, nil)
		if err == nil {
			t.Errorf("%+v: no error", tc.args)
			continue
		}
		if c := code(toAgentError(err)); c != tc.code {
			t.Errorf("%+v: %v (code %s, want %s)", tc.args, err, c, tc.code)
		}
		if strings.Contains(err.Error(), fmt.Sprintf("%X", sha1.Sum([]byte("password")))[:5]) {
			t.Errorf("%+v: the error names the prefix: %v", tc.args, err)
		}
	}
	// Unknown fields are refused; a locked vault is reported as such.
	if _, _, err := h.handleAudit(ctx, agent.Request{Op: OpAudit, Args: json.RawMessage(`{"breach":"off","x":1}`)}, nil); code(err) != agent.CodeBadRequest {
		t.Fatalf("unknown field: %v", err)
	}
	h.V.Lock()
	if _, err := runAudit(t, h, ctx, AuditArgs{Breach: BreachOff}, nil); code(toAgentError(err)) != CodeLocked {
		t.Fatalf("locked: %v", err)
	}
}

// An interrupted audit (lock, stop, the client gone) ends with the
// context's error, which HandleProgress reports as interrupted.
func TestAuditOpInterrupted(t *testing.T) {
	h, _ := auditHandler(t)
	if _, err := h.V.Add(ctx, []item.Item{{Type: item.Login, Title: "A", Password: "password"}}); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := runAudit(t, h, c, AuditArgs{Breach: BreachOff, MinScore: 3}, nil); !interrupted(c, err) {
		t.Fatalf("cancelled: %v", err)
	}
}
