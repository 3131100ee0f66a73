// Package peerauth proves and checks which device of an account is at
// each end of a peer channel (docs/design.md §16.2): inside the Noise
// handshake of internal/channel, each side signs the handshake hash with
// its certified device key, and each side accepts only a device the
// account trusts (certified by the identity key and not revoked).
package peerauth

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/safehold/safehold/internal/channel"
	"github.com/safehold/safehold/internal/peer"
	"github.com/safehold/safehold/internal/sign"
)

// The signing context and the roles bound into each proof.
const (
	Context    = "safehold/v1 peer-proof"
	RoleClient = "client"
	RoleServer = "server"
	maxProof   = 16 << 10
)

// ErrUntrusted: the other end is not a trusted device of this account.
var ErrUntrusted = errors.New("the peer is not a trusted device of this account")

// Signer signs Message(role, binding) under Context with this device's
// key and says which device it is.
type Signer func(role string, binding []byte) (device string, sig []byte, err error)

// Trusted returns the account's trusted devices (id to key) when a peer's
// proof arrives: revocations take effect on the next connection.
type Trusted func() (map[string]*sign.PublicKey, error)

type proof struct {
	Device string `json:"device"`
	Sig    []byte `json:"sig"`
}

// Message is what a role's proof signs: the role and the handshake hash.
func Message(role string, binding []byte) []byte {
	return append([]byte(role+"\x00"), binding...)
}

// Config is the handshake configuration of one end: role is this end's
// (RoleClient or RoleServer), selfID this device's id, self proves who
// this device is, trusted decides whom to accept; seen, if set, learns
// the accepted peer's id. A peer that claims selfID is refused whatever
// the trusted list says: it holds a copy of this device's key.
func Config(role, selfID string, self Signer, trusted Trusted, seen func(device string)) channel.HandshakeConfig {
	other := RoleServer
	if role == RoleServer {
		other = RoleClient
	}
	return channel.HandshakeConfig{
		Prologue: []byte("safehold peer v1"),
		Options:  channel.Options{MaxMessage: peer.MaxMessage},
		Prove: func(binding []byte) ([]byte, error) {
			id, sig, err := self(role, binding)
			if err != nil {
				return nil, fmt.Errorf("prove this device's identity: %w", err)
			}
			if id != selfID {
				return nil, fmt.Errorf("prove this device's identity: the key belongs to device %s, not %s", id, selfID)
			}
			return json.Marshal(proof{Device: id, Sig: sig})
		},
		Verify: func(raw, binding []byte) error {
			if len(raw) > maxProof {
				return fmt.Errorf("%w: an identity proof of %d bytes", ErrUntrusted, len(raw))
			}
			var p proof
			if err := json.Unmarshal(raw, &p); err != nil || p.Device == "" {
				return fmt.Errorf("%w: a malformed identity proof", ErrUntrusted)
			}
			if p.Device == selfID {
				return fmt.Errorf("%w: the peer claims to be this device (a copy of its key?)", ErrUntrusted)
			}
			keys, err := trusted()
			if err != nil {
				return err
			}
			pub := keys[p.Device]
			if pub == nil {
				return fmt.Errorf("%w: device %.40q is not one of the account's trusted devices (revoked, or another account)", ErrUntrusted, p.Device)
			}
			if err := pub.Verify(Context, Message(other, binding), p.Sig); err != nil {
				return fmt.Errorf("%w: device %s's proof does not verify", ErrUntrusted, p.Device)
			}
			if seen != nil {
				seen(p.Device)
			}
			return nil
		},
	}
}
