package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// evilText holds what a terminal acts on: a clear screen, an OSC 52
// clipboard write, a C1 CSI, a bidirectional override, a carriage return,
// backspace and BEL.
const evilText = "Evil\x1b[2J\x1b]52;c;Y3Vy\x07\u009b31m\u202eRTL\r\b\a-end"

// noControls fails unless s holds no control (but line feed), DEL, C1 or
// bidirectional control.
func noControls(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			t.Errorf("%s holds %U: %q", what, r, s)
			return
		}
	}
}

// TestHumanOutputCleaned: printf, warnf and the error and hint lines of
// report clean what is formatted into them.
func TestHumanOutputCleaned(t *testing.T) {
	var stdout, stderr bytes.Buffer
	a := &app{env: Env{Stdout: &stdout, Stderr: &stderr}}
	a.printf("title: %s\n", evilText)
	a.warnf("item %s: %v", evilText, errors.New(evilText))
	a.report(withHint(ExitNotFound, "`safe get "+evilText+"` lists them", errors.New("no "+evilText)))
	noControls(t, "stdout", stdout.String())
	noControls(t, "stderr", stderr.String())
	if got, want := stdout.String(), "title: EvilRTL-end\n"; got != want {
		t.Errorf("printf wrote %q, want %q", got, want)
	}
	for _, want := range []string{"warning: item EvilRTL-end: EvilRTL-end\n", "error: no EvilRTL-end\n", "hint: `safe get EvilRTL-end` lists them\n"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q does not hold %q", stderr.String(), want)
		}
	}
}

// TestJSONOutputEscaped: --json output keeps values exact but escapes the
// characters encoding/json leaves raw, on stdout and in errors on stderr.
func TestJSONOutputEscaped(t *testing.T) {
	var stdout, stderr bytes.Buffer
	a := &app{env: Env{Stdout: &stdout, Stderr: &stderr}, jsonOut: true}
	if err := a.printJSON(map[string]string{"title": evilText}); err != nil {
		t.Fatal(err)
	}
	a.report(errors.New(evilText))
	noControls(t, "stdout", stdout.String())
	noControls(t, "stderr", stderr.String())
	var out struct{ Title string }
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || out.Title != evilText {
		t.Errorf("printJSON decodes to %q, %v; want %q", out.Title, err, evilText)
	}
	var rep struct{ Error string }
	if err := json.Unmarshal(stderr.Bytes(), &rep); err != nil || rep.Error != evilText {
		t.Errorf("the JSON error decodes to %q, %v; want %q", rep.Error, err, evilText)
	}
}

// TestWriteValueExact: a value written for a program (not a terminal) is
// kept byte for byte, with no warning.
func TestWriteValueExact(t *testing.T) {
	var stdout, stderr bytes.Buffer
	a := &app{env: Env{Stdout: &stdout, Stderr: &stderr}}
	if err := a.writeValue([]byte(evilText + "\n")); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != evilText+"\n" || stderr.Len() != 0 {
		t.Errorf("writeValue wrote %q and warned %q", stdout.String(), stderr.String())
	}
}
