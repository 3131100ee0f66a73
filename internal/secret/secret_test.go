package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestBytesNeverPrints(t *testing.T) {
	s := Bytes("hunter2-very-secret")
	var outs []string
	for _, verb := range []string{"%v", "%s", "%q", "%x", "%X", "%+v", "%#v", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, s))
	}
	j, err := json.Marshal(struct{ K Bytes }{s})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", s)
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, "hunter2") || strings.Contains(o, "68756e746572") {
			t.Errorf("secret leaked: %s", o)
		}
		if !strings.Contains(o, redacted) {
			t.Errorf("no redaction marker in %q", o)
		}
	}
}

func TestWipe(t *testing.T) {
	s := Bytes("abc")
	c := s.Clone()
	s.Wipe()
	if !bytes.Equal(s, []byte{0, 0, 0}) {
		t.Fatalf("not wiped: %v", []byte(s))
	}
	if string(c) != "abc" {
		t.Fatal("clone shares memory")
	}
}
