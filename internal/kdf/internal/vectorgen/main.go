// Command vectorgen writes internal/kdf/testdata/vectors.json:
//
//	go run ./internal/kdf/internal/vectorgen > internal/kdf/testdata/vectors.json
//
// It deliberately does not call package kdf. Headers are built by hand,
// byte by byte, and expected keys are computed from the primitives
// (x/crypto/argon2, crypto/pbkdf2, crypto/hkdf) following
// docs/design.md, so the test in package kdf checks the
// implementation against an independent reading of the spec. Salts and
// Secret Keys come from a fixed deterministic source, so the output is
// reproducible.
package main

import (
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"github.com/safehold/safehold/internal/random"
)

// Vector is one test case. Exactly one of Error and the key fields is set.
type Vector struct {
	Name          string  `json:"name"`
	PasswordHex   string  `json:"password_hex"`
	SecretKeyHex  *string `json:"secret_key_hex"` // null: no Secret Key
	HeaderHex     string  `json:"header_hex"`
	AllowInsecure bool    `json:"allow_insecure"`

	// Error is "" for success, else the expected failure: malformed,
	// unsupported, below_floor, above_ceiling, insecure_not_allowed,
	// invalid_password or secret_key_size. Stage says where it occurs:
	// "parse" (ParseHeader) or "derive" (DeriveWith).
	Error string `json:"error,omitempty"`
	Stage string `json:"stage,omitempty"`

	KEKHex      string `json:"kek_hex,omitempty"`
	LoginKeyHex string `json:"login_key_hex,omitempty"`
	ExpandLabel string `json:"expand_label,omitempty"`
	ExpandHex   string `json:"expand_hex,omitempty"`
}

type file struct {
	Comment string   `json:"comment"`
	Vectors []Vector `json:"vectors"`
}

const expandLabel = "example/future-key"

type hdr struct {
	version, alg, flags, threads byte
	mem, time, iter              uint32
	saltA, saltP                 [32]byte
}

func (h hdr) bytes() []byte {
	b := []byte{h.version, h.alg, h.flags, h.threads}
	b = binary.BigEndian.AppendUint32(b, h.mem)
	b = binary.BigEndian.AppendUint32(b, h.time)
	b = binary.BigEndian.AppendUint32(b, h.iter)
	b = append(b, h.saltA[:]...)
	return append(b, h.saltP[:]...)
}

func main() {
	rnd := random.NewDeterministic([]byte("safehold kdf test vectors v1"))
	read := func(b []byte) {
		if _, err := io.ReadFull(rnd, b); err != nil {
			panic(err)
		}
	}
	newHdr := func(flags, threads byte, mem, time, iter uint32) hdr {
		h := hdr{version: 1, alg: 1, flags: flags, threads: threads, mem: mem, time: time, iter: iter}
		read(h.saltA[:])
		read(h.saltP[:])
		return h
	}
	sk := make([]byte, 16)
	read(sk)
	skHex := hex.EncodeToString(sk)
	zeroHex := hex.EncodeToString(make([]byte, 16))

	test := newHdr(0x01, 1, 256, 1, 1000)
	var vs []Vector
	ok := func(name, pw string, skh *string, h hdr, allow bool) {
		vs = append(vs, success(name, []byte(pw), skh, h, allow))
	}
	ok("test profile, ascii password, no secret key", "correct horse battery staple", nil, test, true)
	ok("test profile, with secret key", "correct horse battery staple", &skHex, test, true)
	ok("test profile, all-zero secret key differs from none", "correct horse battery staple", &zeroHex, test, true)
	// U+FB01 LATIN SMALL LIGATURE FI and U+212B ANGSTROM SIGN normalise
	// (NFKC) to "fi" and U+00C5; the two vectors must agree.
	ok("nfkc: compatibility form", "\uFB01 \u212B", &skHex, test, true)
	ok("nfkc: normalised form", "fi \u00C5", &skHex, test, true)
	ok("test profile, larger insecure params", "pässwörd ✓", &skHex, newHdr(0x01, 4, 1024, 3, 2000), true)
	ok("floor params", "correct horse battery staple", &skHex, newHdr(0x00, 1, 65536, 2, 100000), false)

	fail := func(name string, b []byte, pw string, skh *string, allow bool, stage, kind string) {
		vs = append(vs, Vector{Name: name, PasswordHex: hex.EncodeToString([]byte(pw)), SecretKeyHex: skh,
			HeaderHex: hex.EncodeToString(b), AllowInsecure: allow, Error: kind, Stage: stage})
	}
	floor := newHdr(0x00, 1, 65536, 2, 100000)
	with := func(f func(*hdr)) []byte { h := floor; f(&h); return h.bytes() }
	pw := "password"
	fail("below floor: memory 65535 KiB", with(func(h *hdr) { h.mem = 65535 }), pw, nil, true, "parse", "below_floor")
	fail("below floor: time 1", with(func(h *hdr) { h.time = 1 }), pw, nil, true, "parse", "below_floor")
	fail("below floor: threads 0", with(func(h *hdr) { h.threads = 0 }), pw, nil, true, "parse", "below_floor")
	fail("below floor: pbkdf2 99999", with(func(h *hdr) { h.iter = 99999 }), pw, nil, true, "parse", "below_floor")
	fail("below floor: test-size params without the insecure flag",
		with(func(h *hdr) { h.mem, h.time, h.iter = 256, 1, 1000 }), pw, nil, true, "parse", "below_floor")
	fail("below floor: insecure flag, below the test floors",
		with(func(h *hdr) { h.flags, h.mem, h.time, h.iter = 1, 255, 1, 1000 }), pw, nil, true, "parse", "below_floor")
	fail("insecure profile not allowed", test.bytes(), pw, nil, false, "derive", "insecure_not_allowed")
	fail("above ceiling: memory 4 GiB + 1 KiB", with(func(h *hdr) { h.mem = 4194305 }), pw, nil, true, "parse", "above_ceiling")
	fail("above ceiling: memory 64 GiB", with(func(h *hdr) { h.mem = 64 << 20 }), pw, nil, true, "parse", "above_ceiling")
	fail("above ceiling: memory 0xffffffff", with(func(h *hdr) { h.mem = 0xffffffff }), pw, nil, true, "parse", "above_ceiling")
	fail("above ceiling: time 65", with(func(h *hdr) { h.time = 65 }), pw, nil, true, "parse", "above_ceiling")
	fail("above ceiling: threads 17", with(func(h *hdr) { h.threads = 17 }), pw, nil, true, "parse", "above_ceiling")
	fail("above ceiling: pbkdf2 20000001", with(func(h *hdr) { h.iter = 20000001 }), pw, nil, true, "parse", "above_ceiling")
	fail("malformed: empty", []byte{}, pw, nil, true, "parse", "malformed")
	fail("malformed: 79 bytes", floor.bytes()[:79], pw, nil, true, "parse", "malformed")
	fail("malformed: 81 bytes", append(floor.bytes(), 0), pw, nil, true, "parse", "malformed")
	fail("malformed: reserved flag 0x02", with(func(h *hdr) { h.flags = 0x02 }), pw, nil, true, "parse", "malformed")
	fail("malformed: reserved flag 0x80 with insecure", with(func(h *hdr) { h.flags = 0x81 }), pw, nil, true, "parse", "malformed")
	fail("unsupported: version 0", with(func(h *hdr) { h.version = 0 }), pw, nil, true, "parse", "unsupported")
	fail("unsupported: version 2", with(func(h *hdr) { h.version = 2 }), pw, nil, true, "parse", "unsupported")
	fail("unsupported: algorithm 0", with(func(h *hdr) { h.alg = 0 }), pw, nil, true, "parse", "unsupported")
	fail("unsupported: algorithm 2", with(func(h *hdr) { h.alg = 2 }), pw, nil, true, "parse", "unsupported")
	fail("invalid password: not UTF-8", test.bytes(), "pass\xffword", nil, true, "derive", "invalid_password")
	fail("invalid password: empty", test.bytes(), "", nil, true, "derive", "invalid_password")
	short, long := skHex[:30], skHex+"00"
	fail("secret key: 15 bytes", test.bytes(), pw, &short, true, "derive", "secret_key_size")
	fail("secret key: 17 bytes", test.bytes(), pw, &long, true, "derive", "secret_key_size")

	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(file{
		Comment: "generated by go run ./internal/kdf/internal/vectorgen; see docs/design.md",
		Vectors: vs,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "vectorgen:", err)
		os.Exit(1)
	}
}

func success(name string, pw []byte, skh *string, h hdr, allow bool) Vector {
	var sk []byte
	if skh != nil {
		var err error
		if sk, err = hex.DecodeString(*skh); err != nil {
			panic(err)
		}
	}
	npw := norm.NFKC.Bytes(pw)
	a2 := argon2.IDKey(npw, h.saltA[:], h.time, h.mem, h.threads, 32)
	pb, err := pbkdf2.Key(sha512.New, string(npw), h.saltP[:], int(h.iter), 64)
	if err != nil {
		panic(err)
	}
	// ikm = 0x01 || u16(80) header || u16(32) argon2 || u16(64) pbkdf2 ||
	// flag || u16(len sk) sk
	ikm := []byte{0x01, 0, 80}
	ikm = append(ikm, h.bytes()...)
	ikm = append(ikm, 0, 32)
	ikm = append(ikm, a2...)
	ikm = append(ikm, 0, 64)
	ikm = append(ikm, pb...)
	if sk != nil {
		ikm = append(ikm, 1, 0, 16)
		ikm = append(ikm, sk...)
	} else {
		ikm = append(ikm, 0, 0, 0)
	}
	prk, err := hkdf.Extract(sha512.New, ikm, []byte("safehold/kdf/v1/extract"))
	if err != nil {
		panic(err)
	}
	expand := func(info string, n int) string {
		out, err := hkdf.Expand(sha512.New, prk, info, n)
		if err != nil {
			panic(err)
		}
		return hex.EncodeToString(out)
	}
	return Vector{
		Name:          name,
		PasswordHex:   hex.EncodeToString(pw),
		SecretKeyHex:  skh,
		HeaderHex:     hex.EncodeToString(h.bytes()),
		AllowInsecure: allow,
		KEKHex:        expand("safehold/kdf/v1/kek", 32),
		LoginKeyHex:   expand("safehold/kdf/v1/login", 32),
		ExpandLabel:   expandLabel,
		ExpandHex:     expand("safehold/kdf/v1/expand/"+expandLabel, 64),
	}
}
