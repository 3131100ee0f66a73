//go:build linux

package main

// Import and export through the real safe binary and a real agent: every
// importer fixture, the summary and its --json, malformed files, and round
// trips through each export format into a new SAFE_HOME.

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/archive"
	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/kdbx"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/random"
)

const fixtures = "../../internal/importer/testdata"

type importJSON struct {
	Imported    int                `json:"imported"`
	Skipped     []importer.Skipped `json:"skipped"`
	Attachments int                `json:"attachments"`
	Versions    int                `json:"versions"`
}

func (h *procHarness) initHome(home string) {
	h.t.Helper()
	h.must(home, "init", "--password-file", h.pw)
}

func (h *procHarness) importJSON(home string, args ...string) importJSON {
	h.t.Helper()
	out := h.must(home, append(append([]string{"import"}, args...), "--json")...)
	var r importJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		h.t.Fatalf("import --json output: %v\n%s", err, out)
	}
	return r
}

// file writes a file in the harness directory and returns its path.
func (h *procHarness) file(name, content string) string {
	h.t.Helper()
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// zipDir packs a directory as a .1pux file.
func zipDir(t *testing.T, dir, out string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		w, err := zw.Create(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

type listed struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

func (h *procHarness) list(home string) []listed {
	h.t.Helper()
	var l []listed
	if err := json.Unmarshal([]byte(h.must(home, "ls", "--json")), &l); err != nil {
		h.t.Fatal(err)
	}
	return l
}

func (h *procHarness) getItem(home, ref string) item.Item {
	h.t.Helper()
	var it item.Item
	if err := json.Unmarshal([]byte(h.must(home, "get", ref, "--json", "--reveal")), &it); err != nil {
		h.t.Fatal(err)
	}
	return it
}

// TestImportFixtures imports every fixture H1 and H2 committed, checks the
// summary, then imports it again: everything is "already in the vault".
func TestImportFixtures(t *testing.T) {
	h := newProcHarness(t)
	onepux := filepath.Join(h.dir, "export.1pux")
	zipDir(t, filepath.Join(fixtures, "1pux"), onepux)
	cases := []struct{ format, path string }{
		{"bitwarden-json", filepath.Join(fixtures, "bitwarden.json")},
		{"bitwarden-csv", filepath.Join(fixtures, "bitwarden.csv")},
		{"chrome-csv", filepath.Join(fixtures, "chrome.csv")},
		{"firefox-csv", filepath.Join(fixtures, "firefox.csv")},
		{"1pux", onepux},
	}
	// The KeePassXC fixtures of internal/kdbx, all under one password
	// (internal/kdbx's fixturePassword); one also needs its key file.
	kdbxPW := h.file("kdbx-fixture-pw", "fixture password ü\n")
	kdbxFiles, _ := filepath.Glob("../../internal/kdbx/testdata/keepassxc-*.kdbx")
	for _, p := range kdbxFiles {
		cases = append(cases, struct{ format, path string }{"kdbx", p})
	}
	for _, c := range cases {
		t.Run(c.format+"/"+filepath.Base(c.path), func(t *testing.T) {
			home := "fx-" + c.format + "-" + filepath.Base(c.path)
			h.initHome(home)
			args := []string{c.format, c.path}
			if c.format == "kdbx" {
				args = append(args, "--password-file", kdbxPW)
				if key := strings.TrimSuffix(c.path, ".kdbx") + ".keyx"; fileExists(key) {
					abs, _ := filepath.Abs(key)
					args = append(args, "--key-file", abs)
				}
			}
			abs, _ := filepath.Abs(c.path)
			args[1] = abs
			first := h.importJSON(home, args...)
			if first.Imported == 0 {
				t.Fatalf("nothing imported: %+v", first)
			}
			for _, s := range first.Skipped {
				if s.Where == "" || s.Reason == "" {
					t.Errorf("skipped without where or reason: %+v", s)
				}
			}
			if n := len(h.list(home)); n != first.Imported {
				t.Errorf("ls shows %d items, import said %d", n, first.Imported)
			}
			// Text summary: the count line and one line per skipped entry.
			code, out, errOut := h.run(home, append([]string{"import"}, args...)...)
			if code != 0 {
				t.Fatalf("second import: exit %d\n%s%s", code, out, errOut)
			}
			if !strings.HasPrefix(out, "Imported 0 items (") {
				t.Errorf("second import summary: %q", out)
			}
			if got := strings.Count(out, ": already in the vault\n"); got != first.Imported {
				t.Errorf("second import: %d entries already in the vault, want %d\n%s", got, first.Imported, out)
			}
			if !strings.Contains(out, fmt.Sprintf("Skipped %d:\n", first.Imported+len(first.Skipped))) {
				t.Errorf("second import: no Skipped line\n%s", out)
			}
			if n := len(h.list(home)); n != first.Imported {
				t.Errorf("after the second import ls shows %d items, want %d", n, first.Imported)
			}
		})
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestImportMalformed: a broken file exits 11, names the place, and
// imports nothing; a missing file is a usage error.
func TestImportMalformed(t *testing.T) {
	h := newProcHarness(t)
	h.initHome("m")
	good, err := os.ReadFile(filepath.Join(fixtures, "bitwarden.json"))
	if err != nil {
		t.Fatal(err)
	}
	cut := h.file("cut.json", string(good[:len(good)/2]))
	badCSV := h.file("bad.csv", "name,url,username,password,note\nok,https://a.example,u,p,\n\"open quote,https://b.example,u,p,\n")
	for _, c := range []struct {
		format, path, want string
	}{
		{"bitwarden-json", cut, "line"},
		{"chrome-csv", badCSV, "line"},
		{"archive", cut, "not a Safehold archive"},
	} {
		args := []string{"import", c.format, c.path}
		if c.format == "archive" {
			args = append(args, "--password-file", h.pw)
		}
		code, out, errOut := h.run("m", args...)
		if code != 11 {
			t.Errorf("%s: exit %d, want 11\n%s%s", c.format, code, out, errOut)
		}
		if !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "nothing was imported") {
			t.Errorf("%s: stderr does not name the place or say nothing was imported:\n%s", c.format, errOut)
		}
	}
	if n := len(h.list("m")); n != 0 {
		t.Errorf("%d items after malformed imports", n)
	}
	if code, _, _ := h.run("m", "import", "chrome-csv", filepath.Join(h.dir, "missing.csv")); code != 2 {
		t.Errorf("missing file: exit %d, want 2", code)
	}
	if code, _, _ := h.run("m", "import", "lastpass", badCSV); code != 2 {
		t.Errorf("unknown format: exit %d, want 2", code)
	}
	// --dry-run reads and reports without the vault.
	chrome, _ := filepath.Abs(filepath.Join(fixtures, "chrome.csv"))
	out := h.must("m", "import", "chrome-csv", chrome, "--dry-run")
	if !strings.HasPrefix(out, "Would import ") {
		t.Errorf("dry run: %q", out)
	}
	if n := len(h.list("m")); n != 0 {
		t.Errorf("%d items after a dry run", n)
	}
}

// seed fills a home with items that exercise every export: unicode,
// custom fields, several types, history and attachments.
func seed(t *testing.T, h *procHarness, home string) (attachment []byte) {
	t.Helper()
	cmd := h.command(home, "add", "--json")
	cmd.Stdin = strings.NewReader(`[
 {"type":"login","title":"Bücher ✓ 日本","username":"ünï","password":"pä$$ \"quoted\"","urls":["https://bücher.example/login"],
  "notes":"line one\nline two","totp":"JBSWY3DPEHPK3PXP","tags":["a","b"],"folder":"Work/Books",
  "fields":[{"name":"PIN","kind":"hidden","value":"1234"},{"name":"Account","kind":"text","value":"42"}]},
 {"type":"note","title":"Plain note","notes":"just text"},
 {"type":"card","title":"Visa","card":{"holder":"J Doe","number":"4111111111111111","expiry":"01/2030","cvv":"123"}}
]`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	// Two more versions of the login.
	for _, pw := range []string{"second password", "third password"} {
		c := h.command(home, "edit", "Bücher", "--password-stdin")
		c.Stdin = strings.NewReader(pw)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("edit: %v\n%s", err, out)
		}
	}
	attachment = make([]byte, 200_003)
	for i := range attachment {
		attachment[i] = byte(i*7 + i/251)
	}
	p := filepath.Join(h.dir, home+"-scan.bin")
	if err := os.WriteFile(p, attachment, 0o600); err != nil {
		t.Fatal(err)
	}
	h.must(home, "attach", "add", "Bücher", p, "--name", "scan ✓.bin")
	return attachment
}

// sameItems compares what a user typed in two homes' items, by title.
func sameItems(t *testing.T, h *procHarness, homeA, homeB string) {
	t.Helper()
	la, lb := h.list(homeA), h.list(homeB)
	if len(la) != len(lb) {
		t.Fatalf("%s has %d items, %s has %d", homeA, len(la), homeB, len(lb))
	}
	for _, o := range la {
		a, b := h.getItem(homeA, o.ID), h.getItem(homeB, o.Title)
		for _, it := range []*item.Item{&a, &b} {
			it.ID, it.Revision, it.Created, it.Modified, it.PasswordChanged = "", 0, time.Time{}, time.Time{}, time.Time{}
			for i := range it.Attachments {
				it.Attachments[i] = item.Attachment{Name: it.Attachments[i].Name, Size: it.Attachments[i].Size}
			}
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Errorf("item %q differs:\n%s\n%s", o.Title, ja, jb)
		}
	}
}

func TestExportArchiveRoundTrip(t *testing.T) {
	h := newProcHarness(t)
	h.initHome("src")
	att := seed(t, h, "src")
	apw := h.file("archive-pw", "a different archive password\n")
	out := filepath.Join(h.dir, "backup.sharch")
	res := h.must("src", "export", "archive", "--out", out, "--password-file", apw)
	if !strings.HasPrefix(res, "Exported 3 items (1 attachment, 3 earlier versions) to ") {
		t.Errorf("export summary: %q", res)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(out)
	if bytes.Contains(data, []byte("third password")) || bytes.Contains(data, []byte("Plain note")) {
		t.Fatal("plaintext in the archive")
	}
	// No overwrite without --force; with it, fine.
	if code, _, errOut := h.run("src", "export", "archive", "--out", out, "--password-file", apw); code != 10 || !strings.Contains(errOut, "--force") {
		t.Errorf("overwrite without --force: exit %d\n%s", code, errOut)
	}
	h.must("src", "export", "archive", "--out", out, "--password-file", apw, "--force")

	h.initHome("dst")
	// Wrong password: exit 3, nothing imported.
	if code, _, errOut := h.run("dst", "import", "archive", out, "--password-file", h.pw); code != 3 {
		t.Errorf("wrong password: exit %d\n%s", code, errOut)
	}
	// Truncated and tampered: exit 7.
	data, _ = os.ReadFile(out)
	cut := h.file("cut.sharch", string(data[:len(data)-40]))
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 1
	flip := h.file("flip.sharch", string(flipped))
	for _, p := range []string{cut, flip} {
		if code, _, errOut := h.run("dst", "import", "archive", p, "--password-file", apw); code != 7 {
			t.Errorf("%s: exit %d, want 7\n%s", filepath.Base(p), code, errOut)
		}
	}
	if n := len(h.list("dst")); n != 0 {
		t.Fatalf("%d items after refused archives", n)
	}
	r := h.importJSON("dst", "archive", out, "--password-file", apw)
	// Three earlier versions exported; the last differs from the current
	// one only by its attachment, which comes after, so two updates.
	if r.Imported != 3 || r.Attachments != 1 || r.Versions != 2 || len(r.Skipped) != 0 {
		t.Errorf("archive import: %+v", r)
	}
	sameItems(t, h, "src", "dst")
	got := filepath.Join(h.dir, "got.bin")
	h.must("dst", "attach", "get", "Bücher", "scan ✓.bin", "--out", got)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, att) {
		t.Error("attachment bytes differ after the round trip")
	}
	// History: the two earlier passwords are there, in order.
	var revs []struct {
		Password string `json:"password"`
	}
	hist := h.must("dst", "history", "Bücher", "--json", "--reveal")
	if err := json.Unmarshal([]byte(hist), &revs); err != nil {
		t.Fatalf("history --json: %v", err)
	}
	var pws []string
	for _, r := range revs {
		pws = append(pws, r.Password)
	}
	if want := []string{"pä$$ \"quoted\"", "second password", "third password", "third password"}; !slices.Equal(pws, want) {
		t.Errorf("history passwords %q, want %q", pws, want)
	}
}

func TestExportBitwardenJSON(t *testing.T) {
	h := newProcHarness(t)
	h.initHome("bw")
	seed(t, h, "bw")
	out := filepath.Join(h.dir, "bw.json")
	if code, _, errOut := h.run("bw", "export", "bitwarden-json", "--out", out); code != 2 || !strings.Contains(errOut, "--plaintext") {
		t.Errorf("without --plaintext: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("file written without --plaintext")
	}
	code, _, errOut := h.run("bw", "export", "bitwarden-json", "--out", out, "--plaintext")
	if code != 0 || !strings.Contains(errOut, "warning: this file holds every secret in clear") {
		t.Fatalf("with --plaintext: exit %d, stderr:\n%s", code, errOut)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bitwarden export: %v %v", fi, err)
	}
	h.initHome("bw2")
	r := h.importJSON("bw2", "bitwarden-json", out)
	if r.Imported != 3 {
		t.Errorf("re-import: %+v", r)
	}
	if got := h.getItem("bw2", "Bücher"); got.Password != "third password" || got.Username != "ünï" {
		t.Errorf("re-imported login: %+v", got)
	}
}

func TestExportKDBX(t *testing.T) {
	h := newProcHarness(t)
	h.initHome("kp")
	seed(t, h, "kp")
	out := filepath.Join(h.dir, "out.kdbx")
	kpw := h.file("kdbx-pw", "kdbx export password\n")
	h.must("kp", "export", "kdbx", "--out", out, "--password-file", kpw)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := kdbx.Read(f, []byte("kdbx export password"), nil)
	if err != nil {
		t.Fatalf("kdbx.Read of the export: %v", err)
	}
	var titles []string
	for _, e := range res.Entries {
		titles = append(titles, e.Item.Title)
	}
	for _, want := range []string{"Bücher ✓ 日本", "Plain note", "Visa"} {
		if !slices.Contains(titles, want) {
			t.Errorf("kdbx export lacks %q (has %q)", want, titles)
		}
	}
	// And back into Safehold.
	h.initHome("kp2")
	r := h.importJSON("kp2", "kdbx", out, "--password-file", kpw)
	if r.Imported != 3 || r.Attachments != 1 {
		t.Errorf("kdbx re-import: %+v", r)
	}
	if cli, err := exec.LookPath("keepassxc-cli"); err == nil {
		c := exec.Command(cli, "ls", "-R", out)
		c.Stdin = strings.NewReader("kdbx export password\n")
		b, err := c.CombinedOutput()
		if err != nil || !strings.Contains(string(b), "Plain note") {
			t.Errorf("keepassxc-cli ls: %v\n%s", err, b)
		}
	} else {
		t.Log("keepassxc-cli not on PATH: not checked with KeePassXC")
	}
}

// BenchmarkImport10k imports 10,000 login entries through the agent into
// a new vault per iteration (vault KDF: the test profile). The timed part
// is the whole `safe import` process; the file's own KDF (kdbx: the
// database's, archive: the test profile) is measured by importing a
// one-entry file of the same format and reported as base-s, so the import
// work excluding the KDF is s/op minus base-s.
func BenchmarkImport10k(b *testing.B) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		b.Skip("no go command")
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "safe")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	b.Cleanup(func() { stopAgents(dir) })
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAFE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "SAFE_INSECURE_TEST_KDF=1")
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("correct horse battery\n"), 0o600)
	run := func(home string, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir = append(env, "SAFE_HOME="+filepath.Join(dir, home)), dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("safe %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	n := 0
	for _, format := range []string{"archive", "bitwarden-json", "kdbx"} {
		b.Run(format, func(b *testing.B) {
			big, err := benchFile(dir, format, 10_000)
			if err != nil {
				b.Skipf("cannot write a %s file: %v", format, err)
			}
			one, err := benchFile(dir, format, 1)
			if err != nil {
				b.Fatal(err)
			}
			args := func(f string) []string {
				a := []string{"import", format, f}
				if format != "bitwarden-json" {
					a = append(a, "--password-file", pw)
				}
				return a
			}
			var base time.Duration
			for b.Loop() {
				b.StopTimer()
				n++
				home := fmt.Sprintf("bench%d", n)
				run(home, "init", "--password-file", pw)
				start := time.Now()
				run(home, args(one)...)
				base += time.Since(start)
				b.StartTimer()
				run(home, args(big)...)
			}
			b.ReportMetric(base.Seconds()/float64(b.N), "base-s")
		})
	}
}

// benchFile writes n login entries in format and returns the path.
func benchFile(dir, format string, n int) (string, error) {
	entries := make([]importer.Entry, n)
	for i := range entries {
		entries[i] = importer.Entry{Item: item.Item{
			Type: item.Login, Title: fmt.Sprintf("Site %05d", i), Username: fmt.Sprintf("user%d@example.com", i),
			Password: fmt.Sprintf("pw-%d-Zq8#xLm2", i), URLs: []string{fmt.Sprintf("https://site%d.example.com/login", i)},
			Notes: "imported for the benchmark", Folder: "Bench",
		}}
	}
	p := filepath.Join(dir, fmt.Sprintf("bench-%d.%s", n, format))
	var buf bytes.Buffer
	var err error
	switch format {
	case "archive":
		err = archive.Write(&buf, entries, []byte("correct horse battery"), archive.WriteOptions{Params: kdf.TestParams(), Rand: random.NewDeterministic([]byte("bench")), AllowInsecure: true})
	case "bitwarden-json":
		err = importer.WriteBitwardenJSON(&buf, entries)
	case "kdbx":
		err = kdbx.Write(&buf, entries, []byte("correct horse battery"), kdbx.WriteOptions{})
	}
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, buf.Bytes(), 0o600)
}
