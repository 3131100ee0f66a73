package frames

import (
	"bytes"
	"encoding/binary"
	"errors"
	"iter"
	"testing"
)

func seq(chunks ...[]byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for _, c := range chunks {
			if !yield(c, nil) {
				return
			}
		}
	}
}

func collect(t *testing.T, b []byte) ([][]byte, error) {
	t.Helper()
	var out [][]byte
	err := Read(bytes.NewReader(b), func(idx int, c []byte) error {
		if idx != len(out) {
			t.Fatalf("index %d, want %d", idx, len(out))
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

func TestRoundTrip(t *testing.T) {
	chunks := [][]byte{bytes.Repeat([]byte{1}, Min), bytes.Repeat([]byte{2}, Max), bytes.Repeat([]byte{3}, 1000)}
	var buf bytes.Buffer
	if err := Write(&buf, seq(chunks...)); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 3*4+Min+Max+1000 {
		t.Errorf("encoded %d bytes", buf.Len())
	}
	got, err := collect(t, buf.Bytes())
	if err != nil || len(got) != 3 {
		t.Fatalf("Read: %d chunks, %v", len(got), err)
	}
	for i := range got {
		if !bytes.Equal(got[i], chunks[i]) {
			t.Errorf("chunk %d differs", i)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	boom := errors.New("boom")
	for name, tc := range map[string]struct {
		chunks iter.Seq2[[]byte, error]
		want   error
	}{
		"none":         {seq(), ErrMalformed},
		"short":        {seq(make([]byte, Min-1)), ErrMalformed},
		"long":         {seq(make([]byte, Max+1)), ErrMalformed},
		"source error": {func(yield func([]byte, error) bool) { _ = yield(make([]byte, 40), nil) && yield(nil, boom) }, boom},
	} {
		if err := Write(&bytes.Buffer{}, tc.chunks); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func frame(n int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(n))
	return append(b, make([]byte, n)...)
}

func TestReadRefuses(t *testing.T) {
	good := frame(40)
	for name, b := range map[string][]byte{
		"empty":         nil,
		"short frame":   frame(Min - 1),
		"long frame":    binary.BigEndian.AppendUint32(nil, Max+1),
		"cut length":    append(bytes.Clone(good), 0, 0),
		"cut frame":     good[:len(good)-1],
		"zero length":   frame(0),
		"only a length": good[:4],
	} {
		if _, err := collect(t, b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	stop := errors.New("stop")
	if err := Read(bytes.NewReader(good), func(int, []byte) error { return stop }); err != stop {
		t.Errorf("fn's error came back as %v", err)
	}
}

// FuzzRead checks that whatever Read accepts, Write encodes to the same
// bytes.
func FuzzRead(f *testing.F) {
	f.Add(frame(40))
	f.Add(append(frame(Min), frame(Max)...))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var chunks [][]byte
		if err := Read(bytes.NewReader(b), func(_ int, c []byte) error { chunks = append(chunks, c); return nil }); err != nil {
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, seq(chunks...)); err != nil {
			t.Fatalf("Write of what Read accepted: %v", err)
		}
		if !bytes.Equal(buf.Bytes(), b) {
			t.Fatalf("Read then Write changed the bytes")
		}
	})
}
