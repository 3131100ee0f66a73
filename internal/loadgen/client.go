package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/chain"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/vlog"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newID returns a random id as clients make them: 26 lower-case base32
// characters.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// client is one simulated device: its own account, one vault whose log
// only it writes, and its own HTTPS connection.
type client struct {
	rc     *httpremote.Client
	key    *sign.PrivateKey
	device string
	vault  string
	rng    *mrand.Rand

	// The log as the server holds it.
	head  uint64
	hash  chain.Hash
	items []string
	revs  map[string]uint64

	pull, push hist
	errs       map[string]*ErrorCount
	win        *window // the current interval of a soak run, or nil
}

func newClient(t *target, key *sign.PrivateKey) (*client, error) {
	rc, err := httpremote.New(t.url, t.fingerprint, httpremote.Options{})
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	rand.Read(seed[:])
	return &client{
		rc:   rc,
		key:  key,
		rng:  mrand.New(mrand.NewChaCha8(seed)),
		revs: map[string]uint64{},
		errs: map[string]*ErrorCount{},
	}, nil
}

// register creates the client's account (which logs it in: no login, so
// no login throttling), its vault, and seeds the vault's log with n items.
func (c *client) register(ctx context.Context, n, payloadSize int) error {
	salts, err := kdf.NewSalts(rand.Reader)
	if err != nil {
		return err
	}
	header, err := kdf.Header{Params: kdf.TestParams(), Salts: salts}.MarshalBinary()
	if err != nil {
		return err
	}
	c.device, c.vault = newID(), newID()
	id := newID()
	req := api.RegisterRequest{
		Email:    "bench-" + id[:16] + "@example.com",
		Account:  id,
		KDF:      header,
		LoginKey: c.bytes(api.LoginKeySize),
		Document: c.bytes(200),
		Device:   api.DeviceHello{ID: c.device, Platform: "safe bench"},
	}
	if err := c.rc.Register(ctx, req); err != nil {
		return err
	}
	if err := c.rc.PutVault(ctx, c.vault, c.bytes(120)); err != nil {
		return err
	}
	c.hash = vlog.Genesis(c.vault)
	for first := 0; first < n; first += api.MaxAppend {
		var entries []api.Entry
		var next pending
		for i := first; i < min(n, first+api.MaxAppend); i++ {
			next, err = c.prepare(next, "", payloadSize)
			if err != nil {
				return err
			}
			entries = append(entries, next.entry)
		}
		if _, err := c.rc.Push(ctx, c.vault, c.head, entries); err != nil {
			return fmt.Errorf("seed the vault: %w", err)
		}
		c.commit(next)
	}
	return nil
}

// bytes returns n bytes from the client's generator: stand-ins for
// ciphertexts, which the server never opens.
func (c *client) bytes(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := c.rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// pending is the log after entries not yet acknowledged.
type pending struct {
	entry api.Entry
	head  uint64
	hash  chain.Hash
	items []string          // new items, in order
	revs  map[string]uint64 // revisions written
}

// prepare signs the next put after prev (the zero pending: after what the
// server holds) of item (a new item if ""), with a fresh payload.
func (c *client) prepare(prev pending, item string, payloadSize int) (pending, error) {
	if prev.revs == nil {
		prev = pending{head: c.head, hash: c.hash, revs: map[string]uint64{}}
	}
	if item == "" {
		item = newID()
		prev.items = append(prev.items, item)
	}
	rev, ok := prev.revs[item]
	if !ok {
		rev = c.revs[item]
	}
	payload := c.bytes(payloadSize)
	e := vlog.Entry{
		Op: vlog.OpPut, Seq: prev.head + 1, Time: time.Now().UnixMilli(), Prev: prev.hash,
		Revision: rev + 1, Vault: c.vault, Item: item, Device: c.device,
	}
	copy(e.Digest[:], vlog.PayloadDigest(payload))
	body, err := e.Sign(c.key)
	if err != nil {
		return pending{}, err
	}
	prev.entry = api.Entry{Body: body, Sig: e.Sig, Payload: payload}
	prev.head++
	prev.hash = vlog.Next(prev.hash, body)
	prev.revs[item] = rev + 1
	return prev, nil
}

// commit adopts p once the server acknowledged it.
func (c *client) commit(p pending) {
	c.head, c.hash = p.head, p.hash
	c.items = append(c.items, p.items...)
	for k, v := range p.revs {
		c.revs[k] = v
	}
}

// resync learns whether a push whose answer was lost was applied: the
// vault's head then moved by one.
func (c *client) resync(ctx context.Context, p pending) {
	vs, err := c.rc.Vaults(ctx)
	if err != nil {
		return
	}
	for _, v := range vs {
		if v.Vault == c.vault && v.Head == p.head {
			c.commit(p)
		}
	}
}

// errWrongAnswer is a 2xx answer that does not say what it should.
type errWrongAnswer struct{ what string }

func (e errWrongAnswer) Error() string { return e.what }

// loop sends sync requests until stop is closed: a push of one entry with
// probability pushPct/100 (an edit of one of the vault's items), else a
// pull since the head.
func (c *client) loop(ctx context.Context, stop <-chan struct{}, pushPct, payloadSize int) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		if c.rng.IntN(100) < pushPct {
			item := ""
			if len(c.items) > 0 {
				item = c.items[c.rng.IntN(len(c.items))]
			}
			p, err := c.prepare(pending{}, item, payloadSize)
			if err != nil {
				c.fail(err)
				continue
			}
			start := time.Now()
			head, err := c.rc.Push(ctx, c.vault, c.head, []api.Entry{p.entry})
			took := time.Since(start)
			c.push.record(took)
			c.win.record(took)
			switch {
			case err != nil:
				c.fail(err)
				c.resync(ctx, p)
			case head != p.head:
				c.fail(errWrongAnswer{fmt.Sprintf("push: head %d, want %d", head, p.head)})
			default:
				c.commit(p)
			}
			continue
		}
		start := time.Now()
		page, err := c.rc.Pull(ctx, c.vault, c.head)
		took := time.Since(start)
		c.pull.record(took)
		c.win.record(took)
		switch {
		case err != nil:
			c.fail(err)
		case page.Head != c.head || len(page.Entries) != 0:
			c.fail(errWrongAnswer{fmt.Sprintf("pull: head %d and %d entries, want head %d and none", page.Head, len(page.Entries), c.head)})
		}
	}
}

func (c *client) fail(err error) {
	c.win.fail()
	kind := errorKind(err)
	ec := c.errs[kind]
	if ec == nil {
		ec = &ErrorCount{Kind: kind, Example: err.Error()}
		c.errs[kind] = ec
	}
	ec.Count++
}
