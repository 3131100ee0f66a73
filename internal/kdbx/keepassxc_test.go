package kdbx

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safehold/safehold/internal/importer"
	"github.com/safehold/safehold/internal/item"
)

// The KeePassXC tests drive the real keepassxc-cli (Debian package
// keepassxc). With -update-fixtures they also refresh the committed
// testdata/keepassxc-*.kdbx files, which TestKeePassXCFixtures reads on
// machines without KeePassXC:
//
//	go test ./internal/kdbx -run TestKeePassXC -update-fixtures
var updateFixtures = flag.Bool("update-fixtures", false, "rewrite testdata/keepassxc-*.kdbx with keepassxc-cli")

const fixturePassword = "fixture password ü"

// attachment is the binary attachment KeePassXC adds to the fixtures.
var attachment = []byte("\x00\x01binary attachment\xff\xfe\n")

func needKeePassXC(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("keepassxc-cli"); err != nil {
		t.Skip("keepassxc-cli is not on PATH: install Debian's keepassxc package to run the KeePassXC interoperability tests")
	}
}

// kx runs keepassxc-cli with stdin and returns its standard output.
func kx(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("keepassxc-cli", args...)
	cmd.Stdin = strings.NewReader(stdin)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home, "QT_QPA_PLATFORM=offscreen")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("keepassxc-cli %s: %v\n%s%s", args[0], err, out.String(), errb.String())
	}
	return out.String()
}

// populate adds the fixture entries with keepassxc-cli: a login in a group
// with an attachment and a password change (history), a root entry, and
// with recycle an entry moved to the recycle bin (which makes KeePassXC
// save KDBX 4.1: it records the entry's previous group).
func populate(t *testing.T, db string, recycle bool, keyArgs ...string) {
	t.Helper()
	pw := fixturePassword + "\n"
	att := filepath.Join(t.TempDir(), "doc.bin")
	if err := os.WriteFile(att, attachment, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) {
		kx(t, stdin, append(append([]string{args[0], "-q"}, keyArgs...), args[1:]...)...)
	}
	run(pw, "mkdir", db, "Work")
	run(pw, "mkdir", db, "Work/Deep")
	run(pw+"first pässword\n", "add", "-u", "alice", "--url", "https://mail.example.com/login", "--notes", "line one\nline two", "-p", db, "Work/Deep/Mail ✉")
	run(pw, "attachment-import", db, "Work/Deep/Mail ✉", "doc.bin", att)
	run(pw+"second pässword\n", "edit", "-p", db, "Work/Deep/Mail ✉")
	run(pw+"p2\n", "add", "-u", "bob", "-p", db, "Top")
	if recycle {
		run(pw+"x\n", "add", db, "Trash me")
		run(pw, "rm", db, "Trash me")
	}
}

// checkPopulated checks what Read made of a populated database.
func checkPopulated(t *testing.T, res *importer.Result, recycle bool) {
	t.Helper()
	if len(res.Entries) != 2 {
		t.Fatalf("got %d entries, want 2; skipped %+v", len(res.Entries), res.Skipped)
	}
	mail := findEntry(t, res, "Mail ✉")
	it := mail.Item
	if it.Type != item.Login || it.Folder != "Work/Deep" || it.Username != "alice" || it.Password != "second pässword" ||
		len(it.URLs) != 1 || it.URLs[0] != "https://mail.example.com/login" || it.Notes != "line one\nline two" {
		t.Errorf("mail entry: %+v", it)
	}
	if it.Created.IsZero() || it.Modified.Before(it.Created) {
		t.Errorf("times: created %v modified %v", it.Created, it.Modified)
	}
	if len(mail.Attachments) != 1 || mail.Attachments[0].Name != "doc.bin" || !bytes.Equal(mail.Attachments[0].Data, attachment) {
		t.Errorf("attachments: %+v", mail.Attachments)
	}
	if len(mail.History) == 0 || mail.History[len(mail.History)-1].Password != "first pässword" {
		t.Errorf("history (oldest first) should end with the first password: %+v", mail.History)
	}
	top := findEntry(t, res, "Top")
	if top.Item.Folder != "" || top.Item.Username != "bob" || top.Item.Password != "p2" {
		t.Errorf("top entry: %+v", top.Item)
	}
	if recycle && (len(res.Skipped) != 1 || res.Skipped[0].Reason != "in the recycle bin" || !strings.Contains(res.Skipped[0].Where, "Trash me")) {
		t.Errorf("skipped: %+v", res.Skipped)
	}
	if !recycle && len(res.Skipped) != 0 {
		t.Errorf("skipped: %+v", res.Skipped)
	}
}

func readFile(t *testing.T, path string, password, keyFile []byte) *importer.Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Read(f, password, keyFile)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return res
}

// fixture describes one KeePassXC-made database.
type fixture struct {
	name    string // testdata/keepassxc-NAME.kdbx
	kdf     string // as db-info prints it
	major   uint16
	keyFile bool
	recycle bool
}

var fixtures = []fixture{
	{name: "kdbx31", kdf: "AES", major: 3},
	{name: "kdbx41-aes", kdf: "AES", major: 4, recycle: true},
	{name: "argon2d", kdf: "Argon2d", major: 4, recycle: true},
	{name: "argon2id", kdf: "Argon2id", major: 4},
	{name: "keyfile", kdf: "AES", major: 3, keyFile: true},
}

// makeFixture creates one database with keepassxc-cli. KDBX 3.1 files come
// from db-create (KeePassXC 2.7's command line creates KDBX 3.1 with
// AES-KDF); keepassxc-cli cannot choose Argon2, so the Argon2 files start
// as an empty database from Write with a tiny work factor that KeePassXC
// then opens, fills and saves again, keeping the KDF.
func makeFixture(t *testing.T, fx fixture, dir string) (db string, keyFile []byte) {
	db = filepath.Join(dir, "keepassxc-"+fx.name+".kdbx")
	var keyArgs []string
	switch fx.name {
	case "kdbx31", "kdbx41-aes", "keyfile":
		args := []string{"db-create", "-q", "-p", "-t", "100"}
		if fx.keyFile {
			kf := filepath.Join(dir, "keepassxc-"+fx.name+".keyx")
			args = append(args, "--set-key-file", kf)
			keyArgs = []string{"-k", kf}
		}
		kx(t, fixturePassword+"\n"+fixturePassword+"\n", append(args, db)...)
	default:
		kdf := Argon2id
		if fx.name == "argon2d" {
			kdf = Argon2d
		}
		o := tiny(kdf, AES256, 5)
		o.Rand = nil
		var buf bytes.Buffer
		if err := Write(&buf, nil, []byte(fixturePassword), o); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	populate(t, db, fx.recycle, keyArgs...)
	info := kx(t, fixturePassword+"\n", append(append([]string{"db-info", "-q"}, keyArgs...), db)...)
	if !strings.Contains(info, "KDF: "+fx.kdf) {
		t.Fatalf("db-info says\n%s\nwant KDF %s", info, fx.kdf)
	}
	if fx.keyFile {
		var err error
		if keyFile, err = os.ReadFile(strings.TrimSuffix(db, ".kdbx") + ".keyx"); err != nil {
			t.Fatal(err)
		}
	}
	return db, keyFile
}

func checkVersion(t *testing.T, path string, major uint16) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := readHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	if h.major != major {
		t.Errorf("%s is KDBX %d.%d, want major version %d", path, h.major, h.minor, major)
	}
}

// TestKeePassXCCreates reads databases that keepassxc-cli creates now.
func TestKeePassXCCreates(t *testing.T) {
	needKeePassXC(t)
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			dir := t.TempDir()
			if *updateFixtures {
				dir = "testdata"
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, ext := range []string{".kdbx", ".keyx"} {
					os.Remove(filepath.Join(dir, "keepassxc-"+fx.name+ext))
				}
			}
			db, keyFile := makeFixture(t, fx, dir)
			checkVersion(t, db, fx.major)
			checkPopulated(t, readFile(t, db, []byte(fixturePassword), keyFile), fx.recycle)
			if fx.keyFile {
				if _, err := Read(bytes.NewReader(mustRead(t, db)), []byte(fixturePassword), nil); err == nil {
					t.Error("opened a key-file database without its key file")
				}
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeePassXCFixtures reads the committed KeePassXC-made files; it needs
// no KeePassXC.
func TestKeePassXCFixtures(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			db := filepath.Join("testdata", "keepassxc-"+fx.name+".kdbx")
			var keyFile []byte
			if fx.keyFile {
				keyFile = mustRead(t, strings.TrimSuffix(db, ".kdbx")+".keyx")
			}
			checkVersion(t, db, fx.major)
			checkPopulated(t, readFile(t, db, []byte(fixturePassword), keyFile), fx.recycle)
			_, err := Read(bytes.NewReader(mustRead(t, db)), []byte("not it"), keyFile)
			if err == nil || !strings.Contains(err.Error(), "wrong password") {
				t.Errorf("wrong password: %v", err)
			}
		})
	}
}

// TestKeePassXCOpensWrite checks that KeePassXC reads what Write produces,
// value for value.
func TestKeePassXCOpensWrite(t *testing.T) {
	needKeePassXC(t)
	for _, c := range []Cipher{AES256, ChaCha20} {
		dir := t.TempDir()
		db := filepath.Join(dir, "export.kdbx")
		var buf bytes.Buffer
		o := tiny(Argon2id, c, 9)
		if err := Write(&buf, richEntries(), []byte("export pw"), o); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		pw := "export pw\n"
		ls := kx(t, pw, "ls", "-q", "-R", "-f", db)
		for _, want := range []string{"Wi-Fi at home", "Work/Dev/GitHub ✓ 日本語", "Finance/Bank", "Recycle Bin/Old thing"} {
			if !strings.Contains(ls, want+"\n") {
				t.Errorf("ls -R -f lacks %q:\n%s", want, ls)
			}
		}
		gh := "Work/Dev/GitHub ✓ 日本語"
		got := kx(t, pw, "show", "-q", "-s", "-a", "UserName", "-a", "Password", "-a", "URL", "-a", "API key", "-a", "Recovery hint", "-a", "KP2A_URL_1", db, gh)
		want := "octo@example.com\npä$$wörd \"<&>\" 🔑\nhttps://github.com/login\nsk-secret-123\nthe blue notebook\nhttps://gist.github.com\n"
		if got != want {
			t.Errorf("show attributes:\n%q\nwant\n%q", got, want)
		}
		notes := kx(t, pw, "show", "-q", "-a", "Notes", db, gh)
		if !strings.Contains(notes, "tabbed <xml> & \"quotes\"") {
			t.Errorf("notes: %q", notes)
		}
		otp := kx(t, pw, "show", "-q", "-s", "-a", "otp", db, "Finance/Bank")
		if strings.TrimSpace(otp) != richEntries()[2].Item.TOTP {
			t.Errorf("otp: %q", otp)
		}
		// KeePassXC computes a code from the otp attribute.
		code := strings.TrimSpace(kx(t, pw, "show", "-q", "-t", db, gh))
		if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
			t.Errorf("totp code %q", code)
		}
		// --stdout prints text, so compare the text attachment; the
		// binary one is compared through a file.
		att := kx(t, pw, "attachment-export", "-q", "--stdout", db, gh, "notes.txt", "-")
		if att != string(richEntries()[0].Attachments[1].Data) {
			t.Errorf("attachment: %q", att)
		}
		out := filepath.Join(dir, "key.bin")
		kx(t, pw, "attachment-export", "-q", db, gh, "id_ed25519", out)
		if att := mustRead(t, out); !bytes.Equal(att, richEntries()[0].Attachments[0].Data) {
			t.Errorf("attachment: %q", att)
		}
		note := kx(t, pw, "show", "-q", "-a", "Notes", db, "Wi-Fi at home")
		if !strings.HasPrefix(note, "SSID: house\ncontrol") {
			t.Errorf("note: %q", note)
		}
	}
}

// TestWriteReadLargeV3 exercises the KDBX 3.1 reader past one cbc chunk.
func TestWriteReadLargeV3(t *testing.T) {
	entries := manyEntries(300)
	data := writeV3(t, entries, []byte("pw"), 10, true, rand.NewChaCha8([32]byte{9}))
	res, err := Read(bytes.NewReader(data), []byte("pw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 300 {
		t.Errorf("got %d entries", len(res.Entries))
	}
}

// TestKeePassXCKeyFileOnly reads a database that a key file alone opens,
// given an empty password as a prompt would return it.
func TestKeePassXCKeyFileOnly(t *testing.T) {
	needKeePassXC(t)
	dir := t.TempDir()
	db, kf := filepath.Join(dir, "k.kdbx"), filepath.Join(dir, "k.keyx")
	kx(t, "", "db-create", "-q", "-t", "100", "--set-key-file", kf, db)
	kx(t, "pw\n", "add", "-q", "--no-password", "-k", kf, "-u", "u", "-p", db, "Only key")
	key := mustRead(t, kf)
	for _, pw := range [][]byte{nil, {}} {
		res := readFile(t, db, pw, key)
		if len(res.Entries) != 1 || res.Entries[0].Item.Password != "pw" {
			t.Errorf("password %q: %+v", pw, res)
		}
	}
	if _, err := Read(bytes.NewReader(mustRead(t, db)), []byte("x"), key); err == nil {
		t.Error("a password was accepted for a key-file-only database")
	}
}
