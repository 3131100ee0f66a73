// Package sshagent serves the SSH key items of an unlocked Safehold vault
// over the OpenSSH agent protocol (draft-miller-ssh-agent, as implemented
// by golang.org/x/crypto/ssh/agent), so that ssh, ssh-add, ssh-keygen -Y
// and git use keys that never leave the vault as files.
//
// The agent is read-only and keeps no private key between requests: List
// reads the vault's SSH items and remembers only their public keys, titles
// and revisions; each Sign fetches the item again, parses the private key
// (decrypting it with the item's passphrase when it is encrypted), signs,
// and wipes what it can of the key. Adding and removing keys is refused.
// Lock and Unlock follow the protocol: a locked agent lists no keys and
// signs nothing until it is unlocked with the same passphrase.
//
// Two policies bound the use of a key: confirmation (every signature is
// approved by a person, see Confirmer) and a lifetime, counted, as for
// ssh-add -t, from when the agent loaded the key: the first time it saw the
// key in the vault. An expired key is neither listed nor used again by this
// agent process. Item custom fields can only tighten both: see
// FieldLifetime and FieldConfirm. When several items hold the same key, the
// agent serves it once with the strictest policy of them all (confirmation
// if any item asks for it, the shortest lifetime), and a key is not served
// while one of its items has a policy field that does not parse.
//
// Every signature request reads the vault's list again first, so that a
// client that never asks for the key list still cannot use a key whose
// item was trashed or deleted, or sign under a policy the item no longer
// has.
package sshagent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/sshkey"
	"github.com/safehold/safehold/internal/textsafe"
)

// Item custom fields that set a per-key policy. Names match
// case-insensitively. They can only tighten the command line's policy.
const (
	// FieldLifetime holds a Go duration ("30m", "8h"): the key's lifetime
	// is the shorter of this and the agent's --lifetime.
	FieldLifetime = "ssh-agent-lifetime"
	// FieldConfirm set to "yes" or "true" asks before each use of this
	// key even without --confirm ("no", "false" or empty: no change).
	FieldConfirm = "ssh-agent-confirm"
)

// Bounds.
const (
	// MaxKeys bounds the keys the agent lists. The agent protocol's
	// answer must stay far below its 16 MiB message limit.
	MaxKeys = 1024
	// MaxCommentLen bounds the comment (item title) sent to clients.
	MaxCommentLen = 256
	// vaultTimeout bounds one request to the Safehold agent.
	vaultTimeout = 30 * time.Second
)

// Errors returned to the protocol layer (clients only see a failure
// message) and to the Log function.
var (
	ErrReadOnly    = errors.New("this agent serves the vault's keys read-only: add keys with `safe add ssh --import FILE`, remove them with `safe rm`")
	ErrLocked      = errors.New("the ssh agent is locked: unlock it with `ssh-add -X`")
	ErrNotLocked   = errors.New("the ssh agent is not locked")
	ErrPassphrase  = errors.New("wrong passphrase for the ssh agent lock")
	ErrUnknownKey  = errors.New("no such key in the vault")
	ErrExpired     = errors.New("the key's lifetime in this agent is over")
	ErrDenied      = errors.New("use of the key was not confirmed")
	ErrKeyMismatch = errors.New("the item's private key does not match its public key")
	ErrChanged     = errors.New("the key's item changed or was trashed while signing: try again")
)

// Entry is an SSH key item as a list shows it: no secret.
type Entry struct {
	ID       string
	Title    string
	Revision uint64
}

// Vault is what the agent reads from the vault. Both methods are called
// from several goroutines at once and must be safe for that. List returns
// the SSH key items that are not in the trash, in display order; Get
// returns one item in full, private key included, by its ID. Errors are
// logged (they must not contain key material) and make the request fail.
type Vault interface {
	List(ctx context.Context) ([]Entry, error)
	Get(ctx context.Context, id string) (item.Item, error)
}

// Confirmer asks a person whether a key may be used. Confirm returns true
// only for an explicit yes; a timeout or a missing terminal is a no (with
// an error saying why).
type Confirmer interface {
	Confirm(ctx context.Context, prompt string) (bool, error)
}

// Options are the agent's policy.
type Options struct {
	// Lifetime of every key from when the agent loads it; 0 is no limit.
	Lifetime time.Duration
	// Confirm asks before every use of every key.
	Confirm bool
	// Confirmer asks; it must be set when Confirm is or when an item
	// sets FieldConfirm (without one, such keys are refused).
	Confirmer Confirmer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log reports events: keys loaded, used, refused, expired. Messages
	// carry titles and fingerprints, never key material. nil is silent.
	Log func(msg string)
}

// key is what the agent remembers of one SSH item (in Agent.keys) or of
// one public key (in Agent.byBlob, the policies of its items merged):
// public data only.
type key struct {
	id, title   string
	revision    uint64
	pub         ssh.PublicKey
	blob        []byte
	fingerprint string
	loaded      time.Time
	lifetime    time.Duration // 0: none
	confirm     bool
	bad         error // a policy field does not parse: the key is not served
}

func (k *key) expired(now time.Time) bool {
	return k.lifetime > 0 && !now.Before(k.loaded.Add(k.lifetime))
}

// Agent implements agent.ExtendedAgent on top of a Vault.
type Agent struct {
	ctx  context.Context
	v    Vault
	opts Options

	mu      sync.Mutex
	keys    map[string]*key // by item ID
	byBlob  map[string]*key // the live keys by public blob, policies merged
	loaded  map[string]time.Time
	expired map[string]bool // blobs whose lifetime ended
	lock    []byte          // HMAC of the lock passphrase; nil when unlocked
	lockKey []byte

	askMu sync.Mutex // one confirmation prompt at a time
}

var _ agent.ExtendedAgent = (*Agent)(nil)

// New returns an agent serving the keys of v. ctx bounds every vault
// request (cancel it to stop the agent).
func New(ctx context.Context, v Vault, opts Options) *Agent {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Agent{ctx: ctx, v: v, opts: opts, keys: map[string]*key{}, byBlob: map[string]*key{}, loaded: map[string]time.Time{}, expired: map[string]bool{}}
}

func (a *Agent) logf(format string, args ...any) {
	if a.opts.Log != nil {
		a.opts.Log(fmt.Sprintf(format, args...))
	}
}

// refresh reads the vault's list and brings the key cache up to date,
// fetching items that are new or changed. It returns the live keys in
// vault order, one per public key: the first item that holds it gives the
// ID, title and revision; the policy is the strictest of every item that
// holds it.
func (a *Agent) refresh() ([]*key, error) {
	ctx, cancel := context.WithTimeout(a.ctx, vaultTimeout)
	defer cancel()
	entries, err := a.v.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(entries) > MaxKeys {
		a.logf("the vault has %d SSH keys; serving the first %d", len(entries), MaxKeys)
		entries = entries[:MaxKeys]
	}
	a.mu.Lock()
	stale := make([]Entry, 0)
	for _, e := range entries {
		if k, ok := a.keys[e.ID]; !ok || k.revision != e.Revision {
			stale = append(stale, e)
		}
	}
	a.mu.Unlock()
	fresh := map[string]*key{}
	failed := map[string]bool{}
	for _, e := range stale {
		it, err := a.v.Get(ctx, e.ID)
		var k *key
		if err == nil {
			k, err = publicOf(it)
		}
		if k != nil && err != nil {
			// The key is known but its policy is not: remember it,
			// so that no other item serves the same key unchecked.
			k.bad = err
			err = nil
		}
		if err != nil {
			a.logf("skipping SSH key %q: %v", clean(e.Title), err)
			failed[e.ID] = true
			continue
		}
		if k.bad != nil {
			a.logf("skipping SSH key %q: %v", clean(e.Title), k.bad)
		}
		k.revision = e.Revision
		fresh[e.ID] = k
	}
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	var order []string // blobs in vault order
	merged := map[string]*key{}
	for _, e := range entries {
		if failed[e.ID] {
			delete(a.keys, e.ID)
			continue
		}
		if k, ok := fresh[e.ID]; ok {
			a.keys[e.ID] = k
		}
		k, ok := a.keys[e.ID]
		if !ok {
			continue
		}
		bs := string(k.blob)
		m, ok := merged[bs]
		if !ok {
			c := *k
			m = &c
			if a.opts.Lifetime > 0 && (m.lifetime == 0 || a.opts.Lifetime < m.lifetime) {
				m.lifetime = a.opts.Lifetime
			}
			merged[bs] = m
			order = append(order, bs)
			continue
		}
		// The same key in another item: its policy can only tighten.
		m.confirm = m.confirm || k.confirm
		if k.lifetime > 0 && (m.lifetime == 0 || k.lifetime < m.lifetime) {
			m.lifetime = k.lifetime
		}
		if m.bad == nil {
			m.bad = k.bad
		}
	}
	var out []*key
	a.byBlob = map[string]*key{}
	for _, bs := range order {
		k := merged[bs]
		if k.bad != nil {
			continue
		}
		if _, ok := a.loaded[bs]; !ok {
			a.loaded[bs] = now
			a.logf("loaded SSH key %q (%s)", k.title, k.fingerprint)
		}
		k.loaded = a.loaded[bs]
		if a.expired[bs] {
			continue
		}
		if k.expired(now) {
			a.expired[bs] = true
			a.logf("forgot SSH key %q (%s): its lifetime of %s is over", k.title, k.fingerprint, k.lifetime)
			continue
		}
		a.byBlob[bs] = k
		out = append(out, k)
	}
	// Forget items that left the vault or no longer hold a usable key.
	ids := map[string]bool{}
	for _, e := range entries {
		ids[e.ID] = !failed[e.ID]
	}
	for id := range a.keys {
		if !ids[id] {
			delete(a.keys, id)
		}
	}
	return out, nil
}

// publicOf reads an item's public key and policy fields. The public key
// comes from the item's authorized_keys line, else from its private key.
func publicOf(it item.Item) (*key, error) {
	if it.SSH == nil || (it.SSH.PublicKey == "" && it.SSH.PrivateKey == "") {
		return nil, errors.New("the item holds no SSH key")
	}
	k := &key{id: it.ID, title: clean(it.Title)}
	if line := strings.TrimSpace(it.SSH.PublicKey); line != "" {
		if len(line) > sshkey.MaxKeySize {
			return nil, fmt.Errorf("%w: public key over %d bytes", sshkey.ErrTooLarge, sshkey.MaxKeySize)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		k.pub = pub
	} else {
		signer, wipe, err := parsePrivate(it.SSH)
		if err != nil {
			return nil, err
		}
		k.pub = signer.PublicKey()
		wipe()
	}
	if _, ok := k.pub.(*ssh.Certificate); ok {
		return nil, fmt.Errorf("%w: certificates are not served", sshkey.ErrUnsupported)
	}
	k.blob = k.pub.Marshal()
	k.fingerprint = ssh.FingerprintSHA256(k.pub)
	// A policy field that does not parse makes the key unusable (not
	// unlimited); the key is returned with the error, so that the agent
	// knows which key to refuse.
	for _, f := range it.Fields {
		switch {
		case strings.EqualFold(f.Name, FieldLifetime):
			v := strings.TrimSpace(f.Value)
			if v == "" {
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return k, fmt.Errorf("field %s: %q is not a positive duration like 30m or 8h", FieldLifetime, v)
			}
			if k.lifetime == 0 || d < k.lifetime {
				k.lifetime = d
			}
		case strings.EqualFold(f.Name, FieldConfirm):
			switch strings.ToLower(strings.TrimSpace(f.Value)) {
			case "yes", "true", "on", "1":
				k.confirm = true
			case "", "no", "false", "off", "0":
			default:
				return k, fmt.Errorf("field %s: %q is not yes or no", FieldConfirm, f.Value)
			}
		}
	}
	return k, nil
}

// parsePrivate parses the item's private key, decrypting it with the
// item's passphrase when it is encrypted, and returns a signer and a
// function that wipes what can be wiped of the key.
func parsePrivate(d *item.SSHData) (ssh.Signer, func(), error) {
	if d.PrivateKey == "" {
		return nil, nil, errors.New("the item has no private key")
	}
	if len(d.PrivateKey) > sshkey.MaxKeySize {
		return nil, nil, fmt.Errorf("%w: over %d bytes", sshkey.ErrTooLarge, sshkey.MaxKeySize)
	}
	pemBytes := []byte(d.PrivateKey)
	defer secret.Wipe(pemBytes)
	raw, err := ssh.ParseRawPrivateKey(pemBytes)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if d.Passphrase == "" {
			return nil, nil, sshkey.ErrPassphraseRequired
		}
		pass := []byte(d.Passphrase)
		raw, err = ssh.ParseRawPrivateKeyWithPassphrase(pemBytes, pass)
		secret.Wipe(pass)
		if err != nil && !errors.As(err, new(*ssh.PassphraseMissingError)) {
			// x/crypto/ssh errors describe structure, never key bytes.
			return nil, nil, fmt.Errorf("%w (set the item's ssh.passphrase): %v", sshkey.ErrWrongPassphrase, err)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", sshkey.ErrInvalid, err)
	}
	var k crypto.Signer
	switch r := raw.(type) {
	case ed25519.PrivateKey:
		k = r
	case *ed25519.PrivateKey:
		k = *r
	case *rsa.PrivateKey:
		if bits := r.N.BitLen(); bits > sshkey.MaxRSABits {
			wipeKey(r)
			return nil, nil, fmt.Errorf("%w: rsa key of %d bits, at most %d supported", sshkey.ErrUnsupported, bits, sshkey.MaxRSABits)
		}
		k = r
	case *ecdsa.PrivateKey:
		k = r
	default:
		return nil, nil, fmt.Errorf("%w: %T", sshkey.ErrUnsupported, raw)
	}
	s, err := ssh.NewSignerFromSigner(k)
	if err != nil {
		wipeKey(k)
		return nil, nil, fmt.Errorf("%w: %v", sshkey.ErrInvalid, err)
	}
	return s, func() { wipeKey(k) }, nil
}

// wipeKey clears what can be cleared of a private key. Go's crypto keeps
// some derived values (RSA precomputation, ECDSA internal encodings) that
// cannot be reached; they become garbage with the key.
func wipeKey(k crypto.Signer) {
	switch k := k.(type) {
	case ed25519.PrivateKey:
		secret.Wipe(k)
	case *rsa.PrivateKey:
		k.D.SetInt64(0)
		for _, p := range k.Primes {
			p.SetInt64(0)
		}
		for _, v := range []*big.Int{k.Precomputed.Dp, k.Precomputed.Dq, k.Precomputed.Qinv} {
			if v != nil {
				v.SetInt64(0)
			}
		}
	case *ecdsa.PrivateKey:
		if k.D != nil {
			k.D.SetInt64(0)
		}
	}
}

func clean(s string) string { return textsafe.Truncate(textsafe.Clean(s), MaxCommentLen) }

// locked reports whether a lock passphrase is set.
func (a *Agent) locked() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lock != nil
}

// List returns the live keys, the item title as the comment. A locked
// agent lists none; a locked vault (or any vault error) lists none and logs
// why, so that ssh goes on to its other methods.
func (a *Agent) List() ([]*agent.Key, error) {
	if a.locked() {
		return nil, nil
	}
	keys, err := a.refresh()
	if err != nil {
		a.logf("cannot list the vault's SSH keys: %v", err)
		return nil, nil
	}
	out := make([]*agent.Key, 0, len(keys))
	for _, k := range keys {
		out = append(out, &agent.Key{Format: k.pub.Type(), Blob: k.blob, Comment: k.title})
	}
	return out, nil
}

// Sign signs with the default algorithm for the key's type (ssh-rsa for
// RSA, as the protocol says without flags).
func (a *Agent) Sign(pub ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return a.SignWithFlags(pub, data, 0)
}

// SignWithFlags signs data with the key whose public blob is pub, honouring
// the RSA SHA-2 flags.
func (a *Agent) SignWithFlags(pub ssh.PublicKey, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	if a.locked() {
		return nil, ErrLocked
	}
	blob := pub.Marshal()
	k, err := a.find(blob)
	if err != nil {
		a.logf("refused to sign with %s: %v", ssh.FingerprintSHA256(pub), err)
		return nil, err
	}
	if k.confirm || a.opts.Confirm {
		if err := a.confirm(k); err != nil {
			a.logf("refused to sign with %q (%s): %v", k.title, k.fingerprint, err)
			return nil, err
		}
	}
	sig, err := a.sign(k, data, flags)
	if err != nil {
		a.logf("could not sign with %q (%s): %v", k.title, k.fingerprint, err)
		return nil, err
	}
	a.logf("signed with %q (%s)", k.title, k.fingerprint)
	return sig, nil
}

// find reads the vault's list again and returns the live key with this
// blob. It does so for every signature, not only for unknown keys: the
// cache may hold an item since trashed, or a policy since tightened.
func (a *Agent) find(blob []byte) (*key, error) {
	if _, err := a.refresh(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.expired[string(blob)] {
		return nil, ErrExpired
	}
	k := a.byBlob[string(blob)]
	if k == nil {
		return nil, ErrUnknownKey
	}
	if k.expired(a.opts.Now()) {
		a.expired[string(blob)] = true
		return nil, ErrExpired
	}
	return k, nil
}

func (a *Agent) confirm(k *key) error {
	if a.opts.Confirmer == nil {
		return fmt.Errorf("%w: no way to ask (no terminal)", ErrDenied)
	}
	a.askMu.Lock()
	defer a.askMu.Unlock()
	ok, err := a.opts.Confirmer.Confirm(a.ctx, fmt.Sprintf("Allow use of SSH key %q (%s)? [y/N] ", k.title, k.fingerprint))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDenied, err)
	}
	if !ok {
		return ErrDenied
	}
	// The key may have expired while the question was open.
	if k.expired(a.opts.Now()) {
		return ErrExpired
	}
	return nil
}

func (a *Agent) sign(k *key, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	ctx, cancel := context.WithTimeout(a.ctx, vaultTimeout)
	defer cancel()
	it, err := a.v.Get(ctx, k.id)
	if err != nil {
		return nil, err
	}
	// The policy was checked against revision k.revision of a live item:
	// sign only with that.
	if it.ID != k.id || it.Revision != k.revision || it.Trashed != nil {
		return nil, ErrChanged
	}
	if it.SSH == nil {
		return nil, errors.New("the item no longer holds an SSH key")
	}
	signer, wipe, err := parsePrivate(it.SSH)
	if err != nil {
		return nil, err
	}
	defer wipe()
	if !bytes.Equal(signer.PublicKey().Marshal(), k.blob) {
		return nil, ErrKeyMismatch
	}
	algo := ""
	if k.pub.Type() == ssh.KeyAlgoRSA {
		switch {
		case flags&agent.SignatureFlagRsaSha512 != 0:
			algo = ssh.KeyAlgoRSASHA512
		case flags&agent.SignatureFlagRsaSha256 != 0:
			algo = ssh.KeyAlgoRSASHA256
		default:
			algo = ssh.KeyAlgoRSA
		}
	}
	if algo == "" {
		return signer.Sign(rand.Reader, data)
	}
	as, ok := signer.(ssh.AlgorithmSigner)
	if !ok {
		return nil, fmt.Errorf("%w: cannot choose the rsa signature algorithm", sshkey.ErrUnsupported)
	}
	return as.SignWithAlgorithm(rand.Reader, data, algo)
}

// Signers is not offered: the agent never hands out key material.
func (a *Agent) Signers() ([]ssh.Signer, error) { return nil, ErrReadOnly }

// Add is refused: the agent serves the vault's keys only.
func (a *Agent) Add(agent.AddedKey) error {
	a.logf("refused a request to add a key: %v", ErrReadOnly)
	return ErrReadOnly
}

// Remove is refused.
func (a *Agent) Remove(ssh.PublicKey) error {
	a.logf("refused a request to remove a key: %v", ErrReadOnly)
	return ErrReadOnly
}

// RemoveAll is refused.
func (a *Agent) RemoveAll() error {
	a.logf("refused a request to remove all keys: %v", ErrReadOnly)
	return ErrReadOnly
}

// Lock locks the agent with a passphrase (ssh-add -x). Only an HMAC of the
// passphrase under a random key is kept.
func (a *Agent) Lock(passphrase []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lock != nil {
		return ErrLocked
	}
	a.lockKey = make([]byte, 32)
	if _, err := rand.Read(a.lockKey); err != nil {
		return err
	}
	a.lock = lockMAC(a.lockKey, passphrase)
	a.logf("locked by a client")
	return nil
}

// Unlock unlocks the agent if passphrase is the one it was locked with
// (ssh-add -X).
func (a *Agent) Unlock(passphrase []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lock == nil {
		return ErrNotLocked
	}
	if !hmac.Equal(a.lock, lockMAC(a.lockKey, passphrase)) {
		a.logf("refused to unlock: wrong passphrase")
		return ErrPassphrase
	}
	secret.Wipe(a.lockKey)
	a.lock, a.lockKey = nil, nil
	a.logf("unlocked by a client")
	return nil
}

func lockMAC(k, passphrase []byte) []byte {
	m := hmac.New(sha256.New, k)
	m.Write(passphrase)
	return m.Sum(nil)
}

// Extension answers no extension (SSH_AGENT_FAILURE, as the protocol asks
// of an agent that does not know the extension).
func (a *Agent) Extension(string, []byte) ([]byte, error) {
	return nil, agent.ErrExtensionUnsupported
}
