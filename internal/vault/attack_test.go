package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/vlog"
)

// liar is a malicious remote: an honest one whose answers a hook rewrites.
// Each attack below must end in a refusal that names what was seen, with
// the victim's local data unchanged.
type liar struct {
	remote.Remote
	pull     func(vault string, p *api.LogPage)
	account  func(a *api.Account)
	prelogin func(h []byte) []byte
	vaults   func(list []api.Vault)
	logins   atomic.Int32
	org      *orgLiar // organisation hooks, for the proxy (org_test.go)
}

func (l *liar) Pull(ctx context.Context, vault string, since uint64) (api.LogPage, error) {
	p, err := l.Remote.Pull(ctx, vault, since)
	if err == nil && l.pull != nil {
		l.pull(vault, &p)
	}
	return p, err
}

func (l *liar) Account(ctx context.Context) (api.Account, error) {
	a, err := l.Remote.Account(ctx)
	if err == nil && l.account != nil {
		l.account(&a)
	}
	return a, err
}

func (l *liar) Prelogin(ctx context.Context, email string) ([]byte, error) {
	h, err := l.Remote.Prelogin(ctx, email)
	if err == nil && l.prelogin != nil {
		h = l.prelogin(h)
	}
	return h, err
}

func (l *liar) Login(ctx context.Context, r api.LoginRequest) error {
	l.logins.Add(1)
	return l.Remote.Login(ctx, r)
}

func (l *liar) Vaults(ctx context.Context) ([]api.Vault, error) {
	list, err := l.Remote.Vaults(ctx)
	if err == nil && l.vaults != nil {
		l.vaults(list)
	}
	return list, err
}

// attack is one lie and what the victim must say about it.
type attack struct {
	name string
	// arm sets the liar's hooks; a and b have synced, and A has three
	// newer entries on the remote (two new items, one edit).
	arm   func(t *testing.T, a, b *Vault, l *liar)
	words string
}

var attacks = []attack{
	{"log-rollback", func(t *testing.T, a, b *Vault, l *liar) {
		pinned := b.vaults[b.order[0]].seq
		l.pull = func(_ string, p *api.LogPage) { p.Head, p.Entries = pinned-1, nil }
	}, "rolled it back"},
	{"dropped-entry", func(t *testing.T, a, b *Vault, l *liar) {
		l.pull = func(_ string, p *api.LogPage) { p.Entries = slices.Delete(p.Entries, 1, 2) }
	}, "dropped"},
	{"duplicated-entry", func(t *testing.T, a, b *Vault, l *liar) {
		l.pull = func(_ string, p *api.LogPage) { p.Entries = slices.Insert(p.Entries, 1, p.Entries[0]) }
	}, "duplicated"},
	{"reordered-entries", func(t *testing.T, a, b *Vault, l *liar) {
		l.pull = func(_ string, p *api.LogPage) { p.Entries[0], p.Entries[1] = p.Entries[1], p.Entries[0] }
	}, "reordered"},
	{"forked-log", func(t *testing.T, a, b *Vault, l *liar) {
		l.pull = func(_ string, p *api.LogPage) {
			e, _ := vlog.DecodeBody(p.Entries[0].Body)
			e.Prev[0] ^= 1
			p.Entries[0].Body, _ = e.Body()
		}
	}, "forked"},
	{"injected-entry", func(t *testing.T, a, b *Vault, l *liar) {
		// The server signs an entry with a key of its own, in place.
		key, err := sign.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		l.pull = func(_ string, p *api.LogPage) {
			last := &p.Entries[len(p.Entries)-1]
			e, _ := vlog.DecodeBody(last.Body)
			e.Device = "serverdevice00000000000000"
			body, err := e.Sign(key)
			if err != nil {
				t.Error(err)
				return
			}
			last.Body, last.Sig = body, e.Sig
		}
	}, "never certified"},
	{"bad-signature", func(t *testing.T, a, b *Vault, l *liar) {
		l.pull = func(_ string, p *api.LogPage) {
			p.Entries[0].Sig = bytes.Clone(p.Entries[0].Sig)
			p.Entries[0].Sig[40] ^= 1
		}
	}, "signature"},
	{"swapped-ciphertexts", func(t *testing.T, a, b *Vault, l *liar) {
		l.pull = func(_ string, p *api.LogPage) {
			p.Entries[0].Payload, p.Entries[1].Payload = p.Entries[1].Payload, p.Entries[0].Payload
		}
	}, "swapped"},
	{"withheld-ciphertext", func(t *testing.T, a, b *Vault, l *liar) {
		l.pull = func(_ string, p *api.LogPage) { p.Entries[0].Payload = nil }
	}, "withheld"},
	{"entry-moved-to-another-vault", func(t *testing.T, a, b *Vault, l *liar) {
		l.pull = func(_ string, p *api.LogPage) {
			e, _ := vlog.DecodeBody(p.Entries[0].Body)
			e.Vault = "othervault0000000000000000"
			p.Entries[0].Body, _ = e.Body()
		}
	}, "moved"},
	{"document-rollback", func(t *testing.T, a, b *Vault, l *liar) {
		old, err := l.Remote.Account(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A newer document (a password change) reaches B, then the
		// server serves the old one again.
		if err := a.ChangePassword(ctx, []byte(syncPassword), []byte("another password!"), kdf.Params{}); err != nil {
			t.Fatal(err)
		}
		mustSync(t, a, l.Remote)
		mustSync(t, b, l.Remote)
		l.account = func(acc *api.Account) { *acc = old }
	}, "rolled it back"},
	{"forged-document", func(t *testing.T, a, b *Vault, l *liar) {
		// A "newer" document the server made itself.
		real, err := l.Remote.Account(ctx)
		if err != nil {
			t.Fatal(err)
		}
		forged := bytes.Replace(real.Document, []byte(`"security_version":1`), []byte(`"security_version":0`), 1)
		forged = bytes.Replace(forged, []byte(`"epoch":1`), []byte(`"epoch":2`), 1)
		l.account = func(acc *api.Account) { acc.Document, acc.Epoch = forged, real.Epoch+1 }
	}, "MAC"},
	{"security-version-downgrade", func(t *testing.T, a, b *Vault, l *liar) {
		// Even a document with a valid MAC (made here with the Master
		// Key, which a server never has) may not lower it.
		acc, _ := l.Remote.Account(ctx)
		doc := *b.acct
		doc.SecurityVersion = 0
		doc.Epoch = acc.Epoch + 1
		forged := b.document(&doc)
		l.account = func(a *api.Account) { a.Document, a.Epoch = forged, doc.Epoch }
	}, "downgrade"},
	{"vault-record-swap", func(t *testing.T, a, b *Vault, l *liar) {
		l.vaults = func(list []api.Vault) {
			list[0].Record = bytes.Replace(list[0].Record, []byte(`"created":`), []byte(`"created":1`), 1)
		}
	}, "different record"},
}

// prepareAttack gives a victim B that has synced, and three new entries
// from A waiting on the remote r.
func prepareAttack(t *testing.T, a, b *Vault, r remote.Remote) {
	t.Helper()
	addLogin(t, a, "One", "1")
	addLogin(t, a, "Two", "2")
	mail, _ := a.Get(ctx, "Mail")
	m := mail.Clone()
	m.Notes = "edited"
	if _, err := a.Update(ctx, mail.ID, mail.Revision, m); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, r)
}

// TestAttacksFolder runs every attack through a lying folder remote.
func TestAttacksFolder(t *testing.T) {
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			a, b, r := syncPair(t)
			prepareAttack(t, a, b, r)
			l := &liar{Remote: r}
			at.arm(t, a, b, l)
			refused(t, b, l, ErrRemoteTampered, at.words)
		})
	}
}

// refused checks that a sync through the liar fails with want, that the
// message names the attack, and that B is as it was.
func refused(t *testing.T, b *Vault, r remote.Remote, want error, words string) {
	t.Helper()
	before := titles(t, b)
	beforeSeq := b.vaults[b.order[0]].seq
	_, err := b.Sync(ctx, r)
	if !errors.Is(err, want) {
		t.Fatalf("sync: got %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), words) {
		t.Fatalf("error %q does not say %q", err, words)
	}
	if got := titles(t, b); !slices.Equal(got, before) || b.vaults[b.order[0]].seq != beforeSeq {
		t.Fatalf("local data changed: %v → %v", before, got)
	}
	if _, err := b.Verify(ctx); err != nil {
		t.Fatalf("victim vault no longer verifies: %v", err)
	}
}

// Prelogin attacks: each is refused before anything is derived or sent.
func TestAttackPrelogin(t *testing.T) {
	cases := []struct {
		name  string
		alter func([]byte) []byte
		words string
	}{
		{"weaker", nil, "weaker"},
		{"resalted", func(h []byte) []byte { h = bytes.Clone(h); h[len(h)-1] ^= 1; return h }, "salts differ"},
		{"unknown-kdf", func(h []byte) []byte { h = bytes.Clone(h); h[0] ^= 0xff; return h }, ""},
		{"above-ceiling", func(h []byte) []byte {
			hd, _ := kdf.ParseHeader(h)
			hd.Params.Argon2Memory = 1 << 31
			hd.Params.InsecureTest = false
			out, _ := hd.MarshalBinary()
			return out
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, b, r := syncPair(t)
			if c.alter == nil {
				// This device raised the parameters and published them;
				// the server then offers the old, weaker ones again.
				old, err := r.Prelogin(ctx, "alice@example.com")
				if err != nil {
					t.Fatal(err)
				}
				p := kdf.TestParams()
				p.PBKDF2Iterations *= 2
				if err := b.ChangePassword(ctx, []byte(syncPassword), []byte(syncPassword), p); err != nil {
					t.Fatal(err)
				}
				mustSync(t, b, r)
				c.alter = func([]byte) []byte { return old }
			}
			l := &liar{Remote: r, prelogin: c.alter}
			err := b.Login(ctx, l, []byte(syncPassword), "", "", "test")
			if !errors.Is(err, ErrPrelogin) || !strings.Contains(err.Error(), c.words) {
				t.Fatalf("login: %v", err)
			}
			if n := l.logins.Load(); n != 0 {
				t.Fatalf("a login was sent (%d) after refused parameters", n)
			}
		})
	}
}

func TestAttackJoinBelowFloor(t *testing.T) {
	// A new device has no cache: the floors alone protect it. The test
	// profile is below them unless explicitly allowed.
	_, _, r := syncPair(t)
	l := &liar{Remote: r}
	opts := testOptions()
	opts.AllowInsecureKDF = false
	_, err := Join(ctx, t.TempDir()+"/v.db", l, JoinRequest{Target: RemoteTarget{Email: "alice@example.com"}, Password: []byte(syncPassword), SecretKey: "S1-AAAA"}, opts)
	if err == nil || l.logins.Load() != 0 {
		t.Fatalf("join: %v, logins %d", err, l.logins.Load())
	}
}

func TestStolenRemoteWithoutSecretKey(t *testing.T) {
	// A copy of everything the remote holds plus the right password, but
	// not the Secret Key, opens nothing and makes no valid login key.
	a, _, r := syncPair(t)
	acc, err := r.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hd, _ := kdf.ParseHeader(acc.KDF)
	keys, err := kdf.DeriveWith([]byte(syncPassword), nil, hd.Params, hd.Salts, true)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Wipe()
	var doc accountRecord
	if err := decodeRecord(acc.Document, &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := openWrap(keys.KEK(), doc.Account, doc.PasswordWrap); err == nil {
		t.Fatal("the password alone opened the Master Key")
	}
	withSK, err := kdf.DeriveWith([]byte(syncPassword), a.acct.SecretKey, hd.Params, hd.Salts, true)
	if err != nil {
		t.Fatal(err)
	}
	defer withSK.Wipe()
	if bytes.Equal(keys.LoginKey(), withSK.LoginKey()) {
		t.Fatal("the login key does not depend on the Secret Key")
	}
	if _, err := openWrap(withSK.KEK(), doc.Account, doc.PasswordWrap); err != nil {
		t.Fatalf("password and Secret Key do not open it: %v", err)
	}
}

func openWrap(kek []byte, acct string, wrap []byte) ([]byte, error) {
	return envelope.Open(kek, envelope.Context{Purpose: purposePasswordWrap, Account: acct}, wrap)
}
