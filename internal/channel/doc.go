// Package channel is the encrypted, framed transport two Safehold devices
// use: a Noise XX handshake with ML-KEM-768 mixed in and an identity proof
// from each device (Client, Server), and a frame layer that carries
// messages with two layers of authenticated encryption, counters that
// refuse replays, and rekeying (New, Conn). This comment is the
// specification of version 1 ("safehold channel v1"); docs/design.md
// carries the same text.
//
// All integers are big-endian. || is concatenation. HKDF is RFC 5869 with
// SHA-256 throughout.
//
// # Handshake
//
// The protocol is Noise_XX_25519_ChaChaPoly_SHA256 (flynn/noise v1.1.0).
// SHA-256 is used rather than BLAKE2b so that one well-studied hash runs
// from the Noise transcript to the final HKDF and the frame subkeys, and so
// that the channel binding is 32 bytes. The Noise prologue is
//
//	u32(19) || "safehold channel v1" || u32(len(p)) || p
//
// where p is HandshakeConfig.Prologue (at most 64 KiB; both ends must pass
// the same bytes). Each Noise message goes on the wire as u16(len) || msg.
// All three messages have a fixed size and a different announced length is
// refused before the body is read:
//
//	message 1, initiator -> responder, 1216 bytes:
//	    e (32) || ek (1184)
//	  ek is a fresh ML-KEM-768 encapsulation key, the Noise payload. It is
//	  not encrypted (Noise has no key yet) but is hashed into h.
//	message 2, responder -> initiator, 1184 bytes:
//	    e (32) || enc(s) (32+16) || enc(ct) (1088+16)
//	  ct is the ML-KEM-768 ciphertext encapsulated to ek, the Noise
//	  payload, encrypted and hashed into h.
//	message 3, initiator -> responder, 64 bytes:
//	    enc(s) (32+16) || enc(empty payload) (16)
//
// The Noise static keys s are fresh for every connection and carry no
// identity: identity is proven by the proofs below. (XX is kept so that a
// later version can pin device Noise keys without changing the message
// flow.) Ephemeral X25519 keys, static keys and the ML-KEM seed come from
// HandshakeConfig.Rand, by default an internal/random.Source (crypto/rand
// mixed with an independent DRBG); ML-KEM encapsulation draws from
// crypto/rand, as crypto/mlkem takes no reader.
//
// When the three messages are done, both ends hold Noise's split keys
// k_i2r and k_r2i, the handshake hash h and the ML-KEM shared secret ss,
// and derive
//
//	okm = HKDF-SHA256(ikm  = k_i2r || k_r2i || ss,
//	                  salt = h, info = "safehold channel v1", L = 64)
//	initiator->responder key = okm[0:32]
//	responder->initiator key = okm[32:64]
//
// so the session keys are safe if either X25519 or ML-KEM-768 holds. The
// ML-KEM decapsulation key, ss, the Noise keys and every copy are then
// wiped or dropped (see Erasure). h is the channel binding (Conn.Binding).
//
// Identity proofs travel as the first frame of each direction (type proof,
// counter 0), encrypted under the session keys:
//
//	message 4, initiator -> responder: proof frame carrying Prove(h)
//	  The responder calls Verify(proof, h). If it fails, the responder
//	  sends a close frame with reason 0x01 (refused), closes, and Server
//	  returns ErrUntrusted; Client returns ErrRefused.
//	message 5, responder -> initiator: proof frame carrying Prove(h)
//	  The initiator refuses a proof equal to its own (reflection), then
//	  calls Verify(proof, h). If it fails it sends a close frame with
//	  reason 0x01 and Client returns ErrUntrusted; the responder's first
//	  ReadMessage returns ErrRefused.
//
// A listening device therefore reveals its identity only to a peer it has
// verified. Data frames start at counter 1. Before its peer's proof, an
// end accepts only a proof or a close frame; anything else is refused
// before its body is read. A proof is 1..MaxProof (64 KiB) bytes. Both ends
// pass the same h to Prove, so Prove should sign a statement that names its
// role and Verify should expect the other role (and refuse this device's
// own key).
//
// The context passed to Client and Server bounds the handshake, proofs
// included: its deadline is set on the net.Conn, and cancelling it closes
// the net.Conn. On any handshake error the net.Conn is closed.
//
// # Frames
//
// After the handshake, or from the start for New (whose keys the caller
// agreed on, e.g. internal/link after CPace), every message is one frame:
//
//	offset  size  field
//	0       4     length: u32, the size n of the ciphertext
//	4       1     type: 0x01 data, 0x02 rekey, 0x03 close, 0x04 proof
//	5       8     counter: u64
//	13      n     ciphertext = ChaCha20-Poly1305(AES-256-GCM(payload))
//
// Allowed lengths, checked on the header before anything else is read or
// allocated (Overhead = 32, the two tags):
//
//	data   32 <= n <= MaxMessage+32   payload: one message (may be empty)
//	rekey  n == 32                    payload: empty
//	close  n == 33                    payload: reason, 0x00 normal, 0x01 refused
//	proof  33 <= n <= 65536+32        payload: an identity proof
//
// Any other type, including 0x00, is refused. An oversized data length
// reports ErrTooLarge (both ends must use the same MaxMessage); every other
// malformed header reports ErrTampered.
//
// Each direction has a 32-byte direction key K, from which
//
//	aesKey    = HKDF-Expand(K, "safehold channel v1 aes-256-gcm", 32)
//	chachaKey = HKDF-Expand(K, "safehold channel v1 chacha20-poly1305", 32)
//	mask      = HKDF-Expand(K, "safehold channel v1 nonce", 12)
//	nonce     = mask XOR (0x00000000 || u64(counter))      both layers
//	ad        = label || type || u64(counter)              10 bytes, both layers
//	inner     = AES-256-GCM.Seal(aesKey, nonce, payload, ad)
//	ciphertext = ChaCha20-Poly1305.Seal(chachaKey, nonce, inner, ad)
//
// label is the direction label: 0x01 for the direction whose key is the
// smaller of the two as a big-endian number, 0x02 for the other, so both
// ends agree without roles. Keys (nonce, counter) never repeat: counters
// only increase under a key, and each key is used in one direction only
// (New refuses equal or all-zero keys). A frame opens only if both layers
// authenticate; a failure does not say which layer failed.
//
// # Counters and replay
//
// Counters start at 0 in each direction and increase by one per frame of
// any type; they continue across rekeys. The stream is reliable and ordered
// (TCP), so an honest sender's next frame always carries exactly the next
// counter, and the replay window is that one value: the receiver first
// authenticates a frame under the counter in its header (a changed counter
// fails authentication: ErrTampered), then refuses a lower counter as
// ErrReplay and a higher one as ErrOutOfOrder (a frame was dropped or
// reordered). A frame replayed from before the last rekey no longer
// authenticates and is reported as ErrTampered. Any refusal is final: the
// Conn closes the network connection and every later call returns the same
// error. A stream that ends without a close frame, at a frame boundary or
// inside one, reports ErrTruncated (wrapping io.ErrUnexpectedEOF), never
// io.EOF. No frame carries a counter above 2^63-1; a sender stops there
// with ErrExhausted (a billion frames a second would take 292 years).
//
// # Rekeying
//
// Before sending a data frame, a sender whose current key has carried
// RekeyMessages frames (default 2^20) or is RekeyInterval old (default two
// minutes) sends a rekey frame under the old key and then replaces it:
//
//	K' = HKDF-Expand(K, "safehold channel v1 rekey", 32)
//
// The receiver replaces its key the same way after authenticating the
// rekey frame. The old key is wiped; HKDF is one-way, so K' does not reveal
// K. The interval is checked when the sender next writes: an idle
// connection keeps its key until then. A receiver cannot enforce the
// interval (a reader may simply not read for a while) but enforces the
// count: more than 4 × RekeyMessages frames under one key is refused with
// ErrRekeyOverdue. Both ends must use the same Options.
//
// # Closing
//
// Close sends a close frame with reason 0x00 (if no write is in progress;
// it waits at most one second for the transport to take it), closes the
// net.Conn and wipes the keys. The peer's ReadMessage then returns io.EOF
// for ever. A close frame with reason 0x01 makes ReadMessage return
// ErrRefused. Other reasons are refused (ErrProtocol).
//
// # Concurrency and memory
//
// WriteMessage is safe for concurrent use; ReadMessage is called from one
// goroutine. Writers reuse one buffer per connection, which holds only
// ciphertext between calls (payloads are sealed into it, never copied in
// clear). Each ReadMessage allocates one buffer of the frame's size, reads
// the ciphertext into it, decrypts in place and returns the payload: the
// caller owns it and wipes it if it is secret.
//
// # Erasure
//
// The handshake wipes every buffer this package owns that held a secret:
// the X25519 ephemeral and static private keys inside Noise's state, the
// ML-KEM seed and shared secret, the Noise split keys, the HKDF input and
// output, and the direction keys after the Conn copied them. Rekeying and
// Close wipe the direction keys and nonce masks. Objects whose secret
// fields are unexported (Noise's HandshakeState with its chaining key,
// Noise's CipherStates, the ML-KEM DecapsulationKey768, the AES key
// schedule and ChaCha20 key inside the AEADs) cannot be wiped from outside;
// they are dropped, and tests check that the garbage collector frees them.
// Go does not promise more: freed memory is zeroed when reused, not when
// freed, and the runtime and standard library may leave copies (moved
// stacks, X25519 and HKDF temporaries). The experimental runtime/secret
// package (GOEXPERIMENT=runtimesecret) would close that gap; it is not
// used while it is experimental.
//
// # Threat model
//
// A network attacker who can read, change, drop, inject, replay, reorder,
// delay and cut traffic
//
// can:
//   - see that two endpoints speak safehold channel v1 (the handshake sizes
//     are fixed), their addresses, the timing of every frame and the size
//     of every message (lengths are in clear; there is no padding);
//   - stop a connection at any time (by cutting it or changing a byte);
//     the ends see ErrTruncated or ErrTampered, never a silent loss;
//   - run a handshake with any endpoint. As initiator it learns nothing of
//     the responder's identity, because the responder proves itself only
//     after verifying the initiator. As responder to a device that dials
//     it, it learns that device's proof, which names the session's h and
//     so cannot be replayed into another session.
//
// cannot:
//   - read any message: payloads are under AES-256-GCM and
//     ChaCha20-Poly1305 with keys from both X25519 and ML-KEM-768, so
//     recording traffic now to decrypt it with a quantum computer later
//     fails as long as ML-KEM-768 holds;
//   - change, inject, replay, reorder or drop a frame, or turn a cut into
//     an orderly end, without the receiver refusing it;
//   - relay identity proofs between two handshakes (a man in the middle):
//     each proof is over its own session's h, and h covers the prologue,
//     both ephemeral keys, the ML-KEM key and ciphertext;
//   - downgrade anything: there is one suite and no negotiation, and the
//     prologue binds the version;
//   - make a receiver allocate more than MaxMessage+32 bytes for a frame,
//     MaxProof+32 for a proof, or more than the fixed handshake sizes;
//   - decrypt a recorded session later with stolen long-term secrets (the
//     device identity keys behind Prove and any Noise static keys): the
//     session keys also need the ephemeral X25519 and ML-KEM secrets,
//     which are erased when the handshake ends (forward secrecy). After a
//     rekey, the current keys do not reveal earlier frames either.
//
// A peer that passed Verify is trusted with the messages it sends; this
// package bounds their size and refuses a peer that never rekeys, and
// nothing more.
package channel
