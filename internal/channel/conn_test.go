package channel

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTripBothWaysTCP(t *testing.T) {
	cn, sn := tcpPair(t)
	ka, kb := testKeyPair()
	a, b := New(cn, ka, Options{}), New(sn, kb, Options{})
	defer a.Close()
	defer b.Close()

	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	pump := func(name string, w, r *Conn) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := w.WriteMessage(message(i, i%5000)); err != nil {
					errs <- fmt.Errorf("%s write %d: %w", name, i, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range n {
				got, err := r.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("%s read %d: %w", name, i, err)
					return
				}
				if !bytes.Equal(got, message(i, i%5000)) {
					errs <- fmt.Errorf("%s message %d differs", name, i)
					return
				}
			}
		}()
	}
	pump("a->b", a, b)
	pump("b->a", b, a)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRoundTripPipe(t *testing.T) {
	cn, sn := net.Pipe()
	ka, kb := testKeyPair()
	a, b := New(cn, ka, Options{}), New(sn, kb, Options{})
	done := make(chan error, 1)
	go func() {
		for i := range 100 {
			if err := a.WriteMessage(message(i, i)); err != nil {
				done <- err
				return
			}
		}
		done <- a.Close()
	}()
	for i := range 100 {
		got, err := b.ReadMessage()
		if err != nil || !bytes.Equal(got, message(i, i)) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if _, err := b.ReadMessage(); err != io.EOF {
		t.Fatalf("after the close frame: got %v, want io.EOF", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLargeMessages(t *testing.T) {
	cn, sn := tcpPair(t)
	ka, kb := testKeyPair()
	a, b := New(cn, ka, Options{}), New(sn, kb, Options{})
	defer a.Close()
	defer b.Close()

	big := message(7, DefaultMaxMessage)
	done := make(chan error, 1)
	go func() {
		for range 3 {
			if err := a.WriteMessage(big); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range 3 {
		got, err := b.ReadMessage()
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("large message %d: %v", i, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// One byte more is refused by the sender, which stays usable.
	err := a.WriteMessage(make([]byte, DefaultMaxMessage+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized write: got %v, want ErrTooLarge", err)
	}
	if err := a.WriteMessage([]byte("still alive")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ReadMessage(); err != nil || string(got) != "still alive" {
		t.Fatalf("after a refused write: %q, %v", got, err)
	}
}

func TestEmptyMessage(t *testing.T) {
	ka, kb := testKeyPair()
	a, buf := recorder(t, ka, Options{})
	if err := a.WriteMessage(nil); err != nil {
		t.Fatal(err)
	}
	got, err := player(kb, Options{}, buf.Bytes()).ReadMessage()
	if err != nil || len(got) != 0 {
		t.Fatalf("empty message: %q, %v", got, err)
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// newWithClock is New with a test clock.
func newWithClock(nc net.Conn, k Keys, opt Options, now func() time.Time) *Conn {
	c, err := newConn(nc, bufioReader(nc), &k, opt, nil, now)
	if err != nil {
		panic(err)
	}
	return c
}

func TestRekeyByCount(t *testing.T) {
	cn, sn := tcpPair(t)
	ka, kb := testKeyPair()
	opt := Options{RekeyMessages: 3}
	a, b := New(cn, ka, opt), New(sn, kb, opt)
	defer a.Close()
	defer b.Close()

	const n = 20
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := a.WriteMessage(message(i, 100)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range n {
		got, err := b.ReadMessage()
		if err != nil || !bytes.Equal(got, message(i, 100)) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// 20 frames, 3 per key: a rekey before frames 3, 6, ..., 18.
	const want = (n - 1) / 3
	if a.send.rekeys != want || b.recv.rekeys != want {
		t.Fatalf("rekeys: sender %d, receiver %d, want %d", a.send.rekeys, b.recv.rekeys, want)
	}
	if a.send.key != b.recv.key {
		t.Fatal("sender and receiver keys differ after rekeying")
	}
	if a.send.key == ka.Send {
		t.Fatal("the direction key did not change")
	}
	// Counters keep increasing across rekeys: 20 data + 6 rekey frames.
	if a.send.next != n+want || b.recv.next != n+want {
		t.Fatalf("counters: sender %d, receiver %d, want %d", a.send.next, b.recv.next, n+want)
	}
	// The other direction is untouched and still works.
	if err := b.WriteMessage([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if got, err := a.ReadMessage(); err != nil || string(got) != "back" {
		t.Fatalf("reverse direction: %q, %v", got, err)
	}
}

func TestRekeyByInterval(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	ka, kb := testKeyPair()
	opt := Options{RekeyInterval: time.Millisecond}
	var stream bytes.Buffer
	a := newWithClock(&memConn{w: &stream}, ka, opt, clock.now)
	for i := range 10 {
		if i%2 == 0 {
			clock.advance(time.Millisecond) // due: the next write rekeys first
		}
		if err := a.WriteMessage(message(i, 64)); err != nil {
			t.Fatal(err)
		}
	}
	if a.send.rekeys != 5 {
		t.Fatalf("sender rekeyed %d times, want 5", a.send.rekeys)
	}
	b := newWithClock(&memConn{r: &stream}, kb, opt, clock.now)
	for i := range 10 {
		got, err := b.ReadMessage()
		if err != nil || !bytes.Equal(got, message(i, 64)) {
			t.Fatalf("message %d after interval rekeys: %v", i, err)
		}
	}
	if b.recv.rekeys != 5 {
		t.Fatalf("receiver rekeyed %d times, want 5", b.recv.rekeys)
	}
}

func TestRekeyIsOneWay(t *testing.T) {
	ka, _ := testKeyPair()
	var d direction
	d.setKey(&ka.Send)
	old := d.key
	if err := d.ratchet(0); err != nil {
		t.Fatal(err)
	}
	// The new key is HKDF-Expand-SHA256(old, "safehold channel v1 rekey"),
	// computed here independently.
	want := hkdfExpand(t, old[:], labelRekey, KeySize)
	if !bytes.Equal(d.key[:], want) {
		t.Fatal("rekeyed key is not HKDF(old key, rekey label)")
	}
	if bytes.Contains(structBytes(&d), old[:]) {
		t.Fatal("the old key is still in the direction state")
	}
}

func TestPeerThatNeverRekeysIsRefused(t *testing.T) {
	ka, kb := testKeyPair()
	// The sender never rekeys by count; the receiver expects a rekey every
	// 2 frames and tolerates 4 × 2.
	a, buf := recorder(t, ka, Options{RekeyMessages: 1 << 30})
	for i := range 12 {
		if err := a.WriteMessage(message(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	b := player(kb, Options{RekeyMessages: 2}, buf.Bytes())
	for i := range 8 {
		if _, err := b.ReadMessage(); err != nil {
			t.Fatalf("frame %d within the tolerance: %v", i, err)
		}
	}
	_, err := b.ReadMessage()
	if !errors.Is(err, ErrRekeyOverdue) {
		t.Fatalf("frame 9: got %v, want ErrRekeyOverdue", err)
	}
	if _, again := b.ReadMessage(); again != err {
		t.Fatalf("later read: got %v, want the same error", again)
	}
}

// recordFrames writes messages through a Conn with keys ka and returns the
// frames it sent.
func recordFrames(t *testing.T, msgs ...string) [][]byte {
	t.Helper()
	ka, _ := testKeyPair()
	a, buf := recorder(t, ka, Options{})
	for _, m := range msgs {
		if err := a.WriteMessage([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	return splitFrames(t, buf.Bytes())
}

// readAll plays stream to a fresh receiver and returns the messages read
// before the first error, and that error.
func readAll(stream []byte) ([]string, error, *Conn) {
	_, kb := testKeyPair()
	b := player(kb, Options{}, stream)
	var got []string
	for {
		m, err := b.ReadMessage()
		if err != nil {
			return got, err, b
		}
		got = append(got, string(m))
	}
}

func TestTamperedFramesRefused(t *testing.T) {
	frames := recordFrames(t, "first", "second message", "third")
	f1 := frames[1]
	cases := []struct {
		name string
		mod  func(f []byte)
		want error
	}{
		{"ciphertext first byte", func(f []byte) { f[HeaderSize] ^= 0x01 }, ErrTampered},
		{"ciphertext last byte (tag)", func(f []byte) { f[len(f)-1] ^= 0x80 }, ErrTampered},
		{"counter low byte", func(f []byte) { f[12] ^= 0x01 }, ErrTampered},
		{"counter high byte", func(f []byte) { f[5] ^= 0x40 }, ErrTampered},
		{"type to unknown", func(f []byte) { f[4] = 0x07 }, ErrTampered},
		{"type to zero", func(f []byte) { f[4] = 0x00 }, ErrTampered},
		{"type to rekey", func(f []byte) { f[4] = byte(typeRekey) }, ErrTampered},
		{"type to close", func(f []byte) { f[4] = byte(typeClose) }, ErrTampered},
		{"type to proof", func(f []byte) { f[4] = byte(typeProof) }, ErrTampered},
		{"length below overhead", func(f []byte) { binary.BigEndian.PutUint32(f, Overhead-1) }, ErrTampered},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(f1)
			tc.mod(bad)
			stream := slices.Concat(frames[0], bad, frames[2])
			got, err, b := readAll(stream)
			if len(got) != 1 || got[0] != "first" {
				t.Fatalf("messages before the tampered frame: %q", got)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, again := b.ReadMessage(); again != err {
				t.Fatalf("the connection is not dead: later read returned %v", again)
			}
			if werr := b.WriteMessage([]byte("x")); werr != err {
				t.Fatalf("write after a refused frame: %v", werr)
			}
		})
	}
}

func TestFlipEveryByteRefused(t *testing.T) {
	frames := recordFrames(t, "a message whose every byte is flipped in turn")
	f := frames[0]
	for i := range f {
		bad := bytes.Clone(f)
		bad[i] ^= 0x04
		got, err, _ := readAll(bad)
		if len(got) != 0 || err == nil || err == io.EOF {
			t.Fatalf("byte %d flipped: read %q, err %v", i, got, err)
		}
		if i >= 4 && !errors.Is(err, ErrTampered) {
			// The length field may instead cause a truncation or size error.
			t.Fatalf("byte %d flipped: got %v, want ErrTampered", i, err)
		}
	}
}

func TestReplayedFrameRefused(t *testing.T) {
	frames := recordFrames(t, "pay alice", "pay bob")
	got, err, b := readAll(slices.Concat(frames[0], frames[1], frames[1]))
	if strings.Join(got, ",") != "pay alice,pay bob" {
		t.Fatalf("messages before the replay: %q", got)
	}
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("got %v, want ErrReplay", err)
	}
	if _, again := b.ReadMessage(); again != err {
		t.Fatalf("later read: %v", again)
	}
	// An older frame replayed later is refused the same way.
	_, err, _ = readAll(slices.Concat(frames[0], frames[1], frames[0]))
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("old frame: got %v, want ErrReplay", err)
	}
}

func TestReorderedFramesRefused(t *testing.T) {
	frames := recordFrames(t, "one", "two", "three")
	got, err, _ := readAll(slices.Concat(frames[1], frames[0], frames[2]))
	if len(got) != 0 || !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("swapped frames: read %q, err %v; want ErrOutOfOrder", got, err)
	}
	// A dropped frame is the same: the next one comes too early.
	got, err, _ = readAll(slices.Concat(frames[0], frames[2]))
	if len(got) != 1 || !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("dropped frame: read %q, err %v; want ErrOutOfOrder", got, err)
	}
}

func TestTruncatedStream(t *testing.T) {
	frames := recordFrames(t, "complete", "cut short")
	for _, cut := range []int{1, HeaderSize - 1, HeaderSize, HeaderSize + 3, len(frames[1]) - 1} {
		stream := slices.Concat(frames[0], frames[1][:cut])
		got, err, b := readAll(stream)
		if len(got) != 1 {
			t.Fatalf("cut at %d: read %q", cut, got)
		}
		if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			t.Fatalf("cut at %d: got %v, want ErrTruncated (never io.EOF)", cut, err)
		}
		if _, again := b.ReadMessage(); again != err {
			t.Fatalf("cut at %d: later read %v", cut, again)
		}
	}
	// Ending on a frame boundary without a close frame is a truncation too.
	_, err, _ := readAll(frames[0])
	if !errors.Is(err, ErrTruncated) || errors.Is(err, io.EOF) {
		t.Fatalf("no close frame: got %v, want ErrTruncated", err)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestOversizedLengthRefusedBeforeAllocating(t *testing.T) {
	for _, length := range []uint32{DefaultMaxMessage + Overhead + 1, 1 << 31, 0xFFFFFFFF} {
		hdr := appendHeader(nil, frameHeader{typ: typeData, counter: 0})
		binary.BigEndian.PutUint32(hdr, length)
		// Only the header is there: a reader that tried to read the body
		// would report a truncation, not ErrTooLarge.
		src := &countingReader{r: bytes.NewReader(hdr)}
		_, kb := testKeyPair()
		b := New(&memConn{r: src}, kb, Options{})

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := b.ReadMessage()
		runtime.ReadMemStats(&after)

		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("length %d: got %v, want ErrTooLarge", length, err)
		}
		if !strings.Contains(err.Error(), "MaxMessage") {
			t.Errorf("error does not say what to do: %v", err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
			t.Fatalf("length %d: %d bytes allocated while refusing", length, got)
		}
		if src.n != HeaderSize {
			t.Fatalf("length %d: read %d bytes, want only the %d-byte header", length, src.n, HeaderSize)
		}
	}
	// A smaller MaxMessage lowers the bound.
	ka, kb := testKeyPair()
	a, buf := recorder(t, ka, Options{})
	if err := a.WriteMessage(make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	if _, err := player(kb, Options{MaxMessage: 100}, buf.Bytes()).ReadMessage(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("peer with a larger MaxMessage: got %v, want ErrTooLarge", err)
	}
}

func TestCloseFrame(t *testing.T) {
	cn, sn := tcpPair(t)
	ka, kb := testKeyPair()
	a, b := New(cn, ka, Options{}), New(sn, kb, Options{})
	if err := a.WriteMessage([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got, err := b.ReadMessage(); err != nil || string(got) != "last words" {
		t.Fatalf("before close: %q, %v", got, err)
	}
	for range 2 {
		if _, err := b.ReadMessage(); err != io.EOF {
			t.Fatalf("after the close frame: got %v, want io.EOF", err)
		}
	}
	if err := a.WriteMessage([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close: got %v, want ErrClosed", err)
	}
	if _, err := a.ReadMessage(); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: got %v, want ErrClosed", err)
	}
	var zero [KeySize]byte
	if a.send.key != zero || a.recv.key != zero || b.recv.key != zero {
		t.Fatal("keys not wiped after close")
	}
	b.Close()
}

func TestCloseUnblocksReader(t *testing.T) {
	cn, sn := net.Pipe()
	go io.Copy(io.Discard, sn) // takes the close frame
	ka, _ := testKeyPair()
	a := New(cn, ka, Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := a.ReadMessage()
		errc <- err
	}()
	// Close may run before or after the reader blocks; either way the read
	// ends with ErrClosed.
	a.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked read after Close: got %v, want ErrClosed", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	cn, sn := tcpPair(t)
	ka, kb := testKeyPair()
	a, b := New(cn, ka, Options{RekeyMessages: 7}), New(sn, kb, Options{RekeyMessages: 7})
	defer a.Close()
	defer b.Close()
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := fmt.Sprintf("writer %d message %d %s", w, i, strings.Repeat("x", i))
				if err := a.WriteMessage([]byte(m)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	next := make([]int, writers)
	for range writers * each {
		got, err := b.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var w, i int
		if _, err := fmt.Sscanf(string(got), "writer %d message %d", &w, &i); err != nil {
			t.Fatalf("garbled message %q", got)
		}
		if i != next[w] || string(got) != fmt.Sprintf("writer %d message %d %s", w, i, strings.Repeat("x", i)) {
			t.Fatalf("writer %d: got message %d, want %d", w, i, next[w])
		}
		next[w]++
	}
	wg.Wait()
}

func TestUnusableKeysAndOptions(t *testing.T) {
	ka, _ := testKeyPair()
	same := Keys{Send: ka.Send, Recv: ka.Send}
	c := New(&memConn{}, same, Options{})
	if err := c.WriteMessage([]byte("x")); !errors.Is(err, ErrBadKeys) {
		t.Fatalf("equal keys: got %v, want ErrBadKeys", err)
	}
	if _, err := c.ReadMessage(); !errors.Is(err, ErrBadKeys) {
		t.Fatalf("equal keys, read: got %v, want ErrBadKeys", err)
	}
	if err := New(&memConn{}, Keys{Send: ka.Send}, Options{}).WriteMessage(nil); !errors.Is(err, ErrBadKeys) {
		t.Fatalf("zero key: got %v, want ErrBadKeys", err)
	}
	for _, opt := range []Options{{MaxMessage: -1}, {MaxMessage: MaxMessageCeiling + 1}, {RekeyMessages: MaxRekeyMessages + 1}, {RekeyInterval: -time.Second}} {
		if err := New(&memConn{}, ka, opt).WriteMessage(nil); !errors.Is(err, ErrOptions) {
			t.Fatalf("%+v: got %v, want ErrOptions", opt, err)
		}
	}
}

func TestNewWipesCallersCopyOnlyOnRequest(t *testing.T) {
	ka, _ := testKeyPair()
	k := ka
	c := New(&memConn{}, k, Options{})
	if k != ka {
		t.Fatal("New changed the caller's Keys value")
	}
	k.Wipe()
	var zero Keys
	if k != zero {
		t.Fatal("Keys.Wipe left key bytes")
	}
	if err := c.WriteMessage([]byte("x")); err != nil {
		t.Fatalf("the connection depends on the caller's copy: %v", err)
	}
}

func TestDirectionLabels(t *testing.T) {
	ka, kb := testKeyPair()
	sa, ra := directionLabels(&ka.Send, &ka.Recv)
	sb, rb := directionLabels(&kb.Send, &kb.Recv)
	if sa == ra || sa != rb || ra != sb {
		t.Fatalf("labels: a send %d recv %d, b send %d recv %d", sa, ra, sb, rb)
	}
	// A frame reflected back to its sender does not open: the keys differ,
	// and so do the labels.
	a, buf := recorder(t, ka, Options{})
	a.WriteMessage([]byte("to b"))
	if _, err := player(ka, Options{}, buf.Bytes()).ReadMessage(); !errors.Is(err, ErrTampered) {
		t.Fatalf("reflected frame: got %v, want ErrTampered", err)
	}
	// The comparison is a big-endian less-than.
	for _, tc := range []struct {
		x, y byte
		i    int
	}{{1, 2, 0}, {2, 1, 0}, {0, 255, 31}, {255, 0, 31}, {7, 8, 15}} {
		var s, r [KeySize]byte
		s[tc.i], r[tc.i] = tc.x, tc.y
		got, _ := directionLabels(&s, &r)
		want := byte(0x02)
		if bytes.Compare(s[:], r[:]) < 0 {
			want = 0x01
		}
		if got != want {
			t.Fatalf("directionLabels(%x, %x) = %d, want %d", s, r, got, want)
		}
	}
}

func TestUnexpectedFramesRefused(t *testing.T) {
	ka, kb := testKeyPair()
	for _, tc := range []struct {
		name    string
		typ     frameType
		payload []byte
	}{
		{"proof after the handshake", typeProof, []byte("proof")},
		{"close with an unknown reason", typeClose, []byte{0x7f}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, buf := recorder(t, ka, Options{})
			a.wmu.Lock()
			err := a.writeFrame(tc.typ, tc.payload)
			a.wmu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := player(kb, Options{}, buf.Bytes()).ReadMessage(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want ErrProtocol", err)
			}
		})
	}
}

func TestKeysNeverPrint(t *testing.T) {
	ka, _ := testKeyPair()
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		outs = append(outs, fmt.Sprintf(verb, ka), fmt.Sprintf(verb, &ka))
	}
	j, _ := json.Marshal(struct{ K Keys }{ka})
	outs = append(outs, string(j))
	var lb bytes.Buffer
	slog.New(slog.NewJSONHandler(&lb, nil)).Info("x", "keys", ka)
	outs = append(outs, lb.String())
	hexKey := fmt.Sprintf("%x", ka.Send[:4])
	for _, o := range outs {
		if strings.Contains(o, hexKey) || strings.Contains(o, "16 17 18") || strings.Contains(o, string(ka.Send[:4])) {
			t.Fatalf("key material printed: %s", o)
		}
	}
}

func TestCounterExhaustion(t *testing.T) {
	ka, kb := testKeyPair()
	a, buf := recorder(t, ka, Options{})
	a.send.next = maxCounter - 1
	if err := a.WriteMessage([]byte("one of the last")); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteMessage([]byte("too many")); !errors.Is(err, ErrExhausted) {
		t.Fatalf("got %v, want ErrExhausted", err)
	}
	b := player(kb, Options{}, buf.Bytes())
	b.recv.next = maxCounter - 1
	if got, err := b.ReadMessage(); err != nil || string(got) != "one of the last" {
		t.Fatalf("last frames: %q, %v", got, err)
	}
}
