// Package api defines the HTTP/JSON protocol between a Safehold client and
// `safe serve`: paths, request and response bodies, and error codes. It holds
// no logic, so that the server and the client share one definition and
// docs/api.md describes exactly these types.
//
// Every []byte field travels as standard base64 (encoding/json's default).
// Every request and response body is one JSON object; unknown fields are
// refused by both sides.
package api

// Version prefix of every API path.
const Prefix = "/v1"

// Paths. {vault}, {item}, {blob} and {device} are ids (26 lower-case
// base32 characters).
const (
	PathHealth    = "/healthz"
	PathMetrics   = "/metrics"
	PathPrelogin  = Prefix + "/prelogin"  // POST PreloginRequest → PreloginResponse
	PathRegister  = Prefix + "/register"  // POST RegisterRequest → Session
	PathLogin     = Prefix + "/login"     // POST LoginRequest → Session
	PathRefresh   = Prefix + "/refresh"   // POST RefreshRequest → Session
	PathLogout    = Prefix + "/logout"    // POST (auth) → 204
	PathAccount   = Prefix + "/account"   // GET (auth) → Account; PUT AccountUpdate → Account
	Path2FASetup  = Prefix + "/2fa/setup" // POST (auth) → TOTPSetup
	Path2FAEnable = Prefix + "/2fa/enable"
	// POST (auth) TOTPEnable → RecoveryCodes
	Path2FADisable = Prefix + "/2fa/disable" // POST (auth) TOTPDisable → 204
	PathDevices    = Prefix + "/devices"     // GET (auth) → Devices; DELETE /v1/devices/{device} → 204
	PathLogins     = Prefix + "/logins"      // GET (auth) → Logins
	PathVaults     = Prefix + "/vaults"      // GET (auth) → Vaults; PUT /v1/vaults/{vault} VaultPut → 204
	// GET  /v1/vaults/{vault}/log?since=N&limit=M → LogPage
	// POST /v1/vaults/{vault}/log LogAppend → LogAppended (409 Stale)
	// PUT  /v1/vaults/{vault}/blobs/{item}/{blob} (application/octet-stream, BlobFrames) → 204
	// GET  /v1/vaults/{vault}/blobs/{item}/{blob} → BlobFrames
	// (For a shared vault these need the caller's access in the
	// organisation's log: read to pull and fetch, write to append and
	// upload. 403 forbidden otherwise.)

	PathOrgs = Prefix + "/orgs" // GET (auth) → Orgs; POST OrgCreate → OrgAppended (409 exists)
	// GET    /v1/orgs/{org}/log?since=N&limit=M → OrgLogPage
	// POST   /v1/orgs/{org}/log OrgAppend → OrgAppended (409 stale, 422 invalid_entry rule "org")
	// GET    /v1/orgs/{org}/vaults → Vaults (the shared vaults the caller may read; Record empty)
	// PUT    /v1/orgs/{org}/vaults/{vault} → 204 (creates a shared vault named in the log)
	// DELETE /v1/orgs/{org} → 204 (an owner dissolves the organisation and its vaults)
)

// Headers.
const (
	HeaderAuth       = "Authorization" // "Bearer " + access token
	HeaderRetryAfter = "Retry-After"   // seconds, on 429
)

// Limits the server enforces and the client respects.
const (
	MaxJSONBody   = 32 << 20 // bytes of one JSON request or response body
	MaxPageLimit  = 1000     // entries in one LogPage
	MaxAppend     = 1000     // entries in one LogAppend
	MaxDocument   = 1 << 20  // bytes of an account document or vault record
	MaxEmail      = 254
	LoginKeySize  = 32
	TokenSize     = 32 // random bytes in a token, before base64url
	MaxBlobFrames = 1 << 20
)

// Error codes, in Error.Code.
const (
	CodeBadRequest    = "bad_request"   // 400: malformed or out-of-bounds request
	CodeUnauthorized  = "unauthorized"  // 401: missing, expired or revoked token; or bad credentials
	CodeTOTPRequired  = "totp_required" // 401: the account has 2FA; send TOTP or RecoveryCode
	CodeForbidden     = "forbidden"     // 403: the account is disabled, or the device revoked
	CodeNotFound      = "not_found"     // 404
	CodeExists        = "exists"        // 409: register: the e-mail address is taken
	CodeStale         = "stale"         // 409: a write's base is not the current state
	CodeTooLarge      = "too_large"     // 413
	CodeRateLimited   = "rate_limited"  // 429: wait Retry-After seconds
	CodeInternal      = "internal"      // 500
	CodeUnavailable   = "unavailable"   // 503: shutting down
	CodeInvalidEntry  = "invalid_entry" // 422: a log entry breaks the log's rules
	CodeNoSuchVersion = "unsupported"   // 400: unknown API or format version
)

// Error is the body of every non-2xx response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Head is the current head sequence number, on CodeStale from a log append.
	Head uint64 `json:"head,omitempty"`
	// Epoch is the current account document epoch, on CodeStale from an
	// account update.
	Epoch uint64 `json:"epoch,omitempty"`
	// Seq and Rule name, on CodeInvalidEntry, the first entry that breaks
	// the log's rules and the rule (one of the Rule constants).
	Seq  uint64 `json:"seq,omitempty"`
	Rule string `json:"rule,omitempty"`
}

// Rules a log append may break (Error.Rule on CodeInvalidEntry).
const (
	RuleMalformed = "malformed" // the body does not decode, or the signature is empty or too long
	RuleVault     = "vault"     // the entry names another vault
	RuleSeq       = "seq"       // the seq is not base+1, base+2, …
	RulePrev      = "prev"      // prev is not the chain hash after the entry before
	RuleDevice    = "device"    // the writing device is not the session's device
	RuleItem      = "item"      // the item id is not a valid id
	RuleRevision  = "revision"  // put: not current+1; purge: not the current revision
	RulePurged    = "purged"    // purge of an item that is absent or already purged
	RulePayload   = "payload"   // put without payload, purge with one, or a payload too large
	RuleDigest    = "digest"    // the payload does not match the entry's digest
	RuleAccess    = "access"    // the writer has no write access to the shared vault
	RuleOrg       = "org"       // an organisation statement breaks the log's rules (message says which)
)

// PreloginRequest asks for an account's KDF header.
type PreloginRequest struct {
	Email string `json:"email"`
}

// PreloginResponse carries the 80-byte KDF header (docs/design.md §3.3).
// For an unknown address the server answers with a header derived from its
// secret, indistinguishable from a real one.
type PreloginResponse struct {
	KDF []byte `json:"kdf"`
}

// DeviceHello names the device a session is bound to.
type DeviceHello struct {
	ID       string `json:"id"`
	Platform string `json:"platform"` // e.g. "safe/1 linux/amd64"; shown as data
}

// RegisterRequest creates an account.
type RegisterRequest struct {
	Email    string      `json:"email"`
	Account  string      `json:"account"`   // account id
	KDF      []byte      `json:"kdf"`       // 80-byte KDF header
	LoginKey []byte      `json:"login_key"` // 32 bytes
	Document []byte      `json:"document"`  // the account document (design §13)
	Device   DeviceHello `json:"device"`
}

// LoginRequest logs a device in.
type LoginRequest struct {
	Email        string      `json:"email"`
	LoginKey     []byte      `json:"login_key"`
	Device       DeviceHello `json:"device"`
	TOTP         string      `json:"totp,omitempty"`
	RecoveryCode string      `json:"recovery_code,omitempty"`
}

// Session is the answer to register, login and refresh.
type Session struct {
	Account        string `json:"account"`
	AccessToken    string `json:"access_token"`
	AccessExpires  int64  `json:"access_expires"` // Unix seconds
	RefreshToken   string `json:"refresh_token"`
	RefreshExpires int64  `json:"refresh_expires"`
}

// RefreshRequest exchanges a refresh token for a new session (the old
// refresh token stops working).
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Account is what GET /v1/account returns.
type Account struct {
	Account string `json:"account"`
	Email   string `json:"email"`
	KDF     []byte `json:"kdf"`
	Epoch   uint64 `json:"epoch"`
	// Document is absent when the request named this epoch as the one the
	// client already has (?known=EPOCH).
	Document []byte `json:"document,omitempty"`
	TOTP     bool   `json:"totp"`
}

// QueryKnownEpoch is the query parameter of GET /v1/account naming the
// document epoch the client already has.
const QueryKnownEpoch = "known"

// AccountUpdate replaces the account document if Base is the current epoch;
// the new epoch is Base+1. With Credentials, the KDF header and login key
// change in the same transaction (password change or recovery).
type AccountUpdate struct {
	Base        uint64       `json:"base"`
	Document    []byte       `json:"document"`
	Credentials *Credentials `json:"credentials,omitempty"`
}

// Credentials are a new KDF header and login key.
type Credentials struct {
	KDF      []byte `json:"kdf"`
	LoginKey []byte `json:"login_key"`
}

// TOTPSetup is a fresh, not yet enabled TOTP secret.
type TOTPSetup struct {
	Secret string `json:"secret"` // base32
	URI    string `json:"uri"`    // otpauth://
}

// TOTPEnable confirms the secret with a current code.
type TOTPEnable struct {
	Code string `json:"code"`
}

// RecoveryCodes are shown once when 2FA is enabled; each works once.
type RecoveryCodes struct {
	Codes []string `json:"codes"`
}

// TOTPDisable turns 2FA off; it needs a current code or a recovery code.
type TOTPDisable struct {
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recovery_code,omitempty"`
}

// Device is one device the server knows for the account.
type Device struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	Created  int64  `json:"created"`
	LastSeen int64  `json:"last_seen"`
	Revoked  int64  `json:"revoked,omitempty"` // Unix seconds; 0 = active
	Current  bool   `json:"current,omitempty"`
}

// Devices lists the account's devices.
type Devices struct {
	Devices []Device `json:"devices"`
}

// Login is one login attempt.
type Login struct {
	Time    int64  `json:"time"`
	Device  string `json:"device"`
	Address string `json:"address"`
	OK      bool   `json:"ok"`
	Reason  string `json:"reason,omitempty"`
}

// Logins is the account's login history, newest first.
type Logins struct {
	Logins []Login `json:"logins"`
}

// Vault is one vault of the account and its log head.
type Vault struct {
	Vault  string `json:"vault"`
	Record []byte `json:"record"` // the MAC'd vault record (design §6.4)
	Head   uint64 `json:"head"`
}

// Vaults lists the account's vaults.
type Vaults struct {
	Vaults []Vault `json:"vaults"`
}

// VaultPut creates a vault (or replaces its record).
type VaultPut struct {
	Record []byte `json:"record"`
}

// Entry is one log entry as it travels: the body and signature (design
// §6.5) and, for a put, the payload it names. A put whose item was purged
// later has no payload.
type Entry struct {
	Body    []byte `json:"body"`
	Sig     []byte `json:"sig"`
	Payload []byte `json:"payload,omitempty"`
}

// LogPage is a run of entries after `since`.
type LogPage struct {
	Head    uint64  `json:"head"` // the server's head seq
	Entries []Entry `json:"entries"`
}

// LogAppend appends entries Base+1, Base+2, … if Base is the head.
type LogAppend struct {
	Base    uint64  `json:"base"`
	Entries []Entry `json:"entries"`
}

// LogAppended is the new head.
type LogAppended struct {
	Head uint64 `json:"head"`
}

// OrgEntry is one signed organisation statement (design §14): the
// canonical JSON body and its hybrid signature.
type OrgEntry struct {
	Body []byte `json:"body"`
	Sig  []byte `json:"sig"`
}

// Org is one organisation the caller belongs to or is invited to.
type Org struct {
	Org  string `json:"org"`
	Head uint64 `json:"head"`
	// State is the caller's state there as the server reads the log:
	// "invited", "accepted", "active".
	State string `json:"state"`
}

// Orgs lists the caller's organisations.
type Orgs struct {
	Orgs []Org `json:"orgs"`
}

// OrgCreate creates an organisation with its first statements (the
// genesis and the creator's owner certificate, at least).
type OrgCreate struct {
	Org     string     `json:"org"`
	Entries []OrgEntry `json:"entries"`
}

// OrgLogPage is a run of statements after `since`.
type OrgLogPage struct {
	Head    uint64     `json:"head"`
	Entries []OrgEntry `json:"entries"`
}

// OrgAppend appends statements Base+1, … if Base is the head.
type OrgAppend struct {
	Base    uint64     `json:"base"`
	Entries []OrgEntry `json:"entries"`
}

// OrgAppended is the organisation log's new head.
type OrgAppended struct {
	Head uint64 `json:"head"`
}
