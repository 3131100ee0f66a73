package peer

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/remote/frames"
	"github.com/safehold/safehold/internal/vlog"
)

// Version is the wire format version: the first byte of every message.
const Version = 1

// Limits. Both ends refuse a message that passes them.
const (
	// MaxMessage bounds one message. The largest is a log entry with its
	// payload; a MsgConn must carry messages this large.
	MaxMessage = 4<<20 + 64<<10
	// MaxBatch bounds the sum of the message lengths of one push's
	// entries, one pull page's entries or one vault listing's vaults (the
	// HTTP API's body limit).
	MaxBatch = api.MaxJSONBody
	// MaxVaults bounds the vaults in one listing.
	MaxVaults = 1 << 16

	maxString  = 1 << 10 // an address, id, platform name or code
	maxKey     = 1 << 10 // a KDF header or login key
	maxDetail  = 1 << 10 // an error's detail text
	maxPayload = item.MaxPayload + 1<<10

	headerLen = 2 // version, type
	// entryMax is the longest entry message; it must fit in MaxMessage.
	entryMax = headerLen + 3*4 + vlog.MaxEntry + vlog.MaxSig + maxPayload
	// chunkMax is the longest chunk message.
	chunkMax = headerLen + 4 + frames.Max
)

// Compile-time check: the largest entry fits in one message.
const _ = uint(MaxMessage - entryMax)

// ErrProtocol reports a message that breaks the wire format, in either
// direction. The connection cannot be used after it: the side that sees it
// closes the connection.
var ErrProtocol = errors.New("peer protocol violation")

// errVersion is a message of another wire format version.
var errVersion = fmt.Errorf("%w: unknown wire format version", ErrProtocol)

// msgType is a message's second byte.
type msgType byte

const (
	// Requests, client to server.
	typePrelogin      msgType = 0x01
	typeRegister      msgType = 0x02
	typeLogin         msgType = 0x03
	typeAccount       msgType = 0x04
	typeUpdateAccount msgType = 0x05
	typeVaults        msgType = 0x06
	typePutVault      msgType = 0x07
	typePull          msgType = 0x08
	typePush          msgType = 0x09
	typePutBlob       msgType = 0x0a
	typeGetBlob       msgType = 0x0b

	// Stream items, following a request or a response.
	typeEntry msgType = 0x20
	typeVault msgType = 0x21
	typeChunk msgType = 0x22
	typeEnd   msgType = 0x23
	typeAbort msgType = 0x24

	// Responses, server to client.
	typeError       msgType = 0x40
	typeDone        msgType = 0x41
	typeKDF         msgType = 0x42
	typeAccountInfo msgType = 0x43
	typeEpoch       msgType = 0x44
	typeVaultList   msgType = 0x45
	typePage        msgType = 0x46
	typeHead        msgType = 0x47
)

func (t msgType) String() string {
	switch t {
	case typePrelogin:
		return "prelogin"
	case typeRegister:
		return "register"
	case typeLogin:
		return "login"
	case typeAccount:
		return "account"
	case typeUpdateAccount:
		return "update_account"
	case typeVaults:
		return "vaults"
	case typePutVault:
		return "put_vault"
	case typePull:
		return "pull"
	case typePush:
		return "push"
	case typePutBlob:
		return "put_blob"
	case typeGetBlob:
		return "get_blob"
	case typeEntry:
		return "entry"
	case typeVault:
		return "vault"
	case typeChunk:
		return "chunk"
	case typeEnd:
		return "end"
	case typeAbort:
		return "abort"
	case typeError:
		return "error"
	case typeDone:
		return "done"
	case typeKDF:
		return "kdf"
	case typeAccountInfo:
		return "account_info"
	case typeEpoch:
		return "epoch"
	case typeVaultList:
		return "vault_list"
	case typePage:
		return "page"
	case typeHead:
		return "head"
	}
	return fmt.Sprintf("0x%02x", byte(t))
}

// message is one message's body. fields lists the body's fields in wire
// order, once for encoding, sizing and decoding alike, so that the two
// directions cannot disagree.
type message interface {
	typ() msgType
	fields(c *codec)
}

// newMessage returns an empty message of type t, or nil for an unknown
// type.
func newMessage(t msgType) message {
	switch t {
	case typePrelogin:
		return new(preloginReq)
	case typeRegister:
		return new(registerReq)
	case typeLogin:
		return new(loginReq)
	case typeAccount:
		return new(accountReq)
	case typeUpdateAccount:
		return new(updateAccountReq)
	case typeVaults:
		return new(vaultsReq)
	case typePutVault:
		return new(putVaultReq)
	case typePull:
		return new(pullReq)
	case typePush:
		return new(pushReq)
	case typePutBlob:
		return new(putBlobReq)
	case typeGetBlob:
		return new(getBlobReq)
	case typeEntry:
		return new(entryMsg)
	case typeVault:
		return new(vaultMsg)
	case typeChunk:
		return new(chunkMsg)
	case typeEnd:
		return new(endMsg)
	case typeAbort:
		return new(abortMsg)
	case typeError:
		return new(errorMsg)
	case typeDone:
		return new(doneMsg)
	case typeKDF:
		return new(kdfMsg)
	case typeAccountInfo:
		return new(accountMsg)
	case typeEpoch:
		return new(epochMsg)
	case typeVaultList:
		return new(vaultListMsg)
	case typePage:
		return new(pageMsg)
	case typeHead:
		return new(headMsg)
	}
	return nil
}

// secretBearing marks messages that carry a login key: both ends wipe
// their encoding once it is sent or handled.
type secretBearing interface{ secret() }

type (
	preloginReq      struct{ Email string }
	registerReq      struct{ R api.RegisterRequest }
	loginReq         struct{ R api.LoginRequest }
	accountReq       struct{}
	updateAccountReq struct{ U api.AccountUpdate }
	vaultsReq        struct{}
	putVaultReq      struct {
		Vault  string
		Record []byte
	}
	pullReq struct {
		Vault string
		Since uint64
	}
	pushReq struct {
		Vault string
		Base  uint64
		Count uint32 // entry messages that follow
	}
	putBlobReq struct{ Vault, Item, Blob string }
	getBlobReq struct{ Vault, Item, Blob string }

	entryMsg struct{ E api.Entry }
	vaultMsg struct{ V api.Vault }
	chunkMsg struct{ Data []byte }
	endMsg   struct{ Count uint32 } // chunks sent
	abortMsg struct{}

	errorMsg struct {
		Code   byte
		Detail string
	}
	doneMsg      struct{}
	kdfMsg       struct{ KDF []byte }
	accountMsg   struct{ A api.Account }
	epochMsg     struct{ Epoch uint64 }
	vaultListMsg struct{ Count uint32 } // vault messages that follow
	pageMsg      struct {
		Head  uint64
		Count uint32 // entry messages that follow
	}
	headMsg struct{ Head uint64 }
)

func (*preloginReq) typ() msgType      { return typePrelogin }
func (*registerReq) typ() msgType      { return typeRegister }
func (*loginReq) typ() msgType         { return typeLogin }
func (*accountReq) typ() msgType       { return typeAccount }
func (*updateAccountReq) typ() msgType { return typeUpdateAccount }
func (*vaultsReq) typ() msgType        { return typeVaults }
func (*putVaultReq) typ() msgType      { return typePutVault }
func (*pullReq) typ() msgType          { return typePull }
func (*pushReq) typ() msgType          { return typePush }
func (*putBlobReq) typ() msgType       { return typePutBlob }
func (*getBlobReq) typ() msgType       { return typeGetBlob }
func (*entryMsg) typ() msgType         { return typeEntry }
func (*vaultMsg) typ() msgType         { return typeVault }
func (*chunkMsg) typ() msgType         { return typeChunk }
func (*endMsg) typ() msgType           { return typeEnd }
func (*abortMsg) typ() msgType         { return typeAbort }
func (*errorMsg) typ() msgType         { return typeError }
func (*doneMsg) typ() msgType          { return typeDone }
func (*kdfMsg) typ() msgType           { return typeKDF }
func (*accountMsg) typ() msgType       { return typeAccountInfo }
func (*epochMsg) typ() msgType         { return typeEpoch }
func (*vaultListMsg) typ() msgType     { return typeVaultList }
func (*pageMsg) typ() msgType          { return typePage }
func (*headMsg) typ() msgType          { return typeHead }

func (*registerReq) secret()      {}
func (*loginReq) secret()         {}
func (*updateAccountReq) secret() {}

func (m *preloginReq) fields(c *codec) { c.str(&m.Email, "email", maxString) }

func (m *registerReq) fields(c *codec) {
	c.str(&m.R.Email, "email", maxString)
	c.str(&m.R.Account, "account", maxString)
	c.bytes(&m.R.KDF, "kdf", 0, maxKey)
	c.bytes(&m.R.LoginKey, "login_key", 0, maxKey)
	c.bytes(&m.R.Document, "document", 0, api.MaxDocument)
	c.str(&m.R.Device.ID, "device", maxString)
	c.str(&m.R.Device.Platform, "platform", maxString)
}

func (m *loginReq) fields(c *codec) {
	c.str(&m.R.Email, "email", maxString)
	c.bytes(&m.R.LoginKey, "login_key", 0, maxKey)
	c.str(&m.R.Device.ID, "device", maxString)
	c.str(&m.R.Device.Platform, "platform", maxString)
	c.str(&m.R.TOTP, "totp", maxString)
	c.str(&m.R.RecoveryCode, "recovery_code", maxString)
}

func (*accountReq) fields(*codec) {}

func (m *updateAccountReq) fields(c *codec) {
	c.u64(&m.U.Base)
	c.bytes(&m.U.Document, "document", 0, api.MaxDocument)
	has := m.U.Credentials != nil
	c.flag(&has, "has_credentials")
	if !has {
		return
	}
	if m.U.Credentials == nil {
		m.U.Credentials = new(api.Credentials)
	}
	c.bytes(&m.U.Credentials.KDF, "kdf", 0, maxKey)
	c.bytes(&m.U.Credentials.LoginKey, "login_key", 0, maxKey)
}

func (*vaultsReq) fields(*codec) {}

func (m *putVaultReq) fields(c *codec) {
	c.str(&m.Vault, "vault", maxString)
	c.bytes(&m.Record, "record", 0, api.MaxDocument)
}

func (m *pullReq) fields(c *codec) {
	c.str(&m.Vault, "vault", maxString)
	c.u64(&m.Since)
}

func (m *pushReq) fields(c *codec) {
	c.str(&m.Vault, "vault", maxString)
	c.u64(&m.Base)
	c.u32(&m.Count, "entry count", 1, api.MaxAppend)
}

func (m *putBlobReq) fields(c *codec) { blobFields(c, &m.Vault, &m.Item, &m.Blob) }
func (m *getBlobReq) fields(c *codec) { blobFields(c, &m.Vault, &m.Item, &m.Blob) }

func blobFields(c *codec, vault, itemID, blob *string) {
	c.str(vault, "vault", maxString)
	c.str(itemID, "item", maxString)
	c.str(blob, "blob", maxString)
}

func (m *entryMsg) fields(c *codec) {
	c.bytes(&m.E.Body, "entry body", 0, vlog.MaxEntry)
	c.bytes(&m.E.Sig, "entry signature", 0, vlog.MaxSig)
	c.bytes(&m.E.Payload, "entry payload", 0, maxPayload)
}

func (m *vaultMsg) fields(c *codec) {
	c.str(&m.V.Vault, "vault", maxString)
	c.u64(&m.V.Head)
	c.bytes(&m.V.Record, "record", 0, api.MaxDocument)
}

func (m *chunkMsg) fields(c *codec) { c.bytes(&m.Data, "chunk", frames.Min, frames.Max) }
func (m *endMsg) fields(c *codec)   { c.u32(&m.Count, "chunk count", 0, api.MaxBlobFrames) }
func (*abortMsg) fields(*codec)     {}

func (m *errorMsg) fields(c *codec) {
	c.u8(&m.Code, "error code", 1)
	c.str(&m.Detail, "error detail", maxDetail)
}

func (*doneMsg) fields(*codec)      {}
func (m *kdfMsg) fields(c *codec)   { c.bytes(&m.KDF, "kdf", 0, maxKey) }
func (m *epochMsg) fields(c *codec) { c.u64(&m.Epoch) }

func (m *accountMsg) fields(c *codec) {
	c.str(&m.A.Account, "account", maxString)
	c.str(&m.A.Email, "email", maxString)
	c.bytes(&m.A.KDF, "kdf", 0, maxKey)
	c.u64(&m.A.Epoch)
	c.flag(&m.A.TOTP, "totp")
	c.bytes(&m.A.Document, "document", 0, api.MaxDocument)
}

func (m *vaultListMsg) fields(c *codec) { c.u32(&m.Count, "vault count", 0, MaxVaults) }

func (m *pageMsg) fields(c *codec) {
	c.u64(&m.Head)
	c.u32(&m.Count, "entry count", 0, api.MaxPageLimit)
}

func (m *headMsg) fields(c *codec) { c.u64(&m.Head) }

// codec encodes, sizes or decodes one message body. The first error sticks
// and makes every later call a no-op. Integers are big-endian; a byte
// string is a u32 length and the bytes; a flag is one byte, 0 or 1.
type codec struct {
	mode int
	b    []byte // encoding: the output; decoding: the input not yet read
	n    int    // sizing: the length so far
	err  error
}

const (
	encoding = iota
	sizing
	decoding
)

func (c *codec) failf(format string, a ...any) {
	if c.err != nil {
		return
	}
	c.err = fmt.Errorf(format, a...)
}

func (c *codec) write(p []byte) {
	if c.mode == sizing {
		c.n += len(p)
	} else {
		c.b = append(c.b, p...)
	}
}

// read returns the next n bytes of the input.
func (c *codec) read(n int, what string) []byte {
	if len(c.b) < n {
		c.failf("message ends inside its %s", what)
		return nil
	}
	p := c.b[:n:n]
	c.b = c.b[n:]
	return p
}

func (c *codec) u8(v *byte, what string, min byte) {
	switch {
	case c.err != nil:
	case c.mode != decoding && *v < min:
		c.failf("%s is %d (want at least %d)", what, *v, min)
	case c.mode != decoding:
		c.write([]byte{*v})
	default:
		if p := c.read(1, what); p != nil {
			if *v = p[0]; *v < min {
				c.failf("%s is %d (want at least %d)", what, *v, min)
			}
		}
	}
}

func (c *codec) flag(v *bool, what string) {
	switch {
	case c.err != nil:
	case c.mode != decoding:
		b := byte(0)
		if *v {
			b = 1
		}
		c.write([]byte{b})
	default:
		if p := c.read(1, what); p != nil {
			if p[0] > 1 {
				c.failf("%s is %d (want 0 or 1)", what, p[0])
			}
			*v = p[0] == 1
		}
	}
}

func (c *codec) u32(v *uint32, what string, min, max uint32) {
	switch {
	case c.err != nil:
	case c.mode != decoding && (*v < min || *v > max):
		c.failf("%s is %d (want %d..%d)", what, *v, min, max)
	case c.mode != decoding:
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], *v)
		c.write(a[:])
	default:
		if p := c.read(4, what); p != nil {
			if *v = binary.BigEndian.Uint32(p); *v < min || *v > max {
				c.failf("%s is %d (want %d..%d)", what, *v, min, max)
			}
		}
	}
}

func (c *codec) u64(v *uint64) {
	switch {
	case c.err != nil:
	case c.mode != decoding:
		var a [8]byte
		binary.BigEndian.PutUint64(a[:], *v)
		c.write(a[:])
	default:
		if p := c.read(8, "number"); p != nil {
			*v = binary.BigEndian.Uint64(p)
		}
	}
}

// bytes is a byte string of min..max bytes. It decodes to nil when empty
// (one encoding per value), otherwise to a slice of the message that the
// callee may keep.
func (c *codec) bytes(v *[]byte, what string, min, max int) {
	switch {
	case c.err != nil:
	case c.mode != decoding && (len(*v) < min || len(*v) > max):
		c.failf("%s is %d bytes (want %d..%d)", what, len(*v), min, max)
	case c.mode != decoding:
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(len(*v)))
		c.write(a[:])
		c.write(*v)
	default:
		p := c.read(4, what+" length")
		if p == nil {
			return
		}
		n := binary.BigEndian.Uint32(p)
		if n < uint32(min) || n > uint32(max) {
			c.failf("%s is %d bytes (want %d..%d)", what, n, min, max)
			return
		}
		if *v = c.read(int(n), what); n == 0 {
			*v = nil
		}
	}
}

func (c *codec) str(v *string, what string, max int) {
	if c.mode != decoding {
		p := []byte(*v)
		c.bytes(&p, what, 0, max)
		return
	}
	var p []byte
	c.bytes(&p, what, 0, max)
	*v = string(p)
}

// encode appends m's message to buf. It fails, without ErrProtocol, if a
// field is out of bounds: the caller's arguments are refused before
// anything is sent.
func encode(buf []byte, m message) ([]byte, error) {
	c := codec{mode: encoding, b: append(buf, Version, byte(m.typ()))}
	m.fields(&c)
	if c.err != nil {
		return nil, c.err
	}
	if len(c.b)-len(buf) > MaxMessage {
		return nil, fmt.Errorf("%s message is %d bytes, more than %d", m.typ(), len(c.b)-len(buf), MaxMessage)
	}
	return c.b, nil
}

// size returns the length of m's message, checking bounds as encode does.
func size(m message) (int, error) {
	c := codec{mode: sizing, n: headerLen}
	m.fields(&c)
	if c.err != nil {
		return 0, c.err
	}
	if c.n > MaxMessage {
		return 0, fmt.Errorf("%s message is %d bytes, more than %d", m.typ(), c.n, MaxMessage)
	}
	return c.n, nil
}

// decode parses one message strictly: the version, a known type, every
// field in bounds and nothing after the last. Errors wrap ErrProtocol (and
// errVersion for another version). The message's byte strings are slices
// of b.
func decode(b []byte) (message, error) {
	switch {
	case len(b) > MaxMessage:
		return nil, fmt.Errorf("%w: message is %d bytes, more than %d", ErrProtocol, len(b), MaxMessage)
	case len(b) < headerLen:
		return nil, fmt.Errorf("%w: message is %d bytes, shorter than its header", ErrProtocol, len(b))
	case b[0] != Version:
		return nil, fmt.Errorf("%w %d (this device speaks version %d: update safe on both devices)", errVersion, b[0], Version)
	}
	m := newMessage(msgType(b[1]))
	if m == nil {
		return nil, fmt.Errorf("%w: unknown message type %s", ErrProtocol, msgType(b[1]))
	}
	c := codec{mode: decoding, b: b[headerLen:]}
	m.fields(&c)
	if c.err != nil {
		return nil, fmt.Errorf("%w: %s message: %v", ErrProtocol, m.typ(), c.err)
	}
	if len(c.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the end of a %s message", ErrProtocol, len(c.b), m.typ())
	}
	return m, nil
}
