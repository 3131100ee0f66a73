package clipboard

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startXvfb runs a private X server and returns its DISPLAY, or skips.
func startXvfb(t *testing.T) string {
	t.Helper()
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		t.Skip("Xvfb not on PATH (apt-get install xvfb to run the real X11 clipboard test)")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(xvfb, "-displayfd", "3", "-nolisten", "tcp", "-screen", "0", "320x240x24")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatalf("start Xvfb: %v", err)
	}
	w.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	select {
	case n := <-lines:
		if n == "" {
			t.Fatal("Xvfb did not report a display")
		}
		return ":" + n
	case <-time.After(10 * time.Second):
		t.Fatal("Xvfb did not start")
	}
	return ""
}

func testRealBackend(t *testing.T, tool string) {
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not on PATH (apt-get install %s to run this test)", tool, tool)
	}
	display := startXvfb(t)
	getenv := func(k string) string {
		if k == "DISPLAY" {
			return display
		}
		return ""
	}
	lookPath := func(n string) (string, error) {
		if n != tool {
			return "", exec.ErrNotFound
		}
		return exec.LookPath(n)
	}
	b, err := Detect(getenv, lookPath)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != tool {
		t.Fatalf("detected %s, want %s", b.Name(), tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	secret := []byte("pässwörd with spaces\nand a newline")
	if err := Copy(ctx, b, secret); err != nil {
		t.Fatal(err)
	}
	got, err := b.Read(ctx, MaxValueSize)
	if err != nil || string(got) != string(secret) {
		t.Fatalf("read back %q, %v", got, err)
	}
	tok, err := NewToken(rand.Reader, secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	cleared, err := ClearIfUnchanged(ctx, b, tok)
	if err != nil || !cleared {
		t.Fatalf("not cleared: %v %v", cleared, err)
	}
	// After clearing, the clipboard is empty or has no text at all.
	if got, err := b.Read(ctx, MaxValueSize); err == nil && len(got) != 0 {
		t.Fatalf("clipboard still holds %q", got)
	} else if err != nil && !errors.Is(err, ErrUnreadable) {
		t.Fatalf("read after clear: %v", err)
	}

	// Copy again, then the user copies something else: keep it.
	if err := Copy(ctx, b, secret); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, []byte("user text")); err != nil {
		t.Fatal(err)
	}
	cleared, err = ClearIfUnchanged(ctx, b, tok)
	if err != nil || cleared {
		t.Fatalf("changed clipboard cleared: %v %v", cleared, err)
	}
	if got, err := b.Read(ctx, MaxValueSize); err != nil || string(got) != "user text" {
		t.Fatalf("user text lost: %q %v", got, err)
	}
	// Content over the bound is not read.
	if _, err := b.Read(ctx, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bounded read: %v", err)
	}
}

func TestXclipUnderXvfb(t *testing.T) { testRealBackend(t, "xclip") }
func TestXselUnderXvfb(t *testing.T)  { testRealBackend(t, "xsel") }
