package sshagent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/sshkey"
)

// fakeVault is an in-memory Vault.
type fakeVault struct {
	mu    sync.Mutex
	items []item.Item
	err   error
	gets  int
}

func (v *fakeVault) List(context.Context) ([]Entry, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err != nil {
		return nil, v.err
	}
	var out []Entry
	for _, it := range v.items {
		out = append(out, Entry{ID: it.ID, Title: it.Title, Revision: it.Revision})
	}
	return out, nil
}

func (v *fakeVault) Get(_ context.Context, id string) (item.Item, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gets++
	if v.err != nil {
		return item.Item{}, v.err
	}
	for _, it := range v.items {
		if it.ID == id {
			return it, nil
		}
	}
	return item.Item{}, errors.New("not found")
}

func (v *fakeVault) set(items ...item.Item) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.items = items
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeConfirm answers from a list and records the prompts.
type fakeConfirm struct {
	mu      sync.Mutex
	answers []bool
	prompts []string
}

func (f *fakeConfirm) Confirm(_ context.Context, prompt string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prompts = append(f.prompts, prompt)
	if len(f.answers) == 0 {
		return false, errors.New("no answer")
	}
	a := f.answers[0]
	f.answers = f.answers[1:]
	return a, nil
}

func ed25519Item(t testing.TB, id, title string) item.Item {
	t.Helper()
	k, err := sshkey.Generate(rand.Reader, title)
	if err != nil {
		t.Fatal(err)
	}
	return item.Item{ID: id, Type: item.SSHKey, Title: title, Revision: 1,
		SSH: &item.SSHData{PrivateKey: string(k.PrivatePEM), PublicKey: k.AuthorizedKey, Fingerprint: k.Fingerprint}}
}

// rsaItem makes an RSA item whose stored key is encrypted with passphrase
// and which has no public key line: the agent derives it.
func rsaItem(t *testing.T, id, title, passphrase string) item.Item {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(k, title, []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	return item.Item{ID: id, Type: item.SSHKey, Title: title, Revision: 1,
		SSH: &item.SSHData{PrivateKey: string(pem.EncodeToMemory(block)), Passphrase: passphrase}}
}

func ecdsaItem(t *testing.T, id, title string) item.Item {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(k, title)
	if err != nil {
		t.Fatal(err)
	}
	return item.Item{ID: id, Type: item.SSHKey, Title: title, Revision: 1,
		SSH: &item.SSHData{PrivateKey: string(pem.EncodeToMemory(block))}}
}

type testAgent struct {
	a      *Agent
	client agent.ExtendedAgent
	path   string
	logs   *logSink
	cancel context.CancelFunc
	done   chan error
}

type logSink struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logSink) log(m string) { l.mu.Lock(); l.msgs = append(l.msgs, m); l.mu.Unlock() }
func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "\n")
}

// start serves an agent on a socket in a fresh directory and connects a
// client to it.
func start(t *testing.T, v Vault, opts Options) *testAgent {
	t.Helper()
	logs := &logSink{}
	opts.Log = logs.log
	ctx, cancel := context.WithCancel(context.Background())
	path := filepath.Join(t.TempDir(), "agent", "s")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	a := New(ctx, v, opts)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, a) }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ta := &testAgent{a: a, client: agent.NewClient(c), path: path, logs: logs, cancel: cancel, done: done}
	t.Cleanup(func() {
		c.Close()
		ta.stop(t)
	})
	return ta
}

func (ta *testAgent) stop(t *testing.T) {
	ta.cancel()
	select {
	case err := <-ta.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		ta.done <- nil // a second stop returns at once
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func pubOf(t *testing.T, it item.Item) ssh.PublicKey {
	t.Helper()
	k, err := publicOf(it)
	if err != nil {
		t.Fatal(err)
	}
	return k.pub
}

func TestListAndSign(t *testing.T) {
	ed := ed25519Item(t, "a1", "deploy key")
	rs := rsaItem(t, "b2", "rsa key", "pass phrase")
	ec := ecdsaItem(t, "c3", "ecdsa key")
	v := &fakeVault{items: []item.Item{ed, rs, ec}}
	ta := start(t, v, Options{})

	keys, err := ta.client.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("listed %d keys, want 3", len(keys))
	}
	for i, it := range []item.Item{ed, rs, ec} {
		if keys[i].Comment != it.Title || !bytes.Equal(keys[i].Blob, pubOf(t, it).Marshal()) {
			t.Fatalf("key %d is %q %s, want %q", i, keys[i].Comment, keys[i].Format, it.Title)
		}
	}
	data := []byte("message to sign")
	for _, it := range []item.Item{ed, rs, ec} {
		pub := pubOf(t, it)
		sig, err := ta.client.Sign(pub, data)
		if err != nil {
			t.Fatalf("sign with %s: %v", it.Title, err)
		}
		if err := pub.Verify(data, sig); err != nil {
			t.Fatalf("signature of %s: %v", it.Title, err)
		}
	}
	// RSA honours the SHA-2 flags.
	pub := pubOf(t, rs)
	for flag, format := range map[agent.SignatureFlags]string{
		0:                            ssh.KeyAlgoRSA,
		agent.SignatureFlagRsaSha256: ssh.KeyAlgoRSASHA256,
		agent.SignatureFlagRsaSha512: ssh.KeyAlgoRSASHA512,
	} {
		sig, err := ta.client.SignWithFlags(pub, data, flag)
		if err != nil {
			t.Fatal(err)
		}
		if sig.Format != format {
			t.Fatalf("flags %d: signature format %s, want %s", flag, sig.Format, format)
		}
		if err := pub.Verify(data, sig); err != nil {
			t.Fatal(err)
		}
	}
	// An unknown key is refused.
	other := pubOf(t, ed25519Item(t, "z", "other"))
	if _, err := ta.client.Sign(other, data); err == nil {
		t.Fatal("signed with a key the vault does not hold")
	}
	// Keys removed from the vault disappear; a new item appears.
	ed2 := ed25519Item(t, "d4", "new key")
	v.set(ed2)
	keys, _ = ta.client.List()
	if len(keys) != 1 || keys[0].Comment != "new key" {
		t.Fatalf("after a vault change: %v", keys)
	}
	if _, err := ta.client.Sign(pubOf(t, ed), data); err == nil {
		t.Fatal("signed with a key no longer in the vault")
	}
	if logs := ta.logs.String(); strings.Contains(logs, "PRIVATE KEY") || strings.Contains(logs, "pass phrase") {
		t.Fatalf("key material in the log:\n%s", logs)
	}
}

func TestCachesPublicKeys(t *testing.T) {
	ed := ed25519Item(t, "a1", "k")
	v := &fakeVault{items: []item.Item{ed}}
	ta := start(t, v, Options{})
	for range 3 {
		if keys, err := ta.client.List(); err != nil || len(keys) != 1 {
			t.Fatalf("List: %v %v", keys, err)
		}
	}
	if v.gets != 1 {
		t.Fatalf("fetched the unchanged item %d times", v.gets)
	}
	// A new revision is fetched again.
	ed.Revision = 2
	ed.Title = "renamed"
	v.set(ed)
	keys, _ := ta.client.List()
	if v.gets != 2 || keys[0].Comment != "renamed" {
		t.Fatalf("after an edit: gets %d, keys %v", v.gets, keys)
	}
}

func TestReadOnly(t *testing.T) {
	v := &fakeVault{items: []item.Item{ed25519Item(t, "a1", "k")}}
	ta := start(t, v, Options{})
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	if err := ta.client.Add(agent.AddedKey{PrivateKey: k, Comment: "x"}); err == nil {
		t.Fatal("added a key")
	}
	keys, _ := ta.client.List()
	if err := ta.client.Remove(keys[0]); err == nil {
		t.Fatal("removed a key")
	}
	if err := ta.client.RemoveAll(); err == nil {
		t.Fatal("removed all keys")
	}
	if keys, _ := ta.client.List(); len(keys) != 1 {
		t.Fatalf("keys after refused removals: %v", keys)
	}
	if _, err := ta.client.Extension("session-bind@openssh.com", nil); !errors.Is(err, agent.ErrExtensionUnsupported) {
		t.Fatalf("extension: %v", err)
	}
	if !strings.Contains(ta.logs.String(), "refused a request to add a key") {
		t.Fatalf("log:\n%s", ta.logs)
	}
}

func TestLockUnlock(t *testing.T) {
	ed := ed25519Item(t, "a1", "k")
	ta := start(t, &fakeVault{items: []item.Item{ed}}, Options{})
	if err := ta.client.Unlock([]byte("x")); err == nil {
		t.Fatal("unlocked an agent that was not locked")
	}
	if err := ta.client.Lock([]byte("lock pass")); err != nil {
		t.Fatal(err)
	}
	if err := ta.client.Lock([]byte("again")); err == nil {
		t.Fatal("locked twice")
	}
	if keys, err := ta.client.List(); err != nil || len(keys) != 0 {
		t.Fatalf("a locked agent lists %v (%v)", keys, err)
	}
	if _, err := ta.client.Sign(pubOf(t, ed), []byte("m")); err == nil {
		t.Fatal("a locked agent signed")
	}
	if err := ta.client.Unlock([]byte("wrong")); err == nil {
		t.Fatal("unlocked with a wrong passphrase")
	}
	if err := ta.client.Unlock([]byte("lock pass")); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.client.Sign(pubOf(t, ed), []byte("m")); err != nil {
		t.Fatal(err)
	}
}

func TestLifetime(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	ed := ed25519Item(t, "a1", "default lifetime")
	short := ed25519Item(t, "b2", "short lifetime")
	short.Fields = []item.Field{{Name: "SSH-Agent-Lifetime", Kind: item.KindText, Value: "10m"}}
	long := ed25519Item(t, "c3", "field cannot extend")
	long.Fields = []item.Field{{Name: FieldLifetime, Kind: item.KindText, Value: "100h"}}
	bad := ed25519Item(t, "d4", "bad field")
	bad.Fields = []item.Field{{Name: FieldLifetime, Kind: item.KindText, Value: "soon"}}
	v := &fakeVault{items: []item.Item{ed, short, long}}
	ta := start(t, v, Options{Lifetime: time.Hour, Now: clock.now})
	titles := func() string {
		keys, err := ta.client.List()
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, k := range keys {
			s = append(s, k.Comment)
		}
		return strings.Join(s, ",")
	}
	if got := titles(); got != "default lifetime,short lifetime,field cannot extend" {
		t.Fatalf("listed %s", got)
	}
	clock.add(10 * time.Minute)
	if got := titles(); got != "default lifetime,field cannot extend" {
		t.Fatalf("after 10m: %s", got)
	}
	if _, err := ta.client.Sign(pubOf(t, short), []byte("m")); err == nil {
		t.Fatal("signed with an expired key")
	}
	// A key that appears later gets its own full lifetime from then; a
	// field that does not parse makes the key unusable, not unlimited.
	late := ed25519Item(t, "e5", "late")
	v.set(ed, short, long, bad, late)
	clock.add(49 * time.Minute)
	if got := titles(); got != "default lifetime,field cannot extend,late" {
		t.Fatalf("after 59m: %s", got)
	}
	clock.add(time.Minute)
	if got := titles(); got != "late" {
		t.Fatalf("after 1h: %s", got)
	}
	if _, err := ta.client.Sign(pubOf(t, ed), []byte("m")); err == nil {
		t.Fatal("signed with an expired key")
	}
	// Editing an expired key's item does not revive it.
	ed.Revision, ed.Title = 2, "edited"
	v.set(ed, late)
	if got := titles(); got != "late" {
		t.Fatalf("after an edit: %s", got)
	}
	if !strings.Contains(ta.logs.String(), `skipping SSH key "bad field": field ssh-agent-lifetime: "soon" is not a positive duration`) {
		t.Fatalf("log:\n%s", ta.logs)
	}
}

func TestConfirm(t *testing.T) {
	ed := ed25519Item(t, "a1", "k")
	asked := ed25519Item(t, "b2", "asked")
	asked.Fields = []item.Field{{Name: FieldConfirm, Kind: item.KindText, Value: "yes"}}
	data := []byte("m")

	t.Run("flag", func(t *testing.T) {
		fc := &fakeConfirm{answers: []bool{true, false}}
		ta := start(t, &fakeVault{items: []item.Item{ed}}, Options{Confirm: true, Confirmer: fc})
		if _, err := ta.client.Sign(pubOf(t, ed), data); err != nil {
			t.Fatal(err)
		}
		if _, err := ta.client.Sign(pubOf(t, ed), data); err == nil {
			t.Fatal("signed after a no")
		}
		if _, err := ta.client.Sign(pubOf(t, ed), data); err == nil {
			t.Fatal("signed without an answer")
		}
		if len(fc.prompts) != 3 || !strings.Contains(fc.prompts[0], `"k" (SHA256:`) {
			t.Fatalf("prompts %q", fc.prompts)
		}
	})
	t.Run("field", func(t *testing.T) {
		fc := &fakeConfirm{answers: []bool{false}}
		ta := start(t, &fakeVault{items: []item.Item{ed, asked}}, Options{Confirmer: fc})
		if _, err := ta.client.Sign(pubOf(t, ed), data); err != nil {
			t.Fatal(err)
		}
		if _, err := ta.client.Sign(pubOf(t, asked), data); err == nil {
			t.Fatal("signed after a no")
		}
		if len(fc.prompts) != 1 {
			t.Fatalf("prompts %q", fc.prompts)
		}
	})
	t.Run("no confirmer", func(t *testing.T) {
		ta := start(t, &fakeVault{items: []item.Item{asked}}, Options{})
		if _, err := ta.client.Sign(pubOf(t, asked), data); err == nil {
			t.Fatal("signed with a confirm key and nobody to ask")
		}
	})
}

func TestBadItems(t *testing.T) {
	good := ed25519Item(t, "a1", "good")
	// A public key line that does not match the private key: listed from
	// the line, but never signed with.
	mismatch := ed25519Item(t, "b2", "mismatch")
	mismatch.SSH.PublicKey = good.SSH.PublicKey
	mismatch.ID = "b2"
	other := ed25519Item(t, "x", "x")
	mismatch.SSH.PrivateKey = other.SSH.PrivateKey
	mismatch.SSH.PublicKey = ed25519Item(t, "y", "y").SSH.PublicKey
	wrongPass := rsaItem(t, "c3", "wrong pass", "right")
	wrongPass.SSH.Passphrase = "wrong"
	noPass := rsaItem(t, "d4", "no pass", "right")
	noPass.SSH.Passphrase = ""
	empty := item.Item{ID: "e5", Type: item.SSHKey, Title: "empty", Revision: 1}
	junk := item.Item{ID: "f6", Type: item.SSHKey, Title: "junk\x1b[31m", Revision: 1, SSH: &item.SSHData{PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"}}
	v := &fakeVault{items: []item.Item{good, mismatch, wrongPass, noPass, empty, junk}}
	ta := start(t, v, Options{})
	keys, err := ta.client.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Comment != "good" || keys[1].Comment != "mismatch" {
		t.Fatalf("listed %v", keys)
	}
	if _, err := ta.client.Sign(pubOf(t, mismatch), []byte("m")); err == nil {
		t.Fatal("signed with a key that does not match its public line")
	}
	logs := ta.logs.String()
	for _, want := range []string{ErrKeyMismatch.Error(), `"wrong pass"`, `"no pass": ssh key is encrypted`, `"empty": the item holds no SSH key`, `"junk": invalid ssh key`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "\x1b") {
		t.Errorf("control characters in the log:\n%q", logs)
	}
	// A vault error (such as a locked vault) lists nothing and is logged.
	v.err = errors.New("the vault is locked")
	if keys, err := ta.client.List(); err != nil || len(keys) != 0 {
		t.Fatalf("with the vault locked: %v %v", keys, err)
	}
	if _, err := ta.client.Sign(pubOf(t, good), []byte("m")); err == nil {
		t.Fatal("signed with the vault locked")
	}
}

func TestListenSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new", "agent.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: os.ModeSocket | 0o600, filepath.Dir(path): os.ModeDir | 0o700} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Fatalf("%s has mode %v, want %v", p, fi.Mode(), want)
		}
	}
	// A second agent on a live socket is refused.
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v", err)
	}
	// A stale socket (nobody listening) is replaced.
	stale := filepath.Join(dir, "new", "stale")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	l2, err := Listen(stale)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l2.Close()
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the socket: %v", err)
	}
	// A regular file is never replaced.
	file := filepath.Join(dir, "new", "file")
	os.WriteFile(file, []byte("keep me"), 0o600)
	if _, err := Listen(file); !errors.Is(err, ErrSocketPath) {
		t.Fatalf("over a file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Fatal("the file was changed")
	}
	// A directory others can enter is refused; so is a relative path.
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o755)
	if _, err := Listen(filepath.Join(open, "s")); !errors.Is(err, ErrInsecureDir) {
		t.Fatalf("in a 0755 directory: %v", err)
	}
	if _, err := Listen("rel/s"); !errors.Is(err, ErrSocketPath) {
		t.Fatalf("relative: %v", err)
	}
	if _, err := Listen("/" + strings.Repeat("x", MaxSocketPath)); !errors.Is(err, ErrSocketPath) {
		t.Fatalf("too long: %v", err)
	}
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the socket: %v", err)
	}
}

func TestServeStops(t *testing.T) {
	ta := start(t, &fakeVault{items: []item.Item{ed25519Item(t, "a1", "k")}}, Options{})
	if _, err := ta.client.List(); err != nil {
		t.Fatal(err)
	}
	ta.stop(t)
	if _, err := os.Lstat(ta.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket outlived Serve: %v", err)
	}
	if _, err := ta.client.List(); err == nil {
		t.Fatal("the connection outlived Serve")
	}
}

func TestTTYNoTerminal(t *testing.T) {
	tty := TTY{Path: filepath.Join(t.TempDir(), "missing")}
	if err := tty.Check(); !errors.Is(err, ErrNoTerminal) {
		t.Fatalf("Check: %v", err)
	}
	ok, err := tty.Confirm(context.Background(), "? ")
	if ok || !errors.Is(err, ErrNoTerminal) {
		t.Fatalf("Confirm: %v %v", ok, err)
	}
}

// TestTTYAnswers asks on a real pseudo-terminal.
func TestTTYAnswers(t *testing.T) {
	for answer, want := range map[string]bool{"y\n": true, "YES\n": true, "n\n": false, "\n": false, "yes please\n": false} {
		ptm, pts, err := pty.Open()
		if err != nil {
			t.Skipf("no pty: %v", err)
		}
		go func() {
			// Answer once the prompt is shown.
			buf := make([]byte, 256)
			var seen []byte
			for !bytes.Contains(seen, []byte("Allow? ")) {
				n, err := ptm.Read(buf)
				if err != nil {
					return
				}
				seen = append(seen, buf[:n]...)
			}
			ptm.Write([]byte(answer))
		}()
		ok, err := TTY{Path: pts.Name()}.Confirm(context.Background(), "Allow? ")
		ptm.Close()
		pts.Close()
		if err != nil || ok != want {
			t.Fatalf("answer %q: %v %v, want %v", answer, ok, err, want)
		}
	}
	// No answer: the question times out as a no.
	ptm, pts, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptm.Close()
	defer pts.Close()
	go io.Copy(io.Discard, ptm)
	ok, err := TTY{Path: pts.Name(), Timeout: 50 * time.Millisecond}.Confirm(context.Background(), "Allow? ")
	if ok || err == nil {
		t.Fatalf("unanswered: %v %v", ok, err)
	}
}

// FuzzRequest feeds arbitrary agent requests to the server: it must answer
// or close, never panic, and never sign with a key the vault lacks.
func FuzzRequest(f *testing.F) {
	frame := func(b ...byte) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
		return append(out, b...)
	}
	f.Add(frame(11))                            // request identities
	f.Add(frame(13, 0, 0, 0, 1, 0, 0, 0, 0, 0)) // sign, bad blob
	f.Add(frame(17, 0, 0, 0, 0))                // add identity
	f.Add(frame(19))                            // remove all
	f.Add(frame(22, 0, 0, 0, 1, 'x'))           // lock
	f.Add(frame(27, 0, 0, 0, 3, 'a', 'b', 'c')) // extension
	it := ed25519Item(f, "a1", "k")
	f.Fuzz(func(t *testing.T, req []byte) {
		v := &fakeVault{items: []item.Item{it}}
		a := New(context.Background(), v, Options{})
		rw := &pipeRW{r: bytes.NewReader(req)}
		err := agent.ServeAgent(a, rw)
		if err == nil || (!errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "agent: request")) {
			t.Fatalf("ServeAgent: %v", err)
		}
	})
}

type pipeRW struct {
	r *bytes.Reader
	w bytes.Buffer
}

func (p *pipeRW) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeRW) Write(b []byte) (int, error) { return p.w.Write(b) }

// A key held by two items is served once, and not at all while one of the
// items has a policy field that does not parse.
func TestDuplicateKeyBadField(t *testing.T) {
	a1 := ed25519Item(t, "a1", "first")
	b2 := a1.Clone()
	b2.ID, b2.Title = "b2", "copy"
	b2.Fields = []item.Field{{Name: FieldConfirm, Kind: item.KindText, Value: "maybe"}}
	v := &fakeVault{items: []item.Item{a1, b2}}
	a := New(context.Background(), v, Options{})
	if keys, err := a.List(); err != nil || len(keys) != 0 {
		t.Fatalf("List: %v %v", keys, err)
	}
	if _, err := a.Sign(pubOf(t, a1), []byte("m")); err == nil {
		t.Fatal("signed with a key whose second item has a bad policy field")
	}
	b2.Revision, b2.Fields = 2, nil
	v.set(a1, b2)
	keys, err := a.List()
	if err != nil || len(keys) != 1 || keys[0].Comment != "first" {
		t.Fatalf("List: %v %v", keys, err)
	}
	if _, err := a.Sign(pubOf(t, a1), []byte("m")); err != nil {
		t.Fatal(err)
	}
}

// sign refuses an item whose fetched revision is not the one the policy
// was checked against.
func TestSignChecksRevision(t *testing.T) {
	k := ed25519Item(t, "a1", "k")
	a := New(context.Background(), &fakeVault{items: []item.Item{k}}, Options{})
	got, err := a.find(pubOf(t, k).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	stale := *got
	stale.revision = 7
	if _, err := a.sign(&stale, []byte("m"), 0); !errors.Is(err, ErrChanged) {
		t.Fatalf("sign with a stale revision: %v", err)
	}
	if _, err := a.sign(got, []byte("m"), 0); err != nil {
		t.Fatal(err)
	}
}
