package random

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"golang.org/x/crypto/chacha20"
)

const (
	// urandomPath is read directly (not through crypto/rand, which uses the
	// getrandom system call or the vDSO) so the DRBG seed takes a different
	// path to the kernel than the system source.
	urandomPath = "/dev/urandom"

	// urandomSeedSize is how many bytes each (re)seed reads from urandomPath.
	urandomSeedSize = 64

	// jitterSamples is how many timing samples each (re)seed takes.
	jitterSamples = 256

	// seedInfo is the HKDF info string that turns seed material into a DRBG
	// key.
	seedInfo = "safehold/random/v1/drbg-seed"

	// defaultReseedReads and defaultReseedAge bound how long the DRBG runs
	// on one seed: whichever comes first.
	defaultReseedReads = 1 << 16
	defaultReseedAge   = 10 * time.Minute

	// drbgChunk bounds the keystream taken under one key, far below the
	// 256 GiB where ChaCha20's 32-bit block counter would wrap.
	drbgChunk = 1 << 20
)

// drbg is a ChaCha20 generator with fast key erasure: every Read keys
// ChaCha20 (zero nonce) with the current key, takes the first 32 bytes of
// keystream as the next key and the following bytes as output, then
// forgets the old key. A later compromise of the state does not reveal
// earlier output. It is not safe for concurrent use; Source serialises it.
type drbg struct {
	key [chacha20.KeySize]byte
}

func newDRBG(key []byte) *drbg {
	d := &drbg{}
	copy(d.key[:], key)
	return d
}

func (d *drbg) Read(p []byte) (int, error) {
	var nonce [chacha20.NonceSize]byte
	for done := 0; done < len(p); {
		n := min(len(p)-done, drbgChunk)
		c, err := chacha20.NewUnauthenticatedCipher(d.key[:], nonce[:])
		if err != nil {
			return done, fmt.Errorf("random: drbg: %w", err)
		}
		var next [chacha20.KeySize]byte
		c.XORKeyStream(next[:], next[:])
		out := p[done : done+n]
		clear(out)
		c.XORKeyStream(out, out)
		d.key = next
		clear(next[:])
		done += n
	}
	return len(p), nil
}

// reseedingDRBG is the production userspace source: a drbg that rekeys
// itself from fresh seed material every maxReads reads or maxAge, whichever
// comes first. Reseeding keeps the current key as the HKDF salt, so a reseed
// never loses entropy already gathered.
type reseedingDRBG struct {
	d        drbg
	now      func() time.Time
	seed     func() ([]byte, error)
	reads    uint64
	maxReads uint64
	seededAt time.Time
	maxAge   time.Duration
	reseeds  uint64 // for tests
}

func newReseedingDRBG(now func() time.Time, seed func() ([]byte, error)) (*reseedingDRBG, error) {
	r := &reseedingDRBG{now: now, seed: seed, maxReads: defaultReseedReads, maxAge: defaultReseedAge}
	if err := r.reseed(nil); err != nil {
		return nil, err
	}
	return r, nil
}

// reseed sets key = HKDF-SHA512(ikm = material, salt = oldKey, info =
// seedInfo), 32 bytes. The first seed has no old key (empty salt).
func (r *reseedingDRBG) reseed(oldKey []byte) error {
	m, err := r.seed()
	if err != nil {
		return err
	}
	defer clear(m)
	k, err := hkdf.Key(sha512.New, m, oldKey, seedInfo, chacha20.KeySize)
	if err != nil {
		return fmt.Errorf("random: seeding: %w", err)
	}
	copy(r.d.key[:], k)
	clear(k)
	r.reads = 0
	r.seededAt = r.now()
	r.reseeds++
	return nil
}

func (r *reseedingDRBG) Read(p []byte) (int, error) {
	if r.reads >= r.maxReads || r.now().Sub(r.seededAt) >= r.maxAge {
		if err := r.reseed(r.d.key[:]); err != nil {
			return 0, err
		}
	}
	r.reads++
	return r.d.Read(p)
}

// seedMaterial gathers the DRBG's seed: 64 bytes read from /dev/urandom
// through its own file handle, then timing jitter, then process facts. Only
// the first part carries dependable entropy; jitter and facts make the seed
// differ from anything crypto/rand produced even if the kernel generator
// were subverted on one path only.
func seedMaterial() ([]byte, error) {
	f, err := os.Open(urandomPath)
	if err != nil {
		return nil, fmt.Errorf("random: opening %s: %w", urandomPath, err)
	}
	defer f.Close()
	m := make([]byte, urandomSeedSize, urandomSeedSize+jitterSamples*16+256)
	if _, err := io.ReadFull(f, m); err != nil {
		clear(m)
		return nil, fmt.Errorf("%w: %w", errShortSeed, err)
	}
	m = appendJitter(m)
	m = appendFacts(m)
	return m, nil
}

// appendJitter appends jitterSamples pairs (wall-clock nanoseconds,
// monotonic duration of a short hashing loop). The durations vary with cache,
// scheduler and frequency state.
func appendJitter(m []byte) []byte {
	var buf [64]byte
	for i := range jitterSamples {
		t0 := time.Now()
		for j := 0; j < 1+i%7; j++ {
			s := sha256.Sum256(buf[:])
			copy(buf[i%32:], s[:])
		}
		d := time.Since(t0)
		m = binary.BigEndian.AppendUint64(m, uint64(t0.UnixNano()))
		m = binary.BigEndian.AppendUint64(m, uint64(d))
	}
	return m
}

// appendFacts appends facts about this process that differ between runs.
func appendFacts(m []byte) []byte {
	m = binary.BigEndian.AppendUint64(m, uint64(os.Getpid()))
	m = binary.BigEndian.AppendUint64(m, uint64(os.Getppid()))
	m = binary.BigEndian.AppendUint64(m, uint64(os.Getuid()))
	m = binary.BigEndian.AppendUint64(m, uint64(time.Now().UnixNano()))
	m = binary.BigEndian.AppendUint64(m, uint64(runtime.NumGoroutine()))
	if h, err := os.Hostname(); err == nil {
		m = append(m, h...)
	}
	m = fmt.Appendf(m, "%p", new([16]byte)) // heap address: differs under ASLR
	return m
}
