// Package peer carries a remote.Remote over a message connection, so that
// one Safehold device syncs with another: a peer is just another remote.
// The device that holds the data runs Serve with its own Remote (a folder,
// or its server) as the backing; the other uses NewClient's Client exactly
// as it would use that Remote. The client verifies everything it reads, as
// for any remote; the connection (package channel) authenticates the two
// devices and encrypts.
//
// # Wire format (version 1)
//
// Every message is
//
//	version (u8, 1) | type (u8) | fields
//
// at most MaxMessage bytes. Integers are big-endian u8, u32 or u64; a byte
// string or string is a u32 length then that many bytes, within the
// field's bounds; a flag is one byte, 0 or 1. An empty byte string decodes
// to nil, so each value has one encoding, and nothing may follow the last
// field. One request is in flight at a time: the client sends a request
// (and, for push and put_blob, its stream), then reads the response (and,
// for vaults, pull and get_blob, its stream) before the next request.
//
// Requests carry the Remote method's arguments (prelogin, register,
// login, account, update_account, vaults, put_vault, pull, push,
// put_blob, get_blob); responses carry its results (done, kdf,
// account_info, epoch, vault_list, page, head) or an error code. Log
// entries, vaults and blob chunks travel one per message (entry, vault,
// chunk), so that a blob is never held whole; an entry message is the
// largest message. A blob ends with end (the chunk count) or, when the
// uploader's source fails, abort. docs/design.md has the byte layouts,
// bounds and codes.
//
// Errors of package remote cross as stable codes and come back as the
// same values (errors.Is). Any other error of the backing crosses as a
// code alone, ErrFailed, since its text may hold paths or worse; a stale
// write and refused entries also carry the backing's text, cleaned. A
// message that breaks the format is ErrProtocol: the side that receives it
// answers or fails, then closes the connection.
package peer

// MsgConn is the secure message connection: *channel.Conn implements it.
// WriteMessage sends one message and does not keep p after it returns;
// ReadMessage returns the next message in order, io.EOF (possibly
// wrapped) once the other end has closed; Close ends the connection and
// makes calls blocked in the other two return.
type MsgConn interface {
	WriteMessage(p []byte) error
	ReadMessage() ([]byte, error)
	Close() error
}
