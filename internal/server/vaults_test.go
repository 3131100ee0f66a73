package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/vlog"
)

func TestVaults(t *testing.T) {
	e := newEnv(t)
	u := e.register("nina@example.org")
	v := u.newVault()

	var vs api.Vaults
	want(t, u.do("GET", api.PathVaults, nil, &vs), 200, "")
	if len(vs.Vaults) != 1 || vs.Vaults[0].Vault != v || vs.Vaults[0].Head != 0 || string(vs.Vaults[0].Record) != "sealed vault record" {
		t.Fatalf("vaults %+v", vs)
	}
	row, err := e.store.Vault(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	if g := vlog.Genesis(v); !bytes.Equal(row.HeadHash, g[:]) {
		t.Fatal("a new vault's head hash is not its genesis")
	}
	// Replace the record.
	want(t, u.do("PUT", api.PathVaults+"/"+v, api.VaultPut{Record: []byte("record 2")}, nil), 204, "")
	want(t, u.do("GET", api.PathVaults, nil, &vs), 200, "")
	if string(vs.Vaults[0].Record) != "record 2" {
		t.Fatal("record not replaced")
	}
	want(t, u.do("PUT", api.PathVaults+"/"+v, api.VaultPut{}, nil), 400, api.CodeBadRequest)
	want(t, u.do("PUT", api.PathVaults+"/NOTANID", api.VaultPut{Record: []byte("x")}, nil), 400, api.CodeBadRequest)

	// Another account: cannot take the id, cannot read or write the log.
	o := e.register("oscar@example.org")
	want(t, o.do("PUT", api.PathVaults+"/"+v, api.VaultPut{Record: []byte("mine")}, nil), 403, api.CodeForbidden)
	_, r := o.logPage(v, "")
	want(t, r, 404, api.CodeNotFound)
	w := u.writer(v)
	ent := w.entry(vlog.OpPut, newID(t), 1, []byte("payload"))
	ow := o.writer(v)
	want(t, ow.append(0, ent), 404, api.CodeNotFound)
	want(t, o.do("GET", api.PathVaults, nil, &vs), 200, "")
	if len(vs.Vaults) != 0 {
		t.Fatal("another account lists the vault")
	}
	_, r = u.logPage(newID(t), "")
	want(t, r, 404, api.CodeNotFound)
}

func TestLogAppendAndPage(t *testing.T) {
	e := newEnv(t)
	u := e.register("olga@example.org")
	v := u.newVault()
	w := u.writer(v)
	a, b := newID(t), newID(t)
	var entries []api.Entry
	entries = append(entries,
		w.entry(vlog.OpPut, a, 1, []byte("a1")),
		w.entry(vlog.OpPut, b, 1, []byte("b1")),
		w.entry(vlog.OpPut, a, 2, []byte("a2")))
	var out api.LogAppended
	want(t, u.do("POST", api.PathVaults+"/"+v+"/log", api.LogAppend{Base: 0, Entries: entries}, &out), 200, "")
	if out.Head != 3 {
		t.Fatalf("head %d", out.Head)
	}
	// A second device of the same account appends on top.
	d := u.newDevice()
	dw := d.writer(v)
	dw.seq, dw.head = w.seq, w.head
	e4 := dw.entry(vlog.OpPut, b, 2, []byte("b2"))
	want(t, dw.append(3, e4), 200, "")
	entries = append(entries, e4)
	row, _ := e.store.Vault(context.Background(), v)
	if !bytes.Equal(row.HeadHash, dw.head[:]) || row.Head != 4 {
		t.Fatal("stored head hash is not the chain after the last entry")
	}

	p, r := u.logPage(v, "")
	want(t, r, 200, "")
	if p.Head != 4 || len(p.Entries) != 4 {
		t.Fatalf("page head %d, %d entries", p.Head, len(p.Entries))
	}
	for i := range entries {
		if !bytes.Equal(p.Entries[i].Body, entries[i].Body) || !bytes.Equal(p.Entries[i].Sig, entries[i].Sig) || !bytes.Equal(p.Entries[i].Payload, entries[i].Payload) {
			t.Fatalf("entry %d differs", i+1)
		}
	}
	p, _ = u.logPage(v, "?since=1&limit=2")
	if p.Head != 4 || len(p.Entries) != 2 || !bytes.Equal(p.Entries[0].Body, entries[1].Body) {
		t.Fatalf("page since=1 limit=2: %d entries", len(p.Entries))
	}
	p, _ = u.logPage(v, "?since=4")
	if p.Head != 4 || len(p.Entries) != 0 || p.Entries == nil {
		t.Fatalf("page at the head: %+v", p)
	}
	p, _ = u.logPage(v, "?since=9")
	if p.Head != 4 || len(p.Entries) != 0 {
		t.Fatalf("page past the head: %+v", p)
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?since=-1", "?since=x", "?limit=1.5"} {
		_, r := u.logPage(v, q)
		want(t, r, 400, api.CodeBadRequest)
	}
	want(t, u.do("POST", api.PathVaults+"/"+v+"/log", api.LogAppend{Base: 4}, nil), 400, api.CodeBadRequest)
	many := make([]api.Entry, api.MaxAppend+1)
	for i := range many {
		many[i] = api.Entry{Body: []byte{1}, Sig: []byte{1}}
	}
	want(t, u.do("POST", api.PathVaults+"/"+v+"/log", api.LogAppend{Base: 4, Entries: many}, nil), 413, api.CodeTooLarge)
	huge := bytes.NewReader(append(append([]byte(`{"base":4,"entries":[{"body":"`), bytes.Repeat([]byte("A"), api.MaxJSONBody)...), `"}]}`...))
	want(t, e.raw("POST", api.PathVaults+"/"+v+"/log", u.sess.AccessToken, "application/json", huge, nil), 413, api.CodeTooLarge)
}

func TestLogAppendRules(t *testing.T) {
	e := newEnv(t)
	u := e.register("peggy@example.org")
	v := u.newVault()
	w := u.writer(v)
	item := newID(t)
	want(t, w.append(0, w.entry(vlog.OpPut, item, 1, []byte("p1"))), 200, "")
	other := u.newVault()
	d := u.newDevice()

	payload := []byte("p2")
	cases := []struct {
		name string
		rule string
		e    func() api.Entry
	}{
		{"garbage body", api.RuleMalformed, func() api.Entry { return api.Entry{Body: []byte("SHLGxxxx"), Sig: []byte{1}, Payload: payload} }},
		{"no signature", api.RuleMalformed, func() api.Entry {
			x := w.custom(func(x *vlog.Entry) {}, payload)
			x.Sig = nil
			return x
		}},
		{"huge signature", api.RuleMalformed, func() api.Entry {
			x := w.custom(func(x *vlog.Entry) {}, payload)
			x.Sig = make([]byte, vlog.MaxSig+1)
			return x
		}},
		{"other vault", api.RuleVault, func() api.Entry { return w.custom(func(x *vlog.Entry) { x.Vault = other }, payload) }},
		{"seq skips", api.RuleSeq, func() api.Entry { return w.custom(func(x *vlog.Entry) { x.Seq = 3 }, payload) }},
		{"seq repeats", api.RuleSeq, func() api.Entry { return w.custom(func(x *vlog.Entry) { x.Seq = 1 }, payload) }},
		{"prev wrong", api.RulePrev, func() api.Entry { return w.custom(func(x *vlog.Entry) { x.Prev = vlog.Genesis(v) }, payload) }},
		{"other device", api.RuleDevice, func() api.Entry { return w.custom(func(x *vlog.Entry) { x.Device = d.device }, payload) }},
		{"item not an id", api.RuleItem, func() api.Entry { return w.custom(func(x *vlog.Entry) { x.Item = "item-1" }, payload) }},
		{"put without payload", api.RulePayload, func() api.Entry { return w.custom(func(x *vlog.Entry) {}, nil) }},
		{"payload too large", api.RulePayload, func() api.Entry {
			return w.custom(func(x *vlog.Entry) {}, make([]byte, MaxPayload+1))
		}},
		{"digest wrong", api.RuleDigest, func() api.Entry {
			x := w.custom(func(x *vlog.Entry) {}, payload)
			x.Payload = []byte("p3")
			return x
		}},
		{"new item at revision 2", api.RuleRevision, func() api.Entry { return w.custom(func(x *vlog.Entry) { x.Revision = 2 }, payload) }},
		{"revision repeats", api.RuleRevision, func() api.Entry {
			return w.custom(func(x *vlog.Entry) { x.Item, x.Revision = item, 1 }, payload)
		}},
		{"revision skips", api.RuleRevision, func() api.Entry {
			return w.custom(func(x *vlog.Entry) { x.Item, x.Revision = item, 3 }, payload)
		}},
		{"purge with payload", api.RulePayload, func() api.Entry {
			return w.custom(func(x *vlog.Entry) { x.Op, x.Item, x.Revision, x.Digest = vlog.OpPurge, item, 1, [64]byte{} }, payload)
		}},
		{"purge of absent item", api.RulePurged, func() api.Entry {
			return w.custom(func(x *vlog.Entry) { x.Op, x.Digest = vlog.OpPurge, [64]byte{} }, nil)
		}},
		{"purge of another revision", api.RuleRevision, func() api.Entry {
			return w.custom(func(x *vlog.Entry) { x.Op, x.Item, x.Revision, x.Digest = vlog.OpPurge, item, 2, [64]byte{} }, nil)
		}},
		{"purge with digest", api.RuleDigest, func() api.Entry {
			return w.custom(func(x *vlog.Entry) { x.Op, x.Item, x.Revision = vlog.OpPurge, item, 1 }, nil)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.append(1, c.e())
			want(t, r, 422, api.CodeInvalidEntry)
			if r.err.Rule != c.rule || r.err.Seq != 2 || !strings.Contains(r.err.Message, "entry 2") {
				t.Fatalf("got rule %q seq %d (%s), want rule %q seq 2", r.err.Rule, r.err.Seq, r.err.Message, c.rule)
			}
		})
	}
	// The first bad entry of a batch is named, and nothing is appended.
	good := w.custom(func(x *vlog.Entry) { x.Item, x.Revision = item, 2 }, payload)
	bad := w.custom(func(x *vlog.Entry) { x.Seq = 3 }, payload) // prev is wrong too; seq is checked first
	r := w.append(1, good, bad)
	want(t, r, 422, api.CodeInvalidEntry)
	if r.err.Seq != 3 {
		t.Fatalf("named entry %d", r.err.Seq)
	}
	// Within one batch, the revision rule follows the batch.
	ww := *w
	e2 := ww.entry(vlog.OpPut, item, 2, []byte("p2"))
	e3 := ww.entry(vlog.OpPut, item, 2, []byte("p2 again"))
	r = w.append(1, e2, e3)
	want(t, r, 422, api.CodeInvalidEntry)
	if r.err.Seq != 3 || r.err.Rule != api.RuleRevision {
		t.Fatalf("got %+v", r.err)
	}
	if p, _ := u.logPage(v, ""); p.Head != 1 || len(p.Entries) != 1 {
		t.Fatalf("a refused batch changed the log: head %d", p.Head)
	}

	// A stale base: 409 with the head.
	r = w.append(0, w.custom(func(x *vlog.Entry) {}, payload))
	want(t, r, 409, api.CodeStale)
	if r.err.Head != 1 {
		t.Fatalf("stale head %d", r.err.Head)
	}
	r = w.append(7, w.custom(func(x *vlog.Entry) {}, payload))
	want(t, r, 409, api.CodeStale)
}

func TestConcurrentAppends(t *testing.T) {
	e := newEnv(t)
	u := e.register("quentin@example.org")
	v := u.newVault()
	d := u.newDevice()
	const rounds = 5
	for round := range rounds {
		var (
			wg    sync.WaitGroup
			codes [2]int
		)
		row, _ := e.store.Vault(context.Background(), v)
		for i, x := range []*user{u, d} {
			w := x.writer(v)
			w.seq = row.Head
			copy(w.head[:], row.HeadHash)
			ent := w.entry(vlog.OpPut, newID(t), 1, []byte(fmt.Sprintf("r%d d%d", round, i)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = w.append(row.Head, ent).status
			}()
		}
		wg.Wait()
		if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
			t.Fatalf("round %d: two appends on one base answered %v", round, codes)
		}
	}
	if p, _ := u.logPage(v, ""); p.Head != rounds {
		t.Fatalf("head %d", p.Head)
	}
}

func TestPurge(t *testing.T) {
	e := newEnv(t)
	u := e.register("rita@example.org")
	v := u.newVault()
	w := u.writer(v)
	a, keep := newID(t), newID(t)
	want(t, w.append(0,
		w.entry(vlog.OpPut, a, 1, []byte("a1")),
		w.entry(vlog.OpPut, keep, 1, []byte("k1")),
		w.entry(vlog.OpPut, a, 2, []byte("a2"))), 200, "")
	blob := newID(t)
	want(t, u.putBlob(v, a, blob, frames(2, 100)), 204, "")

	want(t, w.append(3, w.entry(vlog.OpPurge, a, 2, nil)), 200, "")
	p, _ := u.logPage(v, "")
	if len(p.Entries) != 4 {
		t.Fatalf("%d entries", len(p.Entries))
	}
	for i, x := range p.Entries {
		hasPayload := x.Payload != nil
		if hasPayload != (i == 1) {
			t.Fatalf("entry %d: payload present %t after the purge", i+1, hasPayload)
		}
	}
	want(t, u.getBlob(v, a, blob).r, 404, api.CodeNotFound)
	// Purged twice: refused. A new put at revision 3 brings the item back.
	want(t, w.append(4, w.custom(func(x *vlog.Entry) { x.Op, x.Item, x.Revision, x.Digest = vlog.OpPurge, a, 2, [64]byte{} }, nil)), 422, api.CodeInvalidEntry)
	want(t, w.append(4, w.custom(func(x *vlog.Entry) { x.Item, x.Revision = a, 1 }, []byte("a?"))), 422, api.CodeInvalidEntry)
	want(t, w.append(4, w.entry(vlog.OpPut, a, 3, []byte("a3"))), 200, "")

	// A put purged later in the same append may come without payload (the
	// client purged it before syncing); with one, its digest still counts.
	b, c := newID(t), newID(t)
	ww := *w
	nb := ww.entry(vlog.OpPut, b, 1, []byte("b1"))
	nb.Payload = nil
	batch := []api.Entry{nb, ww.entry(vlog.OpPut, b, 2, []byte("b2")), ww.entry(vlog.OpPurge, b, 2, nil)}
	cp := ww.entry(vlog.OpPut, c, 1, []byte("c1"))
	cp.Payload = []byte("c1 forged")
	r := w.append(5, append(batch, cp, ww.entry(vlog.OpPurge, c, 1, nil))...)
	want(t, r, 422, api.CodeInvalidEntry)
	if r.err.Seq != 9 || r.err.Rule != api.RuleDigest {
		t.Fatalf("got %+v", r.err)
	}
	want(t, w.append(5, batch...), 200, "")
	p, _ = u.logPage(v, "?since=5")
	for i, x := range p.Entries {
		if x.Payload != nil {
			t.Fatalf("entry %d: a purged put kept its payload", 6+i)
		}
	}
}

// frames returns n frames of size bytes each, and the body that carries
// them.
func frames(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Repeat([]byte{byte(i + 1)}, size)
	}
	return out
}

func frameBody(chunks [][]byte) []byte {
	var b bytes.Buffer
	for _, c := range chunks {
		binary.Write(&b, binary.BigEndian, uint32(len(c)))
		b.Write(c)
	}
	return b.Bytes()
}

func (u *user) putBlob(vault, item, blob string, chunks [][]byte) resp {
	return u.e.raw("PUT", api.PathVaults+"/"+vault+"/blobs/"+item+"/"+blob, u.sess.AccessToken,
		"application/octet-stream", bytes.NewReader(frameBody(chunks)), nil)
}

type blobResp struct {
	r      resp
	chunks [][]byte
}

func (u *user) getBlob(vault, item, blob string) blobResp {
	r := u.e.raw("GET", api.PathVaults+"/"+vault+"/blobs/"+item+"/"+blob, u.sess.AccessToken, "", nil, nil)
	out := blobResp{r: r}
	if r.status != 200 {
		return out
	}
	b := r.body
	for len(b) > 0 {
		if len(b) < 4 {
			u.e.t.Fatal("truncated frame header")
		}
		n := binary.BigEndian.Uint32(b)
		if len(b) < 4+int(n) {
			u.e.t.Fatal("truncated frame")
		}
		out.chunks = append(out.chunks, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

func TestBlobs(t *testing.T) {
	e := newEnv(t)
	u := e.register("sam@example.org")
	v := u.newVault()
	item, blob := newID(t), newID(t)

	chunks := [][]byte{bytes.Repeat([]byte{1}, maxFrame), bytes.Repeat([]byte{2}, 1000), bytes.Repeat([]byte{3}, minFrame)}
	want(t, u.putBlob(v, item, blob, chunks), 204, "")
	got := u.getBlob(v, item, blob)
	want(t, got.r, 200, "")
	if got.r.header.Get("Content-Type") != "application/octet-stream" || len(got.chunks) != len(chunks) {
		t.Fatalf("download: %d chunks", len(got.chunks))
	}
	for i := range chunks {
		if !bytes.Equal(got.chunks[i], chunks[i]) {
			t.Fatalf("chunk %d differs", i)
		}
	}
	// A new upload replaces the old; a bad upload leaves it alone.
	want(t, u.putBlob(v, item, blob, frames(1, 64)), 204, "")
	put := func(body []byte) resp {
		return e.raw("PUT", api.PathVaults+"/"+v+"/blobs/"+item+"/"+blob, u.sess.AccessToken, "application/octet-stream", bytes.NewReader(body), nil)
	}
	good := frameBody(frames(2, 64))
	for name, body := range map[string][]byte{
		"empty":           nil,
		"short header":    {0, 0},
		"frame too short": frameBody([][]byte{make([]byte, minFrame-1)}),
		"frame too long":  append([]byte{0, 1, 0, 33}, make([]byte, 100)...),
		"truncated frame": good[:len(good)-1],
		"trailing bytes":  append(bytes.Clone(good), 0, 0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			want(t, put(body), 400, api.CodeBadRequest)
		})
	}
	got = u.getBlob(v, item, blob)
	if len(got.chunks) != 1 || len(got.chunks[0]) != 64 {
		t.Fatal("a refused upload changed the blob")
	}

	want(t, u.getBlob(v, item, newID(t)).r, 404, api.CodeNotFound)
	want(t, u.putBlob(v, "bad", blob, frames(1, 64)), 400, api.CodeBadRequest)
	o := e.register("trudy@example.org")
	want(t, o.getBlob(v, item, blob).r, 404, api.CodeNotFound)
	want(t, o.putBlob(v, item, blob, frames(1, 64)), 404, api.CodeNotFound)
	want(t, u.putBlob(newID(t), item, blob, frames(1, 64)), 404, api.CodeNotFound)
}

// TestBlobStreams uploads through a pipe, frame by frame, as a client
// streaming a large file would.
func TestBlobStreams(t *testing.T) {
	e := newEnv(t)
	u := e.register("uma@example.org")
	v := u.newVault()
	item, blob := newID(t), newID(t)
	pr, pw := io.Pipe()
	const n = 64
	go func() {
		for i := range n {
			pw.Write(frameBody([][]byte{bytes.Repeat([]byte{byte(i)}, maxFrame)}))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", e.url+api.PathVaults+"/"+v+"/blobs/"+item+"/"+blob, pr)
	req.Header.Set(api.HeaderAuth, "Bearer "+u.sess.AccessToken)
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("status %d", res.StatusCode)
	}
	got := u.getBlob(v, item, blob)
	if len(got.chunks) != n || got.chunks[n-1][0] != n-1 {
		t.Fatalf("%d chunks back", len(got.chunks))
	}
}
