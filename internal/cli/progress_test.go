package cli

import (
	"bytes"
	"testing"
	"time"
)

// Off a terminal, progress is a line every progressLineEvery and a last
// one at the end; nothing for short work, nothing with --json.
func TestProgressLines(t *testing.T) {
	var stderr bytes.Buffer
	a := &app{env: Env{Stderr: &stderr}}
	p := a.progressBar("re-encrypting")
	p.update(0, 10)
	p.update(10, 10)
	p.finish()
	if stderr.Len() != 0 {
		t.Fatalf("short work printed %q", stderr.String())
	}

	p = a.progressBar("re-encrypting")
	p.start = time.Now().Add(-3 * progressLineEvery)
	p.update(1, 4)
	p.update(2, 4) // within progressLineEvery of the last line
	p.update(4, 4)
	p.finish()
	want := "re-encrypting: 1 of 4 items (25%)\nre-encrypting: 4 of 4 items (100%)\n"
	if stderr.String() != want {
		t.Fatalf("progress lines %q, want %q", stderr.String(), want)
	}

	stderr.Reset()
	a.jsonOut = true
	p = a.progressBar("re-encrypting")
	p.start = time.Now().Add(-3 * progressLineEvery)
	p.update(1, 4)
	p.update(4, 4)
	p.finish()
	if stderr.Len() != 0 {
		t.Fatalf("--json printed %q", stderr.String())
	}
}
