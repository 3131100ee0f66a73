package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func frame(payload string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func TestReadFrameBounds(t *testing.T) {
	// Hand-built inputs, not made by WriteFrame.
	big := bytes.Repeat([]byte{'x'}, MaxFrame)
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr error
		left    int // bytes left unread in the reader
	}{
		{"empty input", nil, nil, io.EOF, 0},
		{"partial prefix", []byte{0, 0}, nil, ErrFrame, 0},
		{"zero length", []byte{0, 0, 0, 0, '{', '}'}, nil, ErrFrame, 2},
		{"one byte", []byte{0, 0, 0, 1, '7'}, []byte("7"), nil, 0},
		{"max frame", append(binary.BigEndian.AppendUint32(nil, MaxFrame), big...), big, nil, 0},
		{"max frame plus one", append(binary.BigEndian.AppendUint32(nil, MaxFrame+1), big...), nil, ErrFrame, MaxFrame},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 'a'}, nil, ErrFrame, 1},
		{"truncated payload", []byte{0, 0, 0, 5, 'a', 'b'}, nil, ErrFrame, 0},
		{"two frames", []byte{0, 0, 0, 1, 'a', 0, 0, 0, 1, 'b'}, []byte("a"), nil, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tt.in)
			got, err := ReadFrame(r)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, err %v", len(got), err)
			}
			if r.Len() != tt.left {
				t.Fatalf("%d bytes left unread, want %d", r.Len(), tt.left)
			}
		})
	}
}

func TestAppendFrameBounds(t *testing.T) {
	if _, err := AppendFrame(nil, nil); !errors.Is(err, ErrFrame) {
		t.Errorf("empty payload: %v", err)
	}
	if _, err := AppendFrame(nil, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrame) {
		t.Errorf("oversize payload: %v", err)
	}
	got, err := AppendFrame([]byte("x"), []byte("{}"))
	if err != nil || string(got) != "x\x00\x00\x00\x02{}" {
		t.Errorf("AppendFrame = %q, %v", got, err)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte(`{"op":"a"}`)); err != nil || buf.String() != string(frame(`{"op":"a"}`)) {
		t.Errorf("WriteFrame = %q, %v", buf.Bytes(), err)
	}
}

func TestDecodeRequestCanonical(t *testing.T) {
	good := []struct {
		in   string
		want Request
	}{
		{`{"op":"hello","args":{"version":1}}`, Request{Op: "hello", Args: json.RawMessage(`{"version":1}`)}},
		{`{"id":7,"op":"get"}`, Request{ID: 7, Op: "get"}},
		{`{"id":18446744073709551615,"op":"a.b_c9","args":[1,"x"],"files":4}`, Request{ID: 1<<64 - 1, Op: "a.b_c9", Args: json.RawMessage(`[1,"x"]`), Files: 4}},
		{`{"id":1,"op":"x","args":null}`, Request{ID: 1, Op: "x", Args: json.RawMessage(`null`)}},
	}
	for _, tt := range good {
		got, err := DecodeRequest([]byte(tt.in))
		if err != nil {
			t.Errorf("DecodeRequest(%s): %v", tt.in, err)
			continue
		}
		if got.ID != tt.want.ID || got.Op != tt.want.Op || string(got.Args) != string(tt.want.Args) || got.Files != tt.want.Files {
			t.Errorf("DecodeRequest(%s) = %+v", tt.in, got)
		}
		enc, err := EncodeRequest(got)
		if err != nil || string(enc) != tt.in {
			t.Errorf("EncodeRequest(%+v) = %s, %v", got, enc, err)
		}
	}
	bad := []string{
		``,
		`null`,
		`[]`,
		`"get"`,
		`{}`,
		`{"op":""}`,
		`{"op":"Get"}`,
		`{"op":"1get"}`,
		`{"op":"get-x"}`,
		`{"op":"` + strings.Repeat("a", MaxOpLen+1) + `"}`,
		`{"op":"get","extra":1}`,                 // unknown field
		`{"op":"get","op":"put"}`,                // duplicate field
		`{"op":"get","id":1}`,                    // field order
		`{"id":0,"op":"get"}`,                    // zero id is omitted
		`{"op":"get","files":0}`,                 // zero files is omitted
		`{"op":"get","files":5}`,                 // over MaxFiles
		`{"op":"get","files":-1}`,                //
		`{"id":1.0,"op":"get"}`,                  // number spelling
		`{"id":-1,"op":"get"}`,                   //
		`{"id":18446744073709551616,"op":"get"}`, // overflow
		`{"op":"get"} `,                          // whitespace
		` {"op":"get"}`,                          //
		`{ "op":"get"}`,                          //
		`{"op":"get"}{"op":"get"}`,               // two values
		`{"op":"get"}x`,                          // trailing data
		`{"op":"\u0067et"}`,                      // alternative escape
		`{"op":"get","args":{"a" : 1}}`,          // args not compact
		`{"op":"get","args":"<"}`,                // json.Marshal escapes <
		`{"OP":"get"}`,                           // case-folded field name
	}
	for _, in := range bad {
		if _, err := DecodeRequest([]byte(in)); !errors.Is(err, ErrEncoding) {
			t.Errorf("DecodeRequest(%s) = %v, want ErrEncoding", in, err)
		}
	}
	if _, err := EncodeRequest(Request{Op: "Bad"}); !errors.Is(err, ErrEncoding) {
		t.Errorf("EncodeRequest accepted a bad op")
	}
}

func TestDecodeResponseCanonical(t *testing.T) {
	good := []string{
		`{}`,
		`{"id":3,"result":{"a":1}}`,
		`{"id":3,"result":null}`,
		`{"id":3,"error":{"code":"not_found","message":"no such item"}}`,
		`{"error":{"code":"locked","message":"the vault is locked","hint":"run safe unlock"}}`,
		`{"id":3,"progress":{"done":0,"total":10}}`,
		`{"id":3,"progress":{"done":10,"total":10}}`,
	}
	for _, in := range good {
		got, err := DecodeResponse([]byte(in))
		if err != nil {
			t.Errorf("DecodeResponse(%s): %v", in, err)
			continue
		}
		enc, err := EncodeResponse(got)
		if err != nil || string(enc) != in {
			t.Errorf("re-encoding %s = %s, %v", in, enc, err)
		}
	}
	bad := []string{
		`{"id":3,"result":1,"error":{"code":"x","message":""}}`, // both
		`{"id":3,"error":{"code":"","message":"m"}}`,            // empty code
		`{"id":3,"error":{"code":"Bad Code","message":"m"}}`,    //
		`{"id":3,"error":{"code":"x"}}`,                         // message is always present
		`{"id":3,"error":{"code":"x","message":"m","hint":""}}`, // empty hint is omitted
		`{"id":3,"error":{"code":"x","message":"m","data":1}}`,  // unknown field
		`{"id":3,"error":null}`,                                 //
		`{"result":1,"id":3}`,                                   // order
		`{"progress":{"done":1,"total":2}}`,                     // progress without an id
		`{"id":3,"progress":{"done":3,"total":2}}`,              // past the total
		`{"id":3,"progress":{"done":-1,"total":2}}`,             //
		`{"id":3,"progress":{"total":2}}`,                       // done is always present
		`{"id":3,"progress":{"done":1,"total":2,"eta":5}}`,      // unknown field
		`{"id":3,"progress":null}`,                              //
		`{"id":3,"error":{"code":"x","message":"m"},"progress":{"done":1,"total":2}}`,
		`{"id":3,"progress":{"done":1,"total":2},"result":1}`,
	}
	for _, in := range bad {
		if _, err := DecodeResponse([]byte(in)); !errors.Is(err, ErrEncoding) {
			t.Errorf("DecodeResponse(%s) = %v, want ErrEncoding", in, err)
		}
	}
}

func TestDecodeArgs(t *testing.T) {
	type args struct {
		Name string `json:"name"`
	}
	var a args
	if err := DecodeArgs(json.RawMessage(`{"name":"x"}`), &a); err != nil || a.Name != "x" {
		t.Fatalf("DecodeArgs = %+v, %v", a, err)
	}
	a = args{}
	if err := DecodeArgs(nil, &a); err != nil || a.Name != "" {
		t.Fatalf("DecodeArgs(nil) = %+v, %v", a, err)
	}
	for _, in := range []string{`{"name":"x","admin":true}`, `{"name":"x"}{}`, `{"name":1}`, `{`} {
		err := DecodeArgs(json.RawMessage(in), &a)
		if !errors.Is(err, &Error{Code: CodeBadRequest}) {
			t.Errorf("DecodeArgs(%s) = %v, want bad_request", in, err)
		}
	}
}

func TestErrorIs(t *testing.T) {
	locked := &Error{Code: "locked"}
	err := error(&Error{Code: "locked", Message: "the vault is locked"})
	wrapped := errors.Join(errors.New("context"), err)
	if !errors.Is(err, locked) || !errors.Is(wrapped, locked) {
		t.Fatal("errors.Is does not match by code")
	}
	if errors.Is(err, &Error{Code: "not_found"}) {
		t.Fatal("errors.Is matched another code")
	}
	if err.Error() != "the vault is locked" || (&Error{Code: "x"}).Error() != "agent: x" {
		t.Fatal("unexpected Error() text")
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader and the message
// decoders. Whatever is accepted must re-encode byte for byte.
func FuzzReadFrame(f *testing.F) {
	for _, s := range []string{
		string(frame(`{"op":"hello","args":{"version":1}}`)),
		string(frame(`{"id":1,"op":"get","args":{"id":"x"},"files":1}`)),
		string(frame(`{"id":1,"result":{"version":1,"pid":12}}`)),
		string(frame(`{"id":2,"error":{"code":"locked","message":"m","hint":"h"}}`)),
		string(frame(`{"op":"get"} `)),
		string(frame(`{"op":"get","op":"get"}`)),
		"\x00\x00\x00\x00",
		"\x00\x10\x00\x01",
		"\xff\xff\xff\xff{}",
		"\x00\x00\x00\x05{}",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		payload, err := ReadFrame(r)
		if err != nil {
			if err != io.EOF && !errors.Is(err, ErrFrame) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if len(payload) == 0 || len(payload) > MaxFrame {
			t.Fatalf("accepted a %d-byte payload", len(payload))
		}
		consumed := len(in) - r.Len()
		again, err := AppendFrame(nil, payload)
		if err != nil || !bytes.Equal(again, in[:consumed]) {
			t.Fatalf("frame does not re-encode: %v", err)
		}
		if req, err := DecodeRequest(payload); err == nil {
			enc, err := EncodeRequest(req)
			if err != nil || !bytes.Equal(enc, payload) {
				t.Fatalf("request %q re-encodes as %q (%v)", payload, enc, err)
			}
		}
		if resp, err := DecodeResponse(payload); err == nil {
			enc, err := EncodeResponse(resp)
			if err != nil || !bytes.Equal(enc, payload) {
				t.Fatalf("response %q re-encodes as %q (%v)", payload, enc, err)
			}
		}
	})
}

// A result holding a character json.Marshal escapes is not in canonical
// form: accepting it broke the one-encoding rule (found by FuzzReadFrame,
// input ccb741a063935717).
func TestDecodeResponseRefusesUnescapedHTMLCharacters(t *testing.T) {
	for _, result := range []string{`{"a&b":1}`, `"<"`, `">"`, "\"\u2028\"", "\"\u2029\""} {
		payload := `{"id":1,"result":` + result + `}`
		if _, err := DecodeResponse([]byte(payload)); !errors.Is(err, ErrEncoding) {
			t.Errorf("DecodeResponse(%q) = %v, want ErrEncoding", payload, err)
		}
		// What EncodeResponse writes for the same value is accepted.
		enc, err := EncodeResponse(Response{ID: 1, Result: json.RawMessage(result)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeResponse(enc); err != nil {
			t.Errorf("DecodeResponse(%q), the encoding of %q: %v", enc, result, err)
		}
	}
}
