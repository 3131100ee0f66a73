package totp

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/safehold/safehold/internal/secret"
)

// jsonVersion is the "v" field of the stored encoding.
const jsonVersion = 1

// maxJSONLen bounds the stored encoding: a 128-byte seed is 205 base32
// characters, labels are at most 256 bytes each (6x when every byte is
// \u-escaped), plus field names.
const maxJSONLen = 4096

// wireConfig is the stored form. Field order is the encoding order.
type wireConfig struct {
	V         int    `json:"v"`
	Secret    string `json:"secret"`
	Algorithm string `json:"algorithm"`
	Digits    int    `json:"digits"`
	Period    int    `json:"period"`
	Issuer    string `json:"issuer"`
	Account   string `json:"account"`
}

// MarshalJSON encodes c for storage inside an encrypted item. Unlike every
// other printing path it contains the seed, as canonical base32:
//
//	{"v":1,"secret":"JBSWY3DPEHPK3PXP","algorithm":"SHA1","digits":6,"period":30,"issuer":"","account":""}
//
// Every field is always present, in this order, with encoding/json's string
// escaping and no white space.
func (c Config) MarshalJSON() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(wireConfig{
		V:         jsonVersion,
		Secret:    b32.EncodeToString(c.Secret),
		Algorithm: string(c.Algorithm),
		Digits:    c.Digits,
		Period:    c.Period,
		Issuer:    c.Issuer,
		Account:   c.Account,
	})
}

// UnmarshalJSON accepts exactly the encoding MarshalJSON produces: after
// removing insignificant white space (an enclosing encoder may indent), the
// input must equal the re-encoding of the value it decodes to. Unknown,
// missing, repeated or reordered fields, other escapings, padding or lower
// case in the seed, and out-of-bound values are all rejected.
func (c *Config) UnmarshalJSON(data []byte) error {
	if len(data) > maxJSONLen {
		return fmt.Errorf("%w: stored config over %d bytes", ErrTooLarge, maxJSONLen)
	}
	var w wireConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("%w: stored config: %v", ErrInvalid, redactJSONError(err))
	}
	if w.V != jsonVersion {
		return fmt.Errorf("%w: stored config version %d, want %d", ErrInvalid, w.V, jsonVersion)
	}
	seed := make(secret.Bytes, b32.DecodedLen(len(w.Secret)))
	n, err := b32.Decode(seed, []byte(w.Secret))
	if err != nil {
		seed.Wipe()
		return fmt.Errorf("%w: stored seed is not canonical base32", ErrSeed)
	}
	nc := Config{
		Secret:    seed[:n],
		Algorithm: Algorithm(w.Algorithm),
		Digits:    w.Digits,
		Period:    w.Period,
		Issuer:    w.Issuer,
		Account:   w.Account,
	}
	again, err := nc.MarshalJSON()
	if err != nil {
		seed.Wipe()
		return err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil || !bytes.Equal(compact.Bytes(), again) {
		seed.Wipe()
		secret.Wipe(compact.Bytes())
		secret.Wipe(again)
		return fmt.Errorf("%w: stored config is not in canonical form", ErrInvalid)
	}
	secret.Wipe(compact.Bytes())
	secret.Wipe(again)
	*c = nc
	return nil
}

// redactJSONError keeps the kind of a decoding error but never input text.
func redactJSONError(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("syntax error at offset %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("wrong type for field %q", e.Field)
	}
	return "malformed"
}
