package envelope

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
)

func testKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

var testCtx = Context{Purpose: "item-payload", Account: "a1", Vault: "v1", Item: "i1", Revision: 3, Field: "password"}

func TestSealOpenRoundTrip(t *testing.T) {
	key := testKey(t)
	for _, n := range []int{0, 1, 15, 16, 17, 1000, 64 << 10, 1<<20 + 3} {
		pt := make([]byte, n)
		rand.Read(pt)
		sealed, err := Seal(rand.Reader, key, testCtx, pt)
		if err != nil {
			t.Fatalf("seal %d bytes: %v", n, err)
		}
		if len(sealed) != n+Overhead {
			t.Fatalf("sealed %d bytes to %d, want %d", n, len(sealed), n+Overhead)
		}
		if string(sealed[:4]) != Magic || sealed[4] != Version || sealed[5] != Suite1 {
			t.Fatalf("bad header % x", sealed[:6])
		}
		if n > 64 && bytes.Contains(sealed, pt[:64]) {
			t.Fatal("plaintext visible in envelope")
		}
		orig := bytes.Clone(sealed)
		got, err := Open(key, testCtx, sealed)
		if err != nil {
			t.Fatalf("open %d bytes: %v", n, err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("round trip of %d bytes differs", n)
		}
		if !bytes.Equal(orig, sealed) {
			t.Fatal("Open modified its input")
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	key := testKey(t)
	a, _ := Seal(rand.Reader, key, testCtx, []byte("x"))
	b, _ := Seal(rand.Reader, key, testCtx, []byte("x"))
	if bytes.Equal(a[6:HeaderSize], b[6:HeaderSize]) || bytes.Equal(a[HeaderSize:], b[HeaderSize:]) {
		t.Fatal("two seals of the same plaintext share nonces or ciphertext")
	}
}

func TestSealDeterministicGivenNonces(t *testing.T) {
	key := testKey(t)
	nonces := bytes.Repeat([]byte{7}, HeaderSize-6)
	a, err := Seal(bytes.NewReader(nonces), key, testCtx, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Seal(bytes.NewReader(nonces), key, testCtx, []byte("hello"))
	if !bytes.Equal(a, b) {
		t.Fatal("seal is not a function of its randomness")
	}
	if !bytes.Equal(a[6:HeaderSize], nonces) {
		t.Fatal("nonces not placed after magic, version and suite")
	}
}

func TestContextAAD(t *testing.T) {
	c := Context{Purpose: "p", Account: "ab", Revision: 258, Field: "f"}
	want := "0000001c" + hex.EncodeToString([]byte("safehold/envelope/context/v1")) +
		"00000001" + "70" + // purpose "p"
		"00000002" + "6162" + // account "ab"
		"00000000" + // vault
		"00000000" + // item
		"0000000000000102" + // revision 258
		"00000001" + "66" // field "f"
	if got := hex.EncodeToString(c.AAD()); got != want {
		t.Fatalf("AAD\n got %s\nwant %s", got, want)
	}
	// Moving bytes between fields changes the encoding.
	seen := map[string]Context{}
	for _, c := range []Context{
		{Purpose: "p", Account: "ab"},
		{Purpose: "p", Account: "a", Vault: "b"},
		{Purpose: "pa", Account: "b"},
		{Purpose: "p", Vault: "ab"},
		{Purpose: "p", Item: "ab"},
		{Purpose: "p", Field: "ab"},
		{Purpose: "p", Account: "ab", Revision: 1},
	} {
		k := string(c.AAD())
		if prev, ok := seen[k]; ok {
			t.Fatalf("contexts %+v and %+v encode the same", prev, c)
		}
		seen[k] = c
	}
}

func TestContextValidate(t *testing.T) {
	key := testKey(t)
	long := string(make([]byte, MaxContextField+1))
	for _, c := range []Context{{}, {Purpose: long}, {Purpose: "p", Account: long}, {Purpose: "p", Vault: long}, {Purpose: "p", Item: long}, {Purpose: "p", Field: long}} {
		if _, err := Seal(rand.Reader, key, c, nil); !errors.Is(err, ErrContext) {
			t.Errorf("Seal with %d-byte purpose: got %v, want ErrContext", len(c.Purpose), err)
		}
		if _, err := Open(key, c, make([]byte, Overhead)); !errors.Is(err, ErrContext) {
			t.Errorf("Open: got %v, want ErrContext", err)
		}
		if _, _, err := NewStreamSealer(rand.Reader, key, c); !errors.Is(err, ErrContext) {
			t.Errorf("NewStreamSealer: got %v, want ErrContext", err)
		}
	}
	ok := Context{Purpose: string(make([]byte, MaxContextField))}
	if _, err := Seal(rand.Reader, key, ok, nil); err != nil {
		t.Fatalf("context at the bound: %v", err)
	}
}

func TestKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		k := make([]byte, n)
		if _, err := Seal(rand.Reader, k, testCtx, nil); !errors.Is(err, ErrKeySize) {
			t.Errorf("Seal with %d-byte key: %v", n, err)
		}
		if _, err := Open(k, testCtx, make([]byte, 100)); !errors.Is(err, ErrKeySize) {
			t.Errorf("Open with %d-byte key: %v", n, err)
		}
		if _, _, err := NewStreamSealer(rand.Reader, k, testCtx); !errors.Is(err, ErrKeySize) {
			t.Errorf("NewStreamSealer with %d-byte key: %v", n, err)
		}
		if _, err := NewStreamOpener(k, testCtx, make([]byte, StreamHeaderSize)); !errors.Is(err, ErrKeySize) {
			t.Errorf("NewStreamOpener with %d-byte key: %v", n, err)
		}
	}
}

func TestSizeBound(t *testing.T) {
	key := testKey(t)
	big := make([]byte, MaxPlaintext+1)
	if _, err := Seal(rand.Reader, key, testCtx, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Seal over the bound: %v", err)
	}
	fake := make([]byte, MaxPlaintext+1+Overhead)
	copy(fake, Magic)
	fake[4], fake[5] = Version, Suite1
	if _, err := Open(key, testCtx, fake); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Open over the bound: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestRandFailure(t *testing.T) {
	key := testKey(t)
	if _, err := Seal(failingReader{}, key, testCtx, nil); err == nil {
		t.Fatal("Seal succeeded without randomness")
	}
	if _, _, err := NewStreamSealer(failingReader{}, key, testCtx); err == nil {
		t.Fatal("NewStreamSealer succeeded without randomness")
	}
	if _, err := Seal(bytes.NewReader(make([]byte, 10)), key, testCtx, nil); err == nil {
		t.Fatal("Seal succeeded with short randomness")
	}
}

func TestTamperEveryByte(t *testing.T) {
	key := testKey(t)
	sealed, _ := Seal(rand.Reader, key, testCtx, []byte("a secret of some length"))
	for i := range sealed {
		for _, mask := range []byte{0x01, 0x80} {
			b := bytes.Clone(sealed)
			b[i] ^= mask
			if _, err := Open(key, testCtx, b); err == nil {
				t.Fatalf("flipping byte %d with %#x still opens", i, mask)
			}
		}
	}
}
