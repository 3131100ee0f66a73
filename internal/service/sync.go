package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/safehold/safehold/internal/agent"
	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/channel"
	"github.com/safehold/safehold/internal/peerauth"
	"github.com/safehold/safehold/internal/remote"
	"github.com/safehold/safehold/internal/remote/folder"
	"github.com/safehold/safehold/internal/remote/httpremote"
	"github.com/safehold/safehold/internal/secret"
	"github.com/safehold/safehold/internal/sign"
	"github.com/safehold/safehold/internal/vault"
)

// Sync ops.
const (
	OpAccountRegister = "account_register"
	OpAccountLogin    = "account_login"
	OpAccountLogout   = "account_logout"
	OpAccountStatus   = "account_status"
	OpSecretKey       = "secret_key"
	OpSync            = "sync"
	OpRemoteRemove    = "remote_remove"
	OpAutoSync        = "auto_sync"
	OpDevices         = "devices"
	OpDeviceRevoke    = "device_revoke"
	OpTOTPSetup       = "totp_setup"
	OpTOTPEnable      = "totp_enable"
	OpTOTPDisable     = "totp_disable"
	OpConflicts       = "conflicts"
	OpLogins          = "logins"
	OpAcceptReset     = "accept_reset"
	OpDeviceCertify   = "device_certify"
	OpPeerProve       = "peer_prove"
	OpPeerTrusted     = "peer_trusted"
	OpPeerSync        = "peer_sync"
	OpDeviceForget    = "device_forget"
)

// Error codes of sync ops.
const (
	CodeRemoteTampered = "remote_tampered"
	CodeNoRemote       = "no_remote"
	CodeOffline        = "offline"
	CodeRemoteAuth     = "remote_auth"
	CodeTOTPRequired   = "totp_required"
	CodeFingerprint    = "fingerprint"
	CodeRemoteExists   = "remote_exists"
	CodePrelogin       = "prelogin_refused"
	CodePeerRefused    = "peer_refused"
)

func init() {
	codes = append(codes, []struct {
		err  error
		code string
		hint string
	}{
		{vault.ErrRemoteTampered, CodeRemoteTampered, "nothing was changed locally; the remote (or someone with access to it) served data that fails verification — report it to whoever runs it; if the server was restored from a backup, `safe sync --accept-reset` re-sends what it lost (a fork stays refused)"},
		{vault.ErrNoDevice, CodeNotFound, "`safe device ls` lists the account's devices"},
		{vault.ErrNoRemote, CodeNoRemote, "register with `safe account register --server URL ...` or add a folder with `safe remote add NAME DIR`"},
		{vault.ErrRemoteExists, CodeRemoteExists, "a vault syncs with one remote: `safe remote rm` first"},
		{vault.ErrPrelogin, CodePrelogin, "nothing was derived or sent; the server may be malicious or misconfigured"},
		{channel.ErrRefused, CodePeerRefused, "the other device does not trust this one: it was revoked, or it belongs to another account"},
		{peerauth.ErrUntrusted, CodePeerRefused, "only devices of this account that are not revoked may sync with each other; check the address"},
		{channel.ErrUntrusted, CodePeerRefused, "only devices of this account that are not revoked may sync with each other; check the address"},
		{channel.ErrHandshake, CodeRemoteTampered, "nothing was changed; the connection to the peer was tampered with, or it is not a Safehold peer"},
		{channel.ErrTampered, CodeRemoteTampered, "nothing was changed; someone between the devices altered, replayed or reordered messages"},
		{channel.ErrReplay, CodeRemoteTampered, "nothing was changed; someone between the devices altered, replayed or reordered messages"},
		{channel.ErrOutOfOrder, CodeRemoteTampered, "nothing was changed; someone between the devices altered, replayed or reordered messages"},
		{remote.ErrRefused, CodeRemoteTampered, "the remote refused entries an honest server accepts: sync in smaller steps, or report it to whoever runs the server"},
		{remote.ErrUnavailable, CodeOffline, "you are offline or the server is down: changes stay queued and sync later"},
		{remote.ErrTOTPRequired, CodeTOTPRequired, "pass --totp CODE (or --recovery-code CODE)"},
		{remote.ErrAuth, CodeRemoteAuth, "log in again with `safe account login`"},
		{httpremote.ErrFingerprint, CodeFingerprint, "the server's certificate changed: if its operator replaced it, check the new fingerprint with them out of band, then `safe remote rm` and register or log in again with --fingerprint"},
	}...)
}

// CodeRemoteRefused is any other refusal by the server (a 4xx or 5xx the
// codes above do not cover, like enabling two-factor authentication twice):
// the message carries the server's (sanitised) reason.
const CodeRemoteRefused = "remote_refused"

// remoteRefused turns a server's refusal that no code covers into an
// error the CLI can show, instead of the agent's "internal error".
func remoteRefused(err error) *agent.Error {
	var se *httpremote.ServerError
	if !errors.As(err, &se) {
		return nil
	}
	return &agent.Error{Code: CodeRemoteRefused, Message: err.Error(), Hint: "the server refused the request for the reason it gives"}
}

// RegisterArgs puts the vault on a remote.
type RegisterArgs struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Email       string `json:"email"`
	Password    []byte `json:"password"`
	Manual      bool   `json:"manual,omitempty"`
}

// Registered is the answer to register: the Secret Key, shown once here and
// printed in the kit.
type Registered struct {
	SecretKey string            `json:"secret_key"`
	Sync      *vault.SyncResult `json:"sync,omitempty"`
	SyncError string            `json:"sync_error,omitempty"`
	Remote    *vault.RemoteInfo `json:"remote"`
}

// LoginArgs logs this device in again.
type LoginArgs struct {
	Password     []byte `json:"password"`
	TOTP         string `json:"totp,omitempty"`
	RecoveryCode string `json:"recovery_code,omitempty"`
}

// AccountStatus describes the remote tie.
type AccountStatus struct {
	Remote *vault.RemoteInfo `json:"remote"`
	Device string            `json:"device"`
	// Identity is the account's identity code (the one administrators
	// compare when they confirm a membership).
	Identity  string    `json:"identity,omitempty"`
	LoggedIn  bool      `json:"logged_in"`
	LastSync  time.Time `json:"last_sync,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// AutoArgs turns automatic sync on or off.
type AutoArgs struct {
	Auto bool `json:"auto"`
}

// DeviceArgs names a device.
type DeviceArgs struct {
	ID string `json:"id"`
}

// ProveArgs asks for this device's identity proof in a peer handshake:
// the role (peerauth.RoleClient or RoleServer) and the handshake hash.
type ProveArgs struct {
	Role    string `json:"role"`
	Binding []byte `json:"binding"`
}

// Proof is this device's signature for a peer handshake.
type Proof struct {
	Device    string `json:"device"`
	Signature []byte `json:"signature"`
}

// TrustedDevice is a device peers may be: its id and public signing key.
type TrustedDevice struct {
	ID     string `json:"id"`
	Public []byte `json:"public"`
}

// PeerSyncArgs names the peer to sync through.
type PeerSyncArgs struct {
	Addr string `json:"addr"`
}

// CertifyArgs carries a new device's public signing key (device link).
type CertifyArgs struct {
	Public []byte `json:"public"`
}

// TOTPArgs carries a code.
type TOTPArgs struct {
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recovery_code,omitempty"`
}

// SecretKey is the account's Secret Key.
type SecretKey struct {
	SecretKey string `json:"secret_key"`
}

// InterruptibleOps are the ops that wait on a remote
// (agent.Options.InterruptibleOps): a lock, stop, the idle timeout or
// shutdown cancels them, and so does the client hanging up.
//
// An interrupted op leaves the vault consistent: every step of a sync
// (and of register and login) commits in one store transaction or not at
// all (database/sql rolls back a transaction whose context ends), so
// being cut short is the same as losing the connection midway, which sync
// must survive anyway; what was not sent stays queued for the next sync.
var InterruptibleOps = []string{
	OpSync, OpAcceptReset, OpAccountRegister, OpAccountLogin, OpAccountLogout, OpDevices, OpLogins,
	OpDeviceRevoke, OpTOTPSetup, OpTOTPEnable, OpTOTPDisable, OpPeerSync,
	OpOrgCreate, OpOrgs, OpOrgShow, OpOrgDelete, OpOrgInvite, OpOrgAccept, OpOrgConfirm, OpOrgMembers,
	OpOrgRemove, OpOrgSetRole, OpGroupCreate, OpGroupAdd, OpGroupRemove, OpVaultCreate, OpVaultShare,
	OpVaultUnshare, OpVaultMembers, OpAudit,
}

// syncer runs syncs for the handler: on request and after writes while
// unlocked.
type syncer struct {
	mu       sync.Mutex
	lastSync time.Time
	lastErr  string
	timer    *time.Timer // pending automatic sync
	closed   bool        // Close was called: no more automatic syncs
}

// AutoSyncDelay is how long after a write an automatic sync starts.
const AutoSyncDelay = 500 * time.Millisecond

// AutoSyncTimeout bounds an automatic sync as a whole; a lock, the idle
// timeout or shutdown ends it sooner.
const AutoSyncTimeout = 2 * time.Minute

// Platform names this build for the server's device list.
func Platform() string { return "safe " + runtime.GOOS + "/" + runtime.GOARCH }

// openRemote connects to the vault's remote, restoring its session and
// saving it whenever it changes.
func (h *Handler) openRemote(ctx context.Context) (remote.Remote, *vault.RemoteInfo, error) {
	info, err := h.V.Remote(ctx)
	if err != nil {
		return nil, nil, err
	}
	if info == nil {
		return nil, nil, vault.ErrNoRemote
	}
	r, err := h.dial(ctx, info.Kind, info.URL, info.Fingerprint)
	return r, info, err
}

func (h *Handler) dial(ctx context.Context, kind, u, fingerprint string) (remote.Remote, error) {
	switch kind {
	case vault.RemoteFolder:
		return folder.Open(FolderPath(u))
	case vault.RemotePeer:
		return peerauth.Dial(ctx, u, h.V.DeviceID(), h.peerSigner(), h.peerTrusted())
	}
	var opts httpremote.Options
	if raw, err := h.V.Session(ctx); err != nil {
		return nil, err
	} else if raw != nil {
		var s api.Session
		err := json.Unmarshal(raw, &s)
		secret.Wipe(raw)
		if err == nil {
			opts.Session = &s
		}
	}
	opts.OnSession = func(s api.Session) {
		// Called from inside a request; the handler holds the vault.
		if s.RefreshToken == "" {
			if err := h.V.SaveSession(context.Background(), nil); err != nil && !errors.Is(err, vault.ErrNoRemote) {
				slog.Warn("could not forget the session", "err", err)
			}
			return
		}
		raw, err := json.Marshal(s)
		if err != nil {
			return
		}
		if err := h.V.SaveSession(context.Background(), raw); err != nil && !errors.Is(err, vault.ErrNoRemote) {
			slog.Warn("could not store the refreshed session", "err", err)
		}
		secret.Wipe(raw)
	}
	return httpremote.New(u, fingerprint, opts)
}

// RemoteKind tells a folder from a server URL.
func RemoteKind(u string) string {
	if strings.HasPrefix(u, "https://") {
		return vault.RemoteServer
	}
	return vault.RemoteFolder
}

// FolderPath turns file:///dir or dir into an absolute path.
func FolderPath(u string) string {
	if strings.HasPrefix(u, "file://") {
		if p, err := url.Parse(u); err == nil {
			return p.Path
		}
	}
	if abs, err := filepath.Abs(u); err == nil {
		return abs
	}
	return u
}

// handleSync runs the sync ops; ok is false for an unknown op. report,
// which may be nil, sends progress frames.
func (h *Handler) handleSync(ctx context.Context, req agent.Request, report func(done, total int64)) (any, bool, error) {
	switch req.Op {
	case OpAccountRegister:
		var a RegisterArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		defer secret.Wipe(a.Password)
		res, err := h.register(ctx, a)
		return res, true, err
	case OpAccountLogin:
		var a LoginArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		defer secret.Wipe(a.Password)
		r, _, err := h.openRemote(ctx)
		if err != nil {
			return nil, true, err
		}
		defer r.Close()
		if err := h.V.Login(ctx, r, a.Password, a.TOTP, a.RecoveryCode, Platform()); err != nil {
			return nil, true, err
		}
		st, err := h.status(ctx)
		return st, true, err
	case OpAccountLogout:
		r, _, err := h.openRemote(ctx)
		if err != nil {
			return nil, true, err
		}
		defer r.Close()
		if hc, ok := r.(*httpremote.Client); ok {
			if err := hc.Logout(ctx); err != nil && !errors.Is(err, remote.ErrAuth) {
				return nil, true, err
			}
		}
		if err := h.V.SaveSession(ctx, nil); err != nil {
			return nil, true, err
		}
		st, err := h.status(ctx)
		return st, true, err
	case OpAccountStatus:
		st, err := h.status(ctx)
		return st, true, err
	case OpSecretKey:
		sk, err := h.V.SecretKey(ctx)
		return SecretKey{SecretKey: sk}, true, err
	case OpSync:
		res, err := h.syncNow(ctx)
		return res, true, err
	case OpAcceptReset:
		r, _, err := h.openRemote(ctx)
		if err != nil {
			return nil, true, err
		}
		defer r.Close()
		notes, err := h.V.AcceptReset(ctx, r)
		if err != nil {
			return nil, true, err
		}
		res, err := h.V.Sync(ctx, r)
		h.noteSync(err)
		if res != nil {
			res.Notes = append(notes, res.Notes...)
		}
		return res, true, err
	case OpRemoteRemove:
		err := h.V.RemoveRemote(ctx)
		return struct{}{}, true, err
	case OpAutoSync:
		var a AutoArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		err := h.V.SetAutoSync(ctx, a.Auto)
		return struct{}{}, true, err
	case OpDevices:
		if info, err := h.V.Remote(ctx); err == nil && info != nil && info.Kind != vault.RemoteServer {
			return h.accountDevices(ctx)
		}
		return h.onServer(ctx, func(hc *httpremote.Client) (any, error) {
			list, err := hc.Devices(ctx)
			for i := range list {
				list[i].Current = list[i].ID == h.V.DeviceID()
			}
			return orEmpty(list, err)
		})
	case OpLogins:
		return h.onServer(ctx, func(hc *httpremote.Client) (any, error) { return orEmpty(hc.Logins(ctx)) })
	case OpDeviceRevoke:
		var a DeviceArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		if a.ID == h.V.DeviceID() {
			return nil, true, &agent.Error{Code: CodeInvalid, Message: "this is the device you are using", Hint: "revoke it from another device, or `safe account logout` here"}
		}
		if info, err := h.V.Remote(ctx); err == nil && info != nil && info.Kind != vault.RemoteServer {
			// No server to refuse its logins: the account document
			// lists it as revoked, and peers refuse it from now on.
			if err := h.V.Revoke(ctx, a.ID); err != nil {
				return nil, true, err
			}
			return struct{}{}, true, nil
		}
		return h.onServer(ctx, func(hc *httpremote.Client) (any, error) {
			if err := hc.RevokeDevice(ctx, a.ID); err != nil {
				return nil, err
			}
			if err := h.V.Revoke(ctx, a.ID); err != nil && !errors.Is(err, vault.ErrNoDevice) {
				return nil, err
			}
			// The organisations learn it too, and the keys of the
			// vaults the device could read are rotated.
			return struct{}{}, orgErr(h.V.RevokeDeviceInOrgs(ctx, hc, a.ID, progress(report)))
		})
	case OpTOTPSetup:
		return h.onServer(ctx, func(hc *httpremote.Client) (any, error) { return hc.TOTPSetup(ctx) })
	case OpTOTPEnable:
		var a TOTPArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		return h.onServer(ctx, func(hc *httpremote.Client) (any, error) {
			codes, err := hc.TOTPEnable(ctx, a.Code)
			if err != nil {
				return nil, err
			}
			return api.RecoveryCodes{Codes: codes}, nil
		})
	case OpTOTPDisable:
		var a TOTPArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		return h.onServer(ctx, func(hc *httpremote.Client) (any, error) {
			return struct{}{}, hc.TOTPDisable(ctx, api.TOTPDisable{Code: a.Code, RecoveryCode: a.RecoveryCode})
		})
	case OpPeerProve:
		var a ProveArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		if (a.Role != peerauth.RoleClient && a.Role != peerauth.RoleServer) || len(a.Binding) != 32 {
			return nil, true, &agent.Error{Code: CodeInvalid, Message: "a peer proof needs a role and a 32-byte handshake hash"}
		}
		id, sig, err := h.V.SignAsDevice(ctx, peerauth.Context, peerauth.Message(a.Role, a.Binding))
		return Proof{Device: id, Signature: sig}, true, err
	case OpPeerSync:
		var a PeerSyncArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		res, err := h.peerSync(ctx, a.Addr)
		return res, true, err
	case OpPeerTrusted:
		list, err := h.V.TrustedDevices(ctx)
		if err != nil {
			return nil, true, err
		}
		out := make([]TrustedDevice, 0, len(list))
		for _, d := range list {
			raw, err := d.Public.MarshalBinary()
			if err != nil {
				return nil, true, err
			}
			out = append(out, TrustedDevice{ID: d.ID, Public: raw})
		}
		return out, true, nil
	case OpDeviceForget:
		var a DeviceArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		// A link that failed after certifying: the device may hold the
		// bundle, so it is revoked, not just forgotten (a forgotten
		// device could still publish itself).
		return struct{}{}, true, h.V.Revoke(ctx, a.ID)
	case OpDeviceCertify:
		var a CertifyArgs
		if err := decode(req.Args, &a); err != nil {
			return nil, true, err
		}
		b, err := h.V.CertifyDevice(ctx, a.Public)
		return b, true, err
	case OpConflicts:
		list, err := h.V.Conflicts(ctx)
		res, err := orEmpty(list, err)
		return res, true, err
	}
	return nil, false, nil
}

// onServer runs fn on the vault's server (a folder has no account API),
// for handleSync.
func (h *Handler) onServer(ctx context.Context, fn func(*httpremote.Client) (any, error)) (any, bool, error) {
	hc, err := h.server(ctx)
	if err != nil {
		return nil, true, err
	}
	defer hc.Close()
	res, err := fn(hc)
	if err != nil {
		return nil, true, err
	}
	return res, true, nil
}

// server opens the remote and insists that it is a server.
func (h *Handler) server(ctx context.Context) (*httpremote.Client, error) {
	r, info, err := h.openRemote(ctx)
	if err != nil {
		return nil, err
	}
	hc, ok := r.(*httpremote.Client)
	if !ok {
		r.Close()
		return nil, &agent.Error{Code: CodeInvalid, Message: fmt.Sprintf("remote %s is a folder, which has no devices, sessions or two-factor settings", info.Name)}
	}
	return hc, nil
}

func (h *Handler) register(ctx context.Context, a RegisterArgs) (*Registered, error) {
	kind := RemoteKind(a.URL)
	u := a.URL
	if kind == vault.RemoteFolder {
		u = FolderPath(u)
	}
	r, err := h.dial(ctx, kind, u, a.Fingerprint)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	name := a.Name
	if name == "" {
		name = "origin"
	}
	t := vault.RemoteTarget{Name: name, Kind: kind, URL: u, Fingerprint: a.Fingerprint, Email: a.Email, Manual: a.Manual, Platform: Platform()}
	sk, err := h.V.Register(ctx, r, t, a.Password)
	if err != nil {
		return nil, err
	}
	// Registered: the local steps left must not be interrupted (the vault
	// stays unlocked until this request returns), so that the session is
	// kept and the Secret Key reaches the user even if the first sync is
	// cut short.
	local := context.WithoutCancel(ctx)
	if hc, ok := r.(*httpremote.Client); ok {
		h.saveSession(local, hc)
	}
	out := &Registered{SecretKey: sk}
	res, err := h.V.Sync(ctx, r)
	h.noteSync(err)
	if err != nil {
		out.SyncError = err.Error()
	} else {
		out.Sync = res
	}
	out.Remote, err = h.V.Remote(local)
	return out, err
}

func (h *Handler) saveSession(ctx context.Context, hc *httpremote.Client) {
	s := hc.Session()
	if s == nil {
		return
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return
	}
	if err := h.V.SaveSession(ctx, raw); err != nil {
		slog.Warn("could not store the session", "err", err)
	}
	secret.Wipe(raw)
}

func (h *Handler) status(ctx context.Context) (*AccountStatus, error) {
	info, err := h.V.Remote(ctx)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return nil, vault.ErrNoRemote
	}
	st := &AccountStatus{Remote: info, Device: h.V.DeviceID(), Identity: h.V.IdentityFingerprint()}
	if info.Kind == vault.RemoteFolder || info.Kind == vault.RemotePeer {
		st.LoggedIn = true
	} else if raw, err := h.V.Session(ctx); err == nil && raw != nil {
		st.LoggedIn = true
		secret.Wipe(raw)
	}
	h.sync.mu.Lock()
	st.LastSync, st.LastError = h.sync.lastSync, h.sync.lastErr
	h.sync.mu.Unlock()
	return st, nil
}

// syncNow syncs with the remote.
func (h *Handler) syncNow(ctx context.Context) (*vault.SyncResult, error) {
	r, _, err := h.openRemote(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	res, err := h.V.Sync(ctx, r)
	h.noteSync(err)
	return res, err
}

func (h *Handler) noteSync(err error) {
	if errors.Is(err, context.Canceled) {
		return // interrupted, not failed: the last outcome still stands
	}
	h.sync.mu.Lock()
	defer h.sync.mu.Unlock()
	if err != nil {
		h.sync.lastErr = err.Error()
		return
	}
	h.sync.lastSync, h.sync.lastErr = time.Now(), ""
}

// writeOps are the ops after which an automatic sync is scheduled.
var writeOps = map[string]bool{
	OpAdd: true, OpUpdate: true, OpTrash: true, OpRestore: true, OpPurge: true, OpEmptyTrash: true,
	OpRestoreRevision: true, OpAttach: true, OpDetach: true, OpPasswd: true, OpRecover: true, OpUnlock: true,
	OpAddTo: true, OpMove: true, OpCopy: true, OpVaultCreate: true, OpOrgAccept: true, OpOrgRemove: true,
	OpGroupRemove: true, OpVaultUnshare: true, OpDeviceRevoke: true, OpDeviceCertify: true,
}

// scheduleSync starts an automatic sync shortly after a write, if the
// vault has a remote with automatic sync on. Offline is not an error: the
// outbox waits.
func (h *Handler) scheduleSync(op string) {
	if !writeOps[op] || h.RunLocked == nil || !h.V.Unlocked() {
		return
	}
	h.sync.mu.Lock()
	defer h.sync.mu.Unlock()
	if h.sync.closed {
		return
	}
	if h.sync.timer != nil {
		h.sync.timer.Stop()
	}
	h.sync.timer = time.AfterFunc(AutoSyncDelay, func() {
		// The context comes from the agent, which cancels it on lock,
		// stop, idle timeout and shutdown.
		h.RunLocked(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, AutoSyncTimeout)
			defer cancel()
			h.sync.mu.Lock()
			closed := h.sync.closed
			h.sync.mu.Unlock()
			if closed || !h.V.Unlocked() {
				return
			}
			info, err := h.V.Remote(ctx)
			if err != nil || info == nil || !info.Auto {
				return
			}
			if _, err := h.syncNow(ctx); err != nil {
				slog.Info("automatic sync failed; changes stay queued", "err", err)
			}
		})
	})
}

// cancelAutoSync drops a pending automatic sync (one already running is
// interrupted by the agent). Called when the vault locks.
func (h *Handler) cancelAutoSync() {
	h.sync.mu.Lock()
	defer h.sync.mu.Unlock()
	if h.sync.timer != nil {
		h.sync.timer.Stop()
		h.sync.timer = nil
	}
}

// Close ends automatic sync for good: the pending one is dropped and no
// other is scheduled. The agent calls it when it begins to shut down, then
// shuts the server down (which interrupts and waits for a running one),
// then closes the vault.
func (h *Handler) Close() {
	h.sync.mu.Lock()
	h.sync.closed = true
	h.sync.mu.Unlock()
	h.cancelAutoSync()
}

// peerSigner proves this device's identity to a peer.
func (h *Handler) peerSigner() peerauth.Signer {
	return func(role string, binding []byte) (string, []byte, error) {
		return h.V.SignAsDevice(context.Background(), peerauth.Context, peerauth.Message(role, binding))
	}
}

// peerTrusted lists the devices a peer may be.
func (h *Handler) peerTrusted() peerauth.Trusted {
	return func() (map[string]*sign.PublicKey, error) {
		return h.V.TrustedKeys(context.Background())
	}
}

// accountDevices lists the account's devices from the account record, in
// the server's shape (a folder or a peer keeps no device list).
func (h *Handler) accountDevices(ctx context.Context) (any, bool, error) {
	list, err := h.V.Devices(ctx)
	if err != nil {
		return nil, true, err
	}
	out := make([]api.Device, 0, len(list))
	for _, d := range list {
		dev := api.Device{ID: d.ID, Platform: "-", Current: d.Current}
		if d.Revoked {
			dev.Revoked = 1
		}
		out = append(out, dev)
	}
	return out, true, nil
}

// peerSync syncs through the device listening at addr (§16.1). A peer
// serves the store its own vault syncs with, so this works for a vault
// whose remote is a peer or a folder; a server's log lives on the server.
func (h *Handler) peerSync(ctx context.Context, addr string) (*vault.SyncResult, error) {
	info, err := h.V.Remote(ctx)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return nil, &agent.Error{Code: CodeInvalid, Message: "this vault has no remote, so no peer serves its account",
			Hint: "set this device up from the other one with `safe device link` / `safe device join`"}
	}
	if info.Kind == vault.RemoteServer {
		return nil, &agent.Error{Code: CodeInvalid, Message: fmt.Sprintf("this vault syncs with the server %s; a vault has one remote, and a peer serves another store", info.URL),
			Hint: "sync with the server (`safe sync`), or use peers for an account kept on a folder or a peer"}
	}
	r, err := peerauth.Dial(ctx, addr, h.V.DeviceID(), h.peerSigner(), h.peerTrusted())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	res, err := h.V.Sync(ctx, r)
	h.noteSync(err)
	if err == nil && info.Kind == vault.RemotePeer && info.URL != addr {
		// The peer is known by its device key; its address may change.
		err = h.V.SetRemoteURL(ctx, addr)
	}
	return res, err
}
