// Package agent is the transport, security and lifecycle of the Safehold
// unlock agent: a long-lived process that holds the unlocked vault engine,
// and the short-lived `safe` commands that talk to it over a Unix socket.
//
// The package knows nothing about vaults. The engine is a Handler; this
// package supplies:
//
//   - the wire format: frames of a 4-byte big-endian length and one
//     canonical JSON document, at most MaxFrame bytes (ReadFrame, WriteFrame,
//     EncodeRequest, DecodeRequest, EncodeResponse, DecodeResponse,
//     DecodeArgs);
//   - the hello exchange that checks the protocol version;
//   - file-descriptor passing, so a command can hand the agent its stdin,
//     stdout or an open file to stream large data;
//   - Listen, which creates the socket in a 0700 directory with mode 0600
//     before it listens, and Server, which checks every peer's uid
//     (SO_PEERCRED), serialises handler calls, enforces the idle timeout and
//     shuts down gracefully;
//   - Client (Dial, Call), Start to launch an agent on demand, and Harden
//     for the agent process. Package lockedmem holds keys in locked,
//     guarded memory.
//
// The byte-level specification is in docs/design.md. The package is Linux-only for now: it relies on
// SO_PEERCRED, SCM_RIGHTS, flock and prctl.
package agent
