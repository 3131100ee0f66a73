package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/safehold/safehold/internal/api"
)

// Body limits per kind of request. api.MaxJSONBody is the ceiling; requests
// that carry no document need far less.
const (
	smallBody = 64 << 10
	// docBody fits a MaxDocument document in base64 beside the rest.
	docBody = api.MaxDocument/3*4 + 4 + smallBody
)

// httpError is an error with the response it deserves. msg is shown to the
// client and must name no secret and no internal detail; cause is logged.
type httpError struct {
	status     int
	code       string
	msg        string
	head       uint64
	epoch      uint64
	seq        uint64
	rule       string
	retryAfter int
	cause      error
}

func (e *httpError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.status, e.code, e.msg, e.cause)
	}
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg)
}

func (e *httpError) Unwrap() error { return e.cause }

var errInternal = &httpError{status: http.StatusInternalServerError, code: api.CodeInternal, msg: "internal server error; the server log has details"}

func badRequest(format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, code: api.CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(what string) *httpError {
	return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: what + " not found"}
}

func forbidden(msg string) *httpError {
	return &httpError{status: http.StatusForbidden, code: api.CodeForbidden, msg: msg}
}

func unauthorized(msg string) *httpError {
	return &httpError{status: http.StatusUnauthorized, code: api.CodeUnauthorized, msg: msg}
}

func tooLarge(msg string) *httpError {
	return &httpError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge, msg: msg}
}

// writeError writes e as an api.Error.
func writeError(w http.ResponseWriter, e *httpError) {
	if e.retryAfter > 0 {
		w.Header().Set(api.HeaderRetryAfter, strconv.Itoa(e.retryAfter))
	}
	writeJSONStatus(w, e.status, api.Error{
		Code:    e.code,
		Message: e.msg,
		Head:    e.head,
		Epoch:   e.epoch,
		Seq:     e.seq,
		Rule:    e.rule,
	})
}

// writeJSON writes v with status 200.
func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types are marshalled; this cannot happen.
		status = http.StatusInternalServerError
		b = []byte(`{"code":"internal","message":"internal server error"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// fail answers a handler's error. Errors that are not an *httpError are
// internal: the client learns nothing of them, the log gets them.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
	case errors.As(err, &mbe):
		he = tooLarge(fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		he = &httpError{status: 499, code: api.CodeBadRequest, msg: "request canceled"}
	default:
		s.log.Error("request failed", "method", r.Method, "route", r.Pattern, "err", err)
		he = errInternal
	}
	writeError(w, he)
}

// decodeJSON reads one JSON object of at most limit bytes into v, refusing
// unknown fields and trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		if err == nil {
			return badRequest("the request body holds more than one JSON value")
		}
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
	}
	if errors.Is(err, io.EOF) {
		return badRequest("the request body is empty; send a JSON object")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badRequest("the request body is not valid JSON (at byte %d)", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return badRequest("field %q has the wrong type (want %s)", te.Field, te.Type)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("the request body is truncated JSON")
	}
	// Unknown fields, bad base64: encoding/json's message names the field
	// or position, never a value.
	return badRequest("the request body does not match the API: %v", err)
}
