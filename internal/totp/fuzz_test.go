package totp

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParse checks that whatever Parse accepts is valid, re-encodes to a
// URI that parses to the same Config, and that the URI is a fixed point.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"JBSWY3DPEHPK3PXP",
		"jbsw y3dp ehpk 3pxp",
		"JBSWY3DPEHPK3PXPJA======",
		"otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=ACME%20Co&algorithm=SHA256&digits=8&period=60",
		"otpauth://totp/Example:%20alice?secret=jbswy3dpehpk3pxp&algorithm=sha512&digits=7&image=x",
		"otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=1",
		"otpauth://totp/?secret=JBSWY3DPEHPK3PXP",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		u, err := c.URI()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse(u)
		if err != nil {
			t.Fatalf("canonical URI %q does not parse: %v", u, err)
		}
		if !c2.Equal(c) {
			t.Fatalf("URI round trip changed the config: %q", u)
		}
		if u2, _ := c2.URI(); u2 != u {
			t.Fatalf("URI not canonical: %q then %q", u, u2)
		}
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var c3 Config
		if err := json.Unmarshal(j, &c3); err != nil || !c3.Equal(c) {
			t.Fatalf("JSON round trip: %v", err)
		}
	})
}

// FuzzUnmarshalJSON checks that the stored encoding is canonical: whatever
// decodes re-encodes to the input with white space removed.
func FuzzUnmarshalJSON(f *testing.F) {
	f.Add([]byte(`{"v":1,"secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","algorithm":"SHA1","digits":6,"period":30,"issuer":"A\u003cB\u003e","account":"me"}`))
	f.Add([]byte(`{"v":1,"secret":"JBSWY3DPEHPK3PXP","algorithm":"SHA512","digits":8,"period":300,"issuer":"","account":""}`))
	f.Add([]byte(`{"v":1, "secret":"JBSWY3DPEHPK3PXP"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		if err := json.Unmarshal(data, &c); err != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, compact.Bytes()) {
			t.Fatalf("not canonical:\n in  %s\n out %s", compact.Bytes(), out)
		}
	})
}
