package envelope

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"
)

type vecContext struct {
	Purpose  string `json:"purpose"`
	Account  string `json:"account"`
	Vault    string `json:"vault"`
	Item     string `json:"item"`
	Revision uint64 `json:"revision"`
	Field    string `json:"field"`
}

func (c vecContext) ctx() Context { return Context(c) }

type vecFile struct {
	Comment  string `json:"comment"`
	Envelope []struct {
		Name      string     `json:"name"`
		Key       []byte     `json:"key"`
		Context   vecContext `json:"context"`
		Sealed    []byte     `json:"sealed"`
		Plaintext []byte     `json:"plaintext"`
		Expect    string     `json:"expect"`
	} `json:"envelope"`
	StreamChunks [][]byte `json:"stream_chunks"`
	Stream       []struct {
		Name    string     `json:"name"`
		Key     []byte     `json:"key"`
		Context vecContext `json:"context"`
		Header  []byte     `json:"header"`
		Parts   []struct {
			Chunk  int    `json:"chunk"`
			Index  uint64 `json:"index"`
			Final  bool   `json:"final"`
			Expect string `json:"expect"`
		} `json:"parts"`
		PlaintextLen    int    `json:"plaintext_len"`
		PlaintextSHA256 []byte `json:"plaintext_sha256"`
		Expect          string `json:"expect"`
	} `json:"stream"`
}

var expectErr = map[string]error{
	"ok":              nil,
	"auth":            ErrAuth,
	"truncated":       ErrTruncated,
	"bad magic":       ErrBadMagic,
	"unknown version": ErrUnknownVersion,
	"unknown suite":   ErrUnknownSuite,
	"too large":       ErrTooLarge,
	"chunk size":      ErrChunkSize,
	"trailing data":   ErrTrailingData,
	"context":         ErrContext,
}

func checkOutcome(t *testing.T, what, expect string, err error) {
	t.Helper()
	want, ok := expectErr[expect]
	if !ok {
		t.Fatalf("%s: unknown expectation %q", what, expect)
	}
	if want == nil && err != nil {
		t.Fatalf("%s: got error %v, want success", what, err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func loadVectors(t *testing.T) *vecFile {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f vecFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if len(f.Envelope) == 0 || len(f.Stream) == 0 {
		t.Fatal("no vectors")
	}
	return &f
}

func TestEnvelopeVectors(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Envelope {
		t.Run(v.Name, func(t *testing.T) {
			pt, err := Open(v.Key, v.Context.ctx(), v.Sealed)
			checkOutcome(t, "Open", v.Expect, err)
			if v.Expect != "ok" {
				return
			}
			if !bytes.Equal(pt, v.Plaintext) {
				t.Fatal("plaintext differs")
			}
			// Seal with the vector's nonces reproduces it byte for byte.
			again, err := Seal(bytes.NewReader(v.Sealed[6:HeaderSize]), v.Key, v.Context.ctx(), v.Plaintext)
			if err != nil || !bytes.Equal(again, v.Sealed) {
				t.Fatalf("re-seal differs (err %v)", err)
			}
		})
	}
}

func TestStreamVectors(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Stream {
		t.Run(v.Name, func(t *testing.T) {
			ctx := v.Context.ctx()
			// Chunk API.
			o, err := NewStreamOpener(v.Key, ctx, v.Header)
			if err != nil {
				if len(v.Parts) != 0 {
					t.Fatalf("NewStreamOpener: %v", err)
				}
				checkOutcome(t, "NewStreamOpener", v.Expect, err)
			} else {
				for i, p := range v.Parts {
					_, err := o.OpenChunk(p.Index, p.Final, f.StreamChunks[p.Chunk])
					checkOutcome(t, "OpenChunk part "+string(rune('0'+i)), p.Expect, err)
				}
			}
			// Reader over header || chunks.
			var stream []byte
			stream = append(stream, v.Header...)
			for _, p := range v.Parts {
				stream = append(stream, f.StreamChunks[p.Chunk]...)
			}
			r, err := NewReader(bytes.NewReader(stream), v.Key, ctx)
			if err == nil {
				h := sha256.New()
				var n int64
				n, err = io.Copy(h, r)
				if err == nil && (n != int64(v.PlaintextLen) || !bytes.Equal(h.Sum(nil), v.PlaintextSHA256)) {
					t.Fatalf("reader plaintext differs (%d bytes)", n)
				}
			}
			checkOutcome(t, "Reader", v.Expect, err)
			// A valid stream is reproduced byte for byte from its salt.
			if v.Expect == "ok" && len(v.Parts) > 0 && v.Parts[len(v.Parts)-1].Final {
				s, header, err := NewStreamSealer(bytes.NewReader(v.Header[10:]), v.Key, ctx)
				if err != nil || !bytes.Equal(header, v.Header) {
					t.Fatalf("re-made header differs (err %v)", err)
				}
				for _, p := range v.Parts {
					pt, err := o.OpenChunk(p.Index, p.Final, f.StreamChunks[p.Chunk])
					if err != nil {
						return // the chunk API view of this vector is not a valid stream
					}
					ct, err := s.SealChunk(p.Index, p.Final, pt)
					if err != nil || !bytes.Equal(ct, f.StreamChunks[p.Chunk]) {
						t.Fatalf("re-sealed chunk %d differs (err %v)", p.Index, err)
					}
				}
			}
		})
	}
}
