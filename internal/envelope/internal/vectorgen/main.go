// Command vectorgen writes the envelope and stream test vectors,
// internal/envelope/testdata/vectors.json.
//
// It implements the format from the specification
// (docs/design.md) directly on the primitives and
// does not import the envelope package, so the vectors check the package
// against the spec rather than against itself. Randomness comes from a
// ChaCha8 generator with a fixed seed: the output is deterministic. Bad
// inputs are built by hand from good ones.
//
// Run from the package directory: go generate, or
//
//	go run ./internal/vectorgen -o testdata/vectors.json
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// Context mirrors envelope.Context in the vector file.
type Context struct {
	Purpose  string `json:"purpose"`
	Account  string `json:"account"`
	Vault    string `json:"vault"`
	Item     string `json:"item"`
	Revision uint64 `json:"revision"`
	Field    string `json:"field"`
}

// Vector is one single-shot envelope case.
type Vector struct {
	Name      string  `json:"name"`
	Key       []byte  `json:"key"`
	Context   Context `json:"context"`
	Sealed    []byte  `json:"sealed"`
	Plaintext []byte  `json:"plaintext,omitempty"`
	Expect    string  `json:"expect"`
}

// Part is one chunk given to OpenChunk, and in order, to the Reader.
type Part struct {
	Chunk  int    `json:"chunk"` // index into Stream.Chunks
	Index  uint64 `json:"index"`
	Final  bool   `json:"final"`
	Expect string `json:"expect"` // outcome of OpenChunk
}

// StreamVector is one stream case. Expect is the outcome of reading header
// followed by the parts' chunks through NewReader (or of NewStreamOpener
// when the header is bad).
type StreamVector struct {
	Name            string  `json:"name"`
	Key             []byte  `json:"key"`
	Context         Context `json:"context"`
	Header          []byte  `json:"header"`
	Parts           []Part  `json:"parts"`
	PlaintextLen    int     `json:"plaintext_len"`
	PlaintextSHA256 []byte  `json:"plaintext_sha256,omitempty"`
	Expect          string  `json:"expect"`
}

// File is the whole vector file.
type File struct {
	Comment       string         `json:"comment"`
	Envelope      []Vector       `json:"envelope"`
	StreamChunks  [][]byte       `json:"stream_chunks"`
	StreamVectors []StreamVector `json:"stream"`
}

const (
	chunkSize = 64 << 10
)

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func (c Context) aad() []byte {
	var b []byte
	b = appendString(b, "safehold/envelope/context/v1")
	b = appendString(b, c.Purpose)
	b = appendString(b, c.Account)
	b = appendString(b, c.Vault)
	b = appendString(b, c.Item)
	b = binary.BigEndian.AppendUint64(b, c.Revision)
	return appendString(b, c.Field)
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

func aeads(key, salt []byte, aesLabel, xLabel string) (cipher.AEAD, cipher.AEAD) {
	ka := must(hkdf.Key(sha512.New, key, salt, aesLabel, 32))
	kx := must(hkdf.Key(sha512.New, key, salt, xLabel, 32))
	g := must(cipher.NewGCM(must(aes.NewCipher(ka))))
	x := must(chacha20poly1305.NewX(kx))
	return g, x
}

func sealEnvelope(rng *rand.ChaCha8, key []byte, ctx Context, pt []byte) []byte {
	xn := make([]byte, 24)
	gn := make([]byte, 12)
	rng.Read(xn)
	rng.Read(gn)
	header := append(append([]byte("SHEN\x01\x01"), xn...), gn...)
	g, x := aeads(key, append(append([]byte{}, xn...), gn...),
		"safehold/envelope/v1/suite1/aes-256-gcm", "safehold/envelope/v1/suite1/xchacha20-poly1305")
	aad := append(append([]byte{}, header...), ctx.aad()...)
	inner := g.Seal(nil, gn, pt, aad)
	return x.Seal(header, xn, inner, aad)
}

type stream struct {
	header []byte
	g, x   cipher.AEAD
	ctxAAD []byte
}

func newStream(rng *rand.ChaCha8, key []byte, ctx Context) *stream {
	salt := make([]byte, 32)
	rng.Read(salt)
	header := []byte("SHST\x01\x01")
	header = binary.BigEndian.AppendUint32(header, chunkSize)
	header = append(header, salt...)
	g, x := aeads(key, salt, "safehold/stream/v1/suite1/aes-256-gcm", "safehold/stream/v1/suite1/xchacha20-poly1305")
	return &stream{header: header, g: g, x: x, ctxAAD: ctx.aad()}
}

func (s *stream) seal(index uint64, final bool, pt []byte) []byte {
	f := byte(0)
	if final {
		f = 1
	}
	gn := make([]byte, 12)
	binary.BigEndian.PutUint64(gn[3:11], index)
	gn[11] = f
	xn := make([]byte, 24)
	binary.BigEndian.PutUint64(xn[15:23], index)
	xn[23] = f
	aad := append([]byte{}, s.header...)
	aad = binary.BigEndian.AppendUint64(aad, index)
	aad = append(aad, f)
	aad = append(aad, s.ctxAAD...)
	return s.x.Seal(nil, xn, s.g.Seal(nil, gn, pt, aad), aad)
}

func flip(b []byte, i int, mask byte) []byte {
	c := append([]byte{}, b...)
	c[i] ^= mask
	return c
}

func main() {
	out := flag.String("o", "testdata/vectors.json", "output file")
	flag.Parse()

	rng := rand.NewChaCha8([32]byte([]byte("safehold envelope test vectors 1")))
	key := make([]byte, 32)
	rng.Read(key)
	otherKey := flip(key, 31, 0x01)
	ctx := Context{Purpose: "item-payload", Account: "acct-1", Vault: "vault-1", Item: "item-1", Revision: 7, Field: "password"}

	f := File{Comment: "generated by internal/envelope/internal/vectorgen; do not edit"}
	add := func(name string, key []byte, c Context, sealed, pt []byte, expect string) {
		f.Envelope = append(f.Envelope, Vector{Name: name, Key: key, Context: c, Sealed: sealed, Plaintext: pt, Expect: expect})
	}

	hello := []byte("correct horse battery staple")
	good := sealEnvelope(rng, key, ctx, hello)
	add("ok short", key, ctx, good, hello, "ok")
	empty := sealEnvelope(rng, key, ctx, nil)
	add("ok empty plaintext", key, ctx, empty, nil, "ok")
	big := make([]byte, 1000)
	rng.Read(big)
	add("ok 1000 bytes", key, ctx, sealEnvelope(rng, key, ctx, big), big, "ok")
	minimal := Context{Purpose: "p"}
	add("ok purpose only", key, minimal, sealEnvelope(rng, key, minimal, hello), hello, "ok")
	maxRev := ctx
	maxRev.Revision = 1<<64 - 1
	add("ok max revision", key, maxRev, sealEnvelope(rng, key, maxRev, hello), hello, "ok")
	// "ab"+"" and "a"+"b" must differ: length prefixes.
	joined := Context{Purpose: "p", Account: "ab"}
	split := Context{Purpose: "p", Account: "a", Vault: "b"}
	add("context fields shifted", key, split, sealEnvelope(rng, key, joined, hello), nil, "auth")

	for i := 0; i < 4; i++ {
		add(fmt.Sprintf("magic byte %d flipped", i), key, ctx, flip(good, i, 0x20), nil, "bad magic")
	}
	add("version 0", key, ctx, flip(good, 4, 0x01), nil, "unknown version")
	add("version 2", key, ctx, flip(good, 4, 0x03), nil, "unknown version")
	add("suite 0", key, ctx, flip(good, 5, 0x01), nil, "unknown suite")
	add("suite 2", key, ctx, flip(good, 5, 0x03), nil, "unknown suite")
	for i := 6; i < 42; i++ {
		add(fmt.Sprintf("nonce byte %d flipped", i), key, ctx, flip(good, i, 0x01), nil, "auth")
	}
	for _, i := range []int{42, 42 + len(hello)/2, len(good) - 17, len(good) - 16, len(good) - 1} {
		add(fmt.Sprintf("body byte %d flipped", i), key, ctx, flip(good, i, 0x80), nil, "auth")
	}
	for _, n := range []int{0, 1, 3, 4, 5, 6, 10, 41, 42, 58, 73} {
		add(fmt.Sprintf("truncated to %d bytes", n), key, ctx, good[:n], nil, "truncated")
	}
	add("truncated by one byte", key, ctx, good[:len(good)-1], nil, "auth")
	add("empty plaintext truncated", key, ctx, empty[:len(empty)-1], nil, "truncated")
	add("one byte appended", key, ctx, append(append([]byte{}, good...), 0), nil, "auth")
	add("wrong key", otherKey, ctx, good, nil, "auth")
	wrong := func(name string, mod func(*Context)) {
		c := ctx
		mod(&c)
		add("wrong context "+name, key, c, good, nil, "auth")
	}
	wrong("purpose", func(c *Context) { c.Purpose = "item-history" })
	wrong("account", func(c *Context) { c.Account = "acct-2" })
	wrong("vault", func(c *Context) { c.Vault = "vault-2" })
	wrong("item", func(c *Context) { c.Item = "item-2" })
	wrong("revision", func(c *Context) { c.Revision = 8 })
	wrong("field", func(c *Context) { c.Field = "username" })
	add("empty purpose", key, Context{}, good, nil, "context")

	// Streams. Pool: 0 = S1 chunk 0 (full), 1 = S1 chunk 1 (final, 1000
	// bytes), 2 = S2 chunk 0 (empty final), 3 = S3 chunk 0 (full final).
	sctx := Context{Purpose: "attachment", Account: "acct-1", Vault: "vault-1", Item: "item-1", Revision: 3, Field: "file-1"}
	pt1 := make([]byte, chunkSize+1000)
	rng.Read(pt1)
	s1 := newStream(rng, key, sctx)
	s2 := newStream(rng, key, sctx)
	pt3 := make([]byte, chunkSize)
	rng.Read(pt3)
	s3 := newStream(rng, key, sctx)
	c10 := s1.seal(0, false, pt1[:chunkSize])
	c11 := s1.seal(1, true, pt1[chunkSize:])
	f.StreamChunks = [][]byte{
		c10, c11, s2.seal(0, true, nil), s3.seal(0, true, pt3),
		flip(c11, 500, 0x04), // 4
		c11[:500],            // 5
		c10[:1000],           // 6
		c11[:20],             // 7
		{0},                  // 8
		flip(c10, 7, 0x01),   // 9
	}
	sum := func(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
	sv := func(name string, k []byte, c Context, header []byte, parts []Part, pt []byte, expect string) {
		v := StreamVector{Name: name, Key: k, Context: c, Header: header, Parts: parts, Expect: expect}
		if expect == "ok" {
			v.PlaintextLen, v.PlaintextSHA256 = len(pt), sum(pt)
		}
		f.StreamVectors = append(f.StreamVectors, v)
	}
	p := func(chunk int, index uint64, final bool, expect string) Part {
		return Part{Chunk: chunk, Index: index, Final: final, Expect: expect}
	}
	okParts := []Part{p(0, 0, false, "ok"), p(1, 1, true, "ok")}
	authParts := []Part{p(0, 0, false, "auth"), p(1, 1, true, "auth")}
	sv("ok two chunks", key, sctx, s1.header, okParts, pt1, "ok")
	sv("ok empty stream", key, sctx, s2.header, []Part{p(2, 0, true, "ok")}, nil, "ok")
	sv("ok exactly one full chunk", key, sctx, s3.header, []Part{p(3, 0, true, "ok")}, pt3, "ok")
	sv("chunks swapped", key, sctx, s1.header, []Part{p(1, 0, true, "auth"), p(0, 1, false, "auth")}, nil, "auth")
	sv("final chunk dropped", key, sctx, s1.header, []Part{p(0, 0, false, "ok")}, nil, "auth")
	sv("first chunk dropped", key, sctx, s1.header, []Part{p(1, 0, true, "auth")}, nil, "auth")
	sv("chunk 0 claimed final", key, sctx, s1.header, []Part{p(0, 0, true, "auth")}, nil, "auth")
	// The Reader sees the valid stream here; only OpenChunk is misled.
	sv("final chunk claimed non-final", key, sctx, s1.header, []Part{p(0, 0, false, "ok"), p(1, 1, false, "chunk size")}, pt1, "ok")
	sv("chunk duplicated", key, sctx, s1.header, []Part{p(0, 0, false, "ok"), p(0, 1, false, "auth"), p(1, 2, true, "auth")}, nil, "auth")
	sv("chunk appended after final", key, sctx, s1.header, []Part{p(0, 0, false, "ok"), p(1, 1, true, "ok"), p(0, 2, false, "auth")}, nil, "auth")
	sv("byte appended after final", key, sctx, s1.header, []Part{p(0, 0, false, "ok"), p(1, 1, true, "ok"), p(8, 2, true, "truncated")}, nil, "auth")
	sv("final chunk bit flipped", key, sctx, s1.header, []Part{p(0, 0, false, "ok"), p(4, 1, true, "auth")}, nil, "auth")
	sv("chunk 0 bit flipped", key, sctx, s1.header, []Part{p(9, 0, false, "auth"), p(1, 1, true, "ok")}, nil, "auth")
	sv("final chunk truncated", key, sctx, s1.header, []Part{p(0, 0, false, "ok"), p(5, 1, true, "auth")}, nil, "auth")
	sv("final chunk truncated below tags", key, sctx, s1.header, []Part{p(0, 0, false, "ok"), p(7, 1, true, "truncated")}, nil, "truncated")
	sv("stream cut inside chunk 0", key, sctx, s1.header, []Part{p(6, 0, true, "auth")}, nil, "auth")
	sv("header only", key, sctx, s1.header, nil, nil, "truncated")
	sv("chunk from another stream", key, sctx, s1.header, []Part{p(3, 0, false, "auth"), p(1, 1, true, "ok")}, nil, "auth")
	sv("empty final chunk after chunk 0", key, sctx, s1.header, []Part{p(0, 0, false, "ok"), p(2, 1, true, "chunk size")}, nil, "chunk size")
	sv("wrong key", otherKey, sctx, s1.header, authParts, nil, "auth")
	for name, mod := range map[string]func(*Context){
		"purpose":  func(c *Context) { c.Purpose = "item-payload" },
		"item":     func(c *Context) { c.Item = "item-2" },
		"revision": func(c *Context) { c.Revision = 4 },
		"field":    func(c *Context) { c.Field = "file-2" },
	} {
		c := sctx
		mod(&c)
		sv("wrong context "+name, key, c, s1.header, authParts, nil, "auth")
	}
	for i := 0; i < 4; i++ {
		sv(fmt.Sprintf("header magic byte %d flipped", i), key, sctx, flip(s1.header, i, 0x20), nil, nil, "bad magic")
	}
	sv("header version 2", key, sctx, flip(s1.header, 4, 0x03), nil, nil, "unknown version")
	sv("header suite 2", key, sctx, flip(s1.header, 5, 0x03), nil, nil, "unknown suite")
	for _, i := range []int{6, 7, 8, 9} {
		sv(fmt.Sprintf("header chunk size byte %d flipped", i), key, sctx, flip(s1.header, i, 0x01), nil, nil, "chunk size")
	}
	sv("header salt flipped", key, sctx, flip(s1.header, 20, 0x01), authParts, nil, "auth")
	sv("header truncated to 3", key, sctx, s1.header[:3], nil, nil, "truncated")
	sv("header truncated to 41", key, sctx, s1.header[:41], nil, nil, "truncated")

	// Map iteration above is random; sort stream vectors by name for a
	// deterministic file.
	slices.SortStableFunc(f.StreamVectors, func(a, b StreamVector) int { return strings.Compare(a.Name, b.Name) })

	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}
