package org

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/safehold/safehold/internal/pke"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/sign"
)

// Signer signs statements: By is ByRoot (Key is the root key) or an account
// id (Key is that account's identity key).
type Signer struct {
	By  string
	Key *sign.PrivateKey
}

// Next fills st's V, Org, Seq, Prev and By from s and signer (Time if
// zero from now), signs it, checks it against s as Apply would (without
// changing s), and returns the entry. The caller Applies it once the
// remote accepted it.
func (s *State) Next(signer Signer, st Statement, nowMillis int64) (Entry, error) {
	e, _, err := s.next(signer, st, nowMillis)
	return e, err
}

// next is Next that also returns the state after the entry.
func (s *State) next(signer Signer, st Statement, nowMillis int64) (Entry, *State, error) {
	if signer.Key == nil {
		return Entry{}, nil, errors.New("org: no signing key")
	}
	st.V, st.Org, st.Seq, st.By = Version, s.Org, s.Seq+1, signer.By
	st.Prev = append([]byte(nil), s.Head[:]...)
	if st.Time == 0 {
		st.Time = nowMillis
	}
	body, err := Encode(&st)
	if err != nil {
		return Entry{}, nil, err
	}
	sig, err := signer.Key.Sign(SignContext, body)
	if err != nil {
		return Entry{}, nil, fmt.Errorf("org: signing statement %d: %w", st.Seq, err)
	}
	e := Entry{Body: body, Sig: sig}
	w := s.shallow()
	if err := w.step(e, true); err != nil {
		return Entry{}, nil, err
	}
	return e, w, nil
}

// NewOrg makes a new organisation: a root key, the genesis statement
// (name, root public key, the root private key sealed to the creator's
// encryption key) and the creator's owner certificate signed by the root.
// It returns the two entries, the state after them and the root key (the
// caller wipes it). The e-mail address is lower-cased.
func NewOrg(rand io.Reader, name, creator, email string, identity *sign.PublicKey, encryption *pke.PublicKey, nowMillis int64) ([]Entry, *State, *sign.PrivateKey, error) {
	root, err := sign.GenerateKey(rand)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("org: root key: %w", err)
	}
	entries, s, err := newOrg(rand, root, name, creator, strings.ToLower(strings.TrimSpace(email)), identity, encryption, nowMillis)
	if err != nil {
		root.Wipe()
		return nil, nil, nil, err
	}
	return entries, s, root, nil
}

func newOrg(rand io.Reader, root *sign.PrivateKey, name, creator, email string, identity *sign.PublicKey, encryption *pke.PublicKey, nowMillis int64) ([]Entry, *State, error) {
	id := ID(root.Public())
	raw := root.Bytes()
	defer raw.Wipe()
	sealed, err := pke.Seal(rand, encryption, rootContext(id), raw)
	if err != nil {
		return nil, nil, fmt.Errorf("org: sealing the root key: %w", err)
	}
	signer := Signer{By: ByRoot, Key: root}
	s := newState(id, root.Public())
	g, s, err := s.next(signer, Statement{
		Type: TypeGenesis, Time: nowMillis, Name: name, Root: root.Public().Bytes(), RootSealed: sealed, Account: creator,
	}, nowMillis)
	if err != nil {
		return nil, nil, err
	}
	m, s, err := s.next(signer, Statement{
		Type: TypeMember, Time: nowMillis, Account: creator, Email: email,
		Identity: identity.Bytes(), Encryption: encryption.Bytes(), Role: Owner,
	}, nowMillis)
	if err != nil {
		return nil, nil, err
	}
	return []Entry{g, m}, s, nil
}

// OpenRoot opens Genesis.RootSealed with the creator's encryption key and
// checks it is the private half of s.Root.
func (s *State) OpenRoot(k *pke.PrivateKey) (*sign.PrivateKey, error) {
	if s.Root == nil || len(s.RootSealed) == 0 {
		return nil, errors.New("org: the organisation has no genesis")
	}
	raw, err := pke.Open(k, rootContext(s.Org), s.RootSealed)
	if err != nil {
		return nil, fmt.Errorf("org: the sealed root key does not open: %w", err)
	}
	defer secret.Wipe(raw)
	root, err := sign.ParsePrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("org: the sealed root key: %w", err)
	}
	if !root.Public().Equal(s.Root) {
		root.Wipe()
		return nil, errors.New("org: the sealed root key is not the organisation's root key")
	}
	return root, nil
}
