package peer

import (
	"context"
	"iter"
	"sync/atomic"
	"testing"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/folder"
	"github.com/safehold/safehold/internal/remote/remotetest"
)

// Backings for the tests.

// serve runs Serve on conn with backing and returns its result.
func serve(conn MsgConn, backing remote.Remote) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), conn, backing) }()
	return done
}

// connect runs Serve with backing on one end of a pipe (depth messages
// each way) and returns a Client on the other end. Cleanup closes the
// Client and checks that Serve ended cleanly.
func connect(t testing.TB, backing remote.Remote, depth int) (*Client, *pipe) {
	t.Helper()
	a, b := newPipe(depth, MaxMessage)
	done := serve(b, backing)
	c := NewClient(a)
	t.Cleanup(func() {
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c, a
}

// registered returns a folder holding an account with one vault.
func registered(t testing.TB) (f *folder.Folder, vault string) {
	t.Helper()
	f, err := folder.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = f.Register(ctx, api.RegisterRequest{
		Email: "peer@example.com", Account: remotetest.NewID(), KDF: remotetest.KDFHeader(t),
		LoginKey: make([]byte, api.LoginKeySize), Document: []byte("doc"), Device: api.DeviceHello{ID: remotetest.NewID()},
	})
	if err != nil {
		t.Fatal(err)
	}
	vault = remotetest.NewID()
	if err := f.PutVault(ctx, vault, []byte("record")); err != nil {
		t.Fatal(err)
	}
	return f, vault
}

// failing is a backing whose every method fails with err, without reading
// an upload.
type failing struct{ err error }

func (f failing) Prelogin(context.Context, string) ([]byte, error)                 { return nil, f.err }
func (f failing) Register(context.Context, api.RegisterRequest) error              { return f.err }
func (f failing) Login(context.Context, api.LoginRequest) error                    { return f.err }
func (f failing) Account(context.Context) (api.Account, error)                     { return api.Account{}, f.err }
func (f failing) UpdateAccount(context.Context, api.AccountUpdate) (uint64, error) { return 0, f.err }
func (f failing) Vaults(context.Context) ([]api.Vault, error)                      { return nil, f.err }
func (f failing) PutVault(context.Context, string, []byte) error                   { return f.err }
func (f failing) Pull(context.Context, string, uint64) (api.LogPage, error) {
	return api.LogPage{}, f.err
}
func (f failing) Push(context.Context, string, uint64, []api.Entry) (uint64, error) {
	return 0, f.err
}
func (f failing) PutBlob(context.Context, string, string, string, iter.Seq2[[]byte, error]) error {
	return f.err
}
func (f failing) GetBlob(context.Context, string, string, string, func(int, []byte) error) error {
	return f.err
}
func (f failing) Close() error { return nil }

// spy wraps a backing: it counts calls and the blob chunks that pass,
// and runs before (if set) at the start of each call, which may block.
type spy struct {
	remote.Remote
	before    func(op string)
	calls     atomic.Int64
	putChunks atomic.Int64 // chunks the backing has read from uploads
	getChunks atomic.Int64 // chunks the backing has handed out
}

func (s *spy) enter(op string) {
	s.calls.Add(1)
	if s.before != nil {
		s.before(op)
	}
}

func (s *spy) Prelogin(ctx context.Context, email string) ([]byte, error) {
	s.enter("prelogin")
	return s.Remote.Prelogin(ctx, email)
}

func (s *spy) Register(ctx context.Context, r api.RegisterRequest) error {
	s.enter("register")
	return s.Remote.Register(ctx, r)
}

func (s *spy) Login(ctx context.Context, r api.LoginRequest) error {
	s.enter("login")
	return s.Remote.Login(ctx, r)
}

func (s *spy) Account(ctx context.Context) (api.Account, error) {
	s.enter("account")
	return s.Remote.Account(ctx)
}

func (s *spy) UpdateAccount(ctx context.Context, u api.AccountUpdate) (uint64, error) {
	s.enter("update_account")
	return s.Remote.UpdateAccount(ctx, u)
}

func (s *spy) Vaults(ctx context.Context) ([]api.Vault, error) {
	s.enter("vaults")
	return s.Remote.Vaults(ctx)
}

func (s *spy) PutVault(ctx context.Context, vault string, record []byte) error {
	s.enter("put_vault")
	return s.Remote.PutVault(ctx, vault, record)
}

func (s *spy) Pull(ctx context.Context, vault string, since uint64) (api.LogPage, error) {
	s.enter("pull")
	return s.Remote.Pull(ctx, vault, since)
}

func (s *spy) Push(ctx context.Context, vault string, base uint64, entries []api.Entry) (uint64, error) {
	s.enter("push")
	return s.Remote.Push(ctx, vault, base, entries)
}

func (s *spy) PutBlob(ctx context.Context, vault, itemID, blob string, chunks iter.Seq2[[]byte, error]) error {
	s.enter("put_blob")
	return s.Remote.PutBlob(ctx, vault, itemID, blob, func(yield func([]byte, error) bool) {
		for c, err := range chunks {
			if err == nil {
				s.putChunks.Add(1)
			}
			if !yield(c, err) {
				return
			}
		}
	})
}

func (s *spy) GetBlob(ctx context.Context, vault, itemID, blob string, fn func(int, []byte) error) error {
	s.enter("get_blob")
	return s.Remote.GetBlob(ctx, vault, itemID, blob, func(idx int, c []byte) error {
		s.getChunks.Add(1)
		return fn(idx, c)
	})
}

// canned is a backing that answers from fixed data: page for Pull, vaults
// for Vaults; other methods succeed with nothing.
type canned struct {
	failing
	page   api.LogPage
	vaults []api.Vault
}

func (c canned) Pull(context.Context, string, uint64) (api.LogPage, error) { return c.page, nil }
func (c canned) Vaults(context.Context) ([]api.Vault, error)               { return c.vaults, nil }
