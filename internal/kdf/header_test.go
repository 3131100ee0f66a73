package kdf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func validHeader(t testing.TB) Header {
	return Header{Params: Defaults(), Salts: testSalts(t)}
}

func TestHeaderLayout(t *testing.T) {
	h := Header{Params: Params{Argon2Memory: 0x00020304, Argon2Time: 5, Argon2Threads: 6, PBKDF2Iterations: 0x00123456}}
	for i := range h.Salts.Argon2 {
		h.Salts.Argon2[i] = 0xa0 + byte(i)
		h.Salts.PBKDF2[i] = 0x50 + byte(i)
	}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 1, 0, 6, 0x00, 0x02, 0x03, 0x04, 0, 0, 0, 5, 0x00, 0x12, 0x34, 0x56}
	want = append(want, h.Salts.Argon2[:]...)
	want = append(want, h.Salts.PBKDF2[:]...)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding\n got %x\nwant %x", b, want)
	}
	h.Params = TestParams()
	b, err = h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if b[2] != 0x01 {
		t.Fatalf("insecure flag byte = %#x", b[2])
	}
	if b2, err := h.AppendBinary([]byte("x")); err != nil || !bytes.Equal(b2[1:], b) {
		t.Fatal("AppendBinary differs from MarshalBinary")
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, p := range []Params{Defaults(), TestParams()} {
		h := validHeader(t)
		h.Params = p
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Header
		if err := got.UnmarshalBinary(b); err != nil || got != h {
			t.Fatalf("round trip: %+v, %v", got, err)
		}
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	h := validHeader(t)
	h.Params.Argon2Memory = 64 << 20
	if _, err := h.MarshalBinary(); !errors.Is(err, ErrAboveCeiling) {
		t.Fatalf("MarshalBinary = %v", err)
	}
	h.Params = Params{}
	if _, err := h.AppendBinary(nil); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("AppendBinary = %v", err)
	}
}

func FuzzParseHeader(f *testing.F) {
	h := validHeader(f)
	good, _ := h.MarshalBinary()
	f.Add(good)
	h.Params = TestParams()
	test, _ := h.MarshalBinary()
	f.Add(test)
	f.Add([]byte{})
	f.Add(good[:79])
	f.Add(append(bytes.Clone(good), 0))
	bad := bytes.Clone(good)
	bad[2] = 0x80
	f.Add(bad)
	bad = bytes.Clone(good)
	binary.BigEndian.PutUint32(bad[4:], 64<<20)
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) &&
				!errors.Is(err, ErrBelowFloor) && !errors.Is(err, ErrAboveCeiling) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		enc, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed header does not re-encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("not canonical:\n in %x\nout %x", b, enc)
		}
		if err := h.Params.Check(true); err != nil {
			t.Fatalf("parsed params fail Check: %v", err)
		}
	})
}

func FuzzHeaderRoundTrip(f *testing.F) {
	f.Add(uint32(65536), uint32(2), uint8(1), uint32(100000), false, []byte("salt"))
	f.Add(uint32(256), uint32(1), uint8(1), uint32(1000), true, []byte{})
	f.Add(uint32(1<<22), uint32(64), uint8(16), uint32(20_000_000), false, bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, mem, tm uint32, th uint8, it uint32, insecure bool, salt []byte) {
		h := Header{Params: Params{Argon2Memory: mem, Argon2Time: tm, Argon2Threads: th, PBKDF2Iterations: it, InsecureTest: insecure}}
		copy(h.Salts.Argon2[:], salt)
		if len(salt) > 32 {
			copy(h.Salts.PBKDF2[:], salt[32:])
		}
		b, err := h.MarshalBinary()
		if err != nil {
			if h.Params.Check(true) == nil {
				t.Fatalf("valid params not encoded: %v", err)
			}
			return
		}
		if len(b) != HeaderSize {
			t.Fatalf("length %d", len(b))
		}
		got, err := ParseHeader(b)
		if err != nil || got != h {
			t.Fatalf("round trip: %+v, %v", got, err)
		}
	})
}
