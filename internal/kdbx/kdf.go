package kdbx

import (
	"crypto/aes"
	"crypto/sha256"
	"encoding/binary"

	argon2d "github.com/tobischo/argon2"
	"golang.org/x/crypto/argon2"
)

// kdfParams are the key derivation settings of a file.
type kdfParams struct {
	uuid [16]byte
	// AES-KDF: seed is the AES key, rounds the number of encryptions.
	rounds uint64
	// Argon2: seed is the salt.
	seed        []byte
	memory      uint64 // bytes
	iterations  uint64
	parallelism uint32
	version     uint32
}

func (k *kdfParams) isAES() bool { return k.uuid == kdfAES || k.uuid == kdfAESKDBX4 }

func (k *kdfParams) name() string {
	switch k.uuid {
	case kdfArgon2d:
		return "Argon2d"
	case kdfArgon2id:
		return "Argon2id"
	}
	return "AES-KDF"
}

func kdfFromDict(d map[string]vdValue) (kdfParams, error) {
	var k kdfParams
	u, ok := d["$UUID"]
	if !ok || u.typ != vdBytes || len(u.data) != 16 {
		return k, corrupt("KDF parameters have no valid $UUID")
	}
	copy(k.uuid[:], u.data)
	get := func(name string, typ byte) ([]byte, bool) {
		v, ok := d[name]
		if !ok || v.typ != typ {
			return nil, false
		}
		return v.data, true
	}
	switch {
	case k.isAES():
		r, ok1 := get("R", vdUint64)
		s, ok2 := get("S", vdBytes)
		if !ok1 || !ok2 {
			return k, corrupt("AES-KDF parameters lack rounds (R) or seed (S)")
		}
		k.rounds, k.seed = binary.LittleEndian.Uint64(r), s
	case k.uuid == kdfArgon2d || k.uuid == kdfArgon2id:
		s, ok1 := get("S", vdBytes)
		p, ok2 := get("P", vdUint32)
		m, ok3 := get("M", vdUint64)
		i, ok4 := get("I", vdUint64)
		v, ok5 := get("V", vdUint32)
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
			return k, corrupt("Argon2 parameters lack one of S, P, M, I, V")
		}
		k.seed = s
		k.parallelism = binary.LittleEndian.Uint32(p)
		k.memory = binary.LittleEndian.Uint64(m)
		k.iterations = binary.LittleEndian.Uint64(i)
		k.version = binary.LittleEndian.Uint32(v)
		for _, name := range []string{"K", "A"} {
			if b, ok := d[name]; ok && len(b.data) > 0 {
				return k, unsupported("Argon2 with a secret key or associated data (parameter %s)", name)
			}
		}
	default:
		return k, unsupported("key derivation function %x (known: AES-KDF, Argon2d, Argon2id)", k.uuid)
	}
	return k, nil
}

// workLimits bound the KDF work a file may ask for. Read uses
// defaultLimits; fuzzing uses far smaller ones so that a mutated header
// cannot stall it.
type workLimits struct {
	aesRounds, argonMemory, argonIterations, argonWork uint64
}

var defaultLimits = workLimits{MaxAESRounds, MaxArgon2Memory, MaxArgon2Iterations, MaxArgon2Work}

// check bounds the work factors before any work is done.
func (k *kdfParams) check() error { return k.checkWithin(defaultLimits) }

func (k *kdfParams) checkWithin(l workLimits) error {
	if k.isAES() {
		if len(k.seed) != 32 {
			return corrupt("AES-KDF seed is %d bytes, want 32", len(k.seed))
		}
		if k.rounds > l.aesRounds {
			return tooLarge("AES-KDF asks for %d rounds, more than the %d allowed", k.rounds, l.aesRounds)
		}
		return nil
	}
	switch {
	case k.version != 0x13:
		return unsupported("Argon2 version %#x (known: 0x13); open and save the file in KeePassXC to upgrade", k.version)
	case len(k.seed) < 8 || len(k.seed) > 1024:
		return corrupt("Argon2 salt is %d bytes, want 8 to 1024", len(k.seed))
	case k.parallelism < 1 || k.parallelism > MaxArgon2Threads:
		return tooLarge("Argon2 parallelism %d is outside 1 to %d", k.parallelism, MaxArgon2Threads)
	case k.memory > l.argonMemory:
		return tooLarge("Argon2 asks for %d bytes of memory, more than the %d allowed", k.memory, l.argonMemory)
	case k.memory < MinArgon2Memory || k.memory < 8*1024*uint64(k.parallelism) || k.memory%1024 != 0:
		return corrupt("Argon2 memory %d bytes is below 8 KiB per lane or not whole KiB", k.memory)
	case k.iterations < 1 || k.iterations > l.argonIterations:
		return tooLarge("Argon2 iterations %d are outside 1 to %d", k.iterations, l.argonIterations)
	case k.memory*k.iterations > l.argonWork:
		return tooLarge("Argon2 work (memory × iterations) is above %d bytes", l.argonWork)
	}
	return nil
}

// transform runs the KDF over the composite key. Parameters must have
// passed check.
func (k *kdfParams) transform(composite []byte) []byte {
	if k.isAES() {
		return aesKDF(composite, k.seed, k.rounds)
	}
	mem := uint32(k.memory / 1024)
	it := uint32(k.iterations)
	p := uint8(k.parallelism)
	if k.uuid == kdfArgon2d {
		return argon2d.DKey(composite, k.seed, it, mem, p, 32)
	}
	return argon2.IDKey(composite, k.seed, it, mem, p, 32)
}

// aesKDF encrypts both 16-byte halves of the key rounds times with
// AES-256-ECB under seed, then hashes the result with SHA-256.
func aesKDF(composite, seed []byte, rounds uint64) []byte {
	block, err := aes.NewCipher(seed)
	if err != nil {
		panic("kdbx: AES-KDF seed checked to be 32 bytes: " + err.Error())
	}
	var a, b [16]byte
	copy(a[:], composite[:16])
	copy(b[:], composite[16:32])
	for range rounds {
		block.Encrypt(a[:], a[:])
		block.Encrypt(b[:], b[:])
	}
	h := sha256.New()
	h.Write(a[:])
	h.Write(b[:])
	clear(a[:])
	clear(b[:])
	return h.Sum(nil)
}
