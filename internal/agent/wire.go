package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Wire constants. They are part of the protocol (docs/design.md).
const (
	// ProtocolVersion is sent in the hello exchange; both ends must agree.
	ProtocolVersion = 1
	// MaxFrame is the largest payload of one frame, in bytes. The 4-byte
	// length prefix is not counted. It is large enough for a bulk add or a
	// listing of 100,000 items; the reader allocates as data arrives, not
	// what the prefix claims.
	MaxFrame = 64 << 20
	// MaxFiles is the most file descriptors one request may carry.
	MaxFiles = 4
	// MaxOpLen bounds the op name.
	MaxOpLen = 64

	opHello = "hello"
)

// Errors of the framing and encoding layer.
var (
	// ErrFrame reports a frame that is empty, larger than MaxFrame or cut
	// short.
	ErrFrame = errors.New("agent: bad frame")
	// ErrEncoding reports a frame whose JSON is not the one canonical
	// encoding of a message.
	ErrEncoding = errors.New("agent: bad message encoding")
)

// Request is one call from a client. Files is the number of file descriptors
// that travel with the frame (SCM_RIGHTS); the server checks that exactly
// that many arrived.
type Request struct {
	ID    uint64          `json:"id,omitempty"`
	Op    string          `json:"op"`
	Args  json.RawMessage `json:"args,omitempty"`
	Files int             `json:"files,omitempty"`
}

// Response answers the request with the same ID. Exactly one of Result and
// Error is set, or neither when the operation returns nothing.
//
// A response with Progress is an interim message instead (a progress
// frame, docs/design.md §8.6): it carries neither Result nor Error, and the
// final response for the same ID follows. Only ops documented to report
// progress send them, and a client that sent one MUST accept them.
type Response struct {
	ID       uint64          `json:"id,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *Error          `json:"error,omitempty"`
	Progress *Progress       `json:"progress,omitempty"`
}

// Progress is the content of a progress frame: Done of Total units of the
// request's work (items re-encrypted...) are finished, 0 <= Done <= Total.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// Error is an error reported by the agent. Code is a stable machine-readable
// string chosen by the handler ("locked", "not_found"...); Message is for the
// user; Hint, optional, tells the user what to do. None of them may contain
// secrets.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Error codes used by the transport itself. Handlers choose their own codes
// for everything else.
const (
	CodeInternal        = "internal"         // handler failed with a non-*Error error
	CodeBadRequest      = "bad_request"      // malformed frame or message
	CodeHelloRequired   = "hello_required"   // first frame was not hello
	CodeVersionMismatch = "version_mismatch" // hello with another protocol version
	CodePeerRefused     = "peer_refused"     // peer credentials check failed
	CodeBusy            = "busy"             // too many connections
	CodeTooLarge        = "too_large"        // response would exceed MaxFrame
)

func (e *Error) Error() string {
	if e.Message == "" {
		return "agent: " + e.Code
	}
	return e.Message
}

// Is makes errors.Is(err, &Error{Code: c}) true for any *Error with code c,
// so handlers and callers can declare sentinels by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// ReadFrame reads one frame from r and returns its payload. A zero length or
// a length above MaxFrame is an error (wrapping ErrFrame) and nothing beyond
// the prefix is read. A clean end of input before the first prefix byte is
// io.EOF.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: reading length: %w", ErrFrame, err)
	}
	n, err := frameLen(hdr)
	if err != nil {
		return nil, err
	}
	// One right-sized allocation for any ordinary frame; only a frame over
	// 16 MiB grows as its bytes arrive, so a length prefix alone cannot
	// make the reader allocate 64 MiB.
	const reserve = 16 << 20
	if n <= reserve {
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%w: reading %d-byte payload: %w", ErrFrame, n, err)
		}
		return payload, nil
	}
	var buf bytes.Buffer
	buf.Grow(reserve)
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: reading %d-byte payload: %w", ErrFrame, n, err)
	}
	return buf.Bytes(), nil
}

func frameLen(hdr [4]byte) (int, error) {
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, fmt.Errorf("%w: zero length", ErrFrame)
	}
	if n > MaxFrame {
		return 0, fmt.Errorf("%w: length %d exceeds %d", ErrFrame, n, MaxFrame)
	}
	return int(n), nil
}

// AppendFrame appends the frame carrying payload to dst.
func AppendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) == 0 || len(payload) > MaxFrame {
		return dst, fmt.Errorf("%w: payload of %d bytes", ErrFrame, len(payload))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...), nil
}

// WriteFrame writes payload as one frame with a single Write call.
func WriteFrame(w io.Writer, payload []byte) error {
	b, err := AppendFrame(make([]byte, 0, 4+len(payload)), payload)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// EncodeRequest returns the canonical JSON of req.
func EncodeRequest(req Request) ([]byte, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(req)
}

// DecodeRequest parses a request payload. It accepts only the canonical
// encoding, the one EncodeRequest produces: no unknown or duplicate fields,
// no whitespace, fields in order, one value.
func DecodeRequest(b []byte) (Request, error) {
	var req Request
	if err := decodeCanonical(b, &req); err != nil {
		return Request{}, err
	}
	if err := req.validate(); err != nil {
		return Request{}, err
	}
	return req, nil
}

// EncodeResponse returns the canonical JSON of resp.
func EncodeResponse(resp Response) ([]byte, error) {
	if err := resp.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// DecodeResponse parses a response payload, canonical encoding only. The
// result is checked to be one JSON value placed exactly where the canonical
// envelope puts it; its own content is checked by whoever decodes it
// (DecodeArgs: strictly, unknown fields refused). Re-encoding a large result
// only to compare it cost a listing of 10,000 items a third of its time.
func DecodeResponse(b []byte) (Response, error) {
	var resp Response
	if err := decodeStrict(b, &resp); err != nil {
		return Response{}, fmt.Errorf("%w: %w", ErrEncoding, err)
	}
	result := resp.Result
	resp.Result = nil
	env, err := json.Marshal(resp)
	if err != nil {
		return Response{}, fmt.Errorf("%w: %w", ErrEncoding, err)
	}
	resp.Result = result
	if result == nil {
		if !bytes.Equal(env, b) {
			return Response{}, fmt.Errorf("%w: not in canonical form", ErrEncoding)
		}
	} else {
		// With a result the canonical form is the envelope with
		// ,"result":RESULT (or "result":RESULT) before its closing brace.
		head := env[:len(env)-1]
		sep := `,"result":`
		if len(head) == 1 {
			sep = `"result":`
		}
		rest, ok := bytes.CutPrefix(b, head)
		if ok {
			rest, ok = bytes.CutPrefix(rest, []byte(sep))
		}
		if ok {
			rest, ok = bytes.CutSuffix(rest, []byte("}"))
		}
		if !ok || !bytes.Equal(rest, result) || !compactValue(result) {
			return Response{}, fmt.Errorf("%w: not in canonical form", ErrEncoding)
		}
	}
	if err := resp.validate(); err != nil {
		return Response{}, err
	}
	return resp, nil
}

// DecodeArgs decodes a request's Args (or a response's Result) into v
// strictly: one JSON value, no unknown fields, nothing after it. Empty raw
// (args omitted) decodes as the JSON object {} so that v keeps its zero
// value. Handlers should use it for every op.
func DecodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	if err := decodeStrict(raw, v); err != nil {
		return &Error{Code: CodeBadRequest, Message: "malformed arguments: " + err.Error()}
	}
	return nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// compactValue reports whether a JSON value is written as json.Marshal
// writes a json.RawMessage: no white space between tokens, and none of the
// characters it escapes (<, > and &, and U+2028 and U+2029, whose UTF-8
// begins E2 80 A8 and E2 80 A9), so that a decoded response re-encodes to
// the same bytes (a cheap scan, no allocation).
func compactValue(b []byte) bool {
	inString, escaped := false, false
	for i, c := range b {
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xe2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xa8 || b[i+2] == 0xa9):
			return false
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\n' || c == '\t' || c == '\r'):
			return false
		}
	}
	return !inString
}

// decodeCanonical decodes strictly and then requires that re-encoding v gives
// back b byte for byte. That single check rejects whitespace, duplicate and
// reordered fields, explicit zero values, alternative escapes and number
// spellings: every message has exactly one accepted encoding.
func decodeCanonical(b []byte, v any) error {
	if err := decodeStrict(b, v); err != nil {
		return fmt.Errorf("%w: %w", ErrEncoding, err)
	}
	again, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEncoding, err)
	}
	if !bytes.Equal(again, b) {
		return fmt.Errorf("%w: not in canonical form", ErrEncoding)
	}
	return nil
}

func (r Request) validate() error {
	if !validOp(r.Op) {
		return fmt.Errorf("%w: invalid op name", ErrEncoding)
	}
	if r.Files < 0 || r.Files > MaxFiles {
		return fmt.Errorf("%w: %d files, at most %d", ErrEncoding, r.Files, MaxFiles)
	}
	return nil
}

func (r Response) validate() error {
	if p := r.Progress; p != nil {
		if r.Result != nil || r.Error != nil {
			return fmt.Errorf("%w: progress frame with a result or an error", ErrEncoding)
		}
		if r.ID == 0 {
			return fmt.Errorf("%w: progress frame without an id", ErrEncoding)
		}
		if p.Done < 0 || p.Done > p.Total {
			return fmt.Errorf("%w: progress %d of %d", ErrEncoding, p.Done, p.Total)
		}
	}
	if r.Error != nil {
		if r.Result != nil {
			return fmt.Errorf("%w: response has both result and error", ErrEncoding)
		}
		if !validOp(r.Error.Code) {
			return fmt.Errorf("%w: invalid error code", ErrEncoding)
		}
	}
	return nil
}

// validOp reports whether s is a valid op name or error code:
// [a-z][a-z0-9_.]{0,63}. The restricted alphabet makes op names safe to log.
func validOp(s string) bool {
	if len(s) == 0 || len(s) > MaxOpLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '.' {
			return false
		}
	}
	return true
}
