package clipboard

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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

	// xclip and xsel fork a process that takes the selection over, and
	// the X server may still be settling: until then a read may see the
	// old selection, or a tool may fail to connect. Each step retries
	// until the clipboard shows what it should, within a deadline.
	eventually := func(what string, step func() error) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
			if err = step(); err == nil {
				return
			}
		}
		t.Fatalf("%s: %v", what, err)
	}
	holds := func(want string) func() error {
		return func() error {
			got, err := b.Read(ctx, MaxValueSize)
			if err != nil {
				return err
			}
			if string(got) != want {
				return fmt.Errorf("clipboard holds %q, want %q", got, want)
			}
			return nil
		}
	}

	secret := []byte("pässwörd with spaces\nand a newline")
	eventually("copy", func() error { return Copy(ctx, b, secret) })
	eventually("read back", holds(string(secret)))
	tok, err := NewToken(rand.Reader, secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	cleared, err := ClearIfUnchanged(ctx, b, tok)
	if err != nil || !cleared {
		t.Fatalf("not cleared: %v %v", cleared, err)
	}
	// After clearing, the clipboard is empty or has no text at all.
	eventually("read after clear", func() error {
		got, err := b.Read(ctx, MaxValueSize)
		if err == nil && len(got) != 0 {
			return fmt.Errorf("clipboard still holds %q", got)
		}
		if err != nil && !errors.Is(err, ErrUnreadable) {
			return err
		}
		return nil
	})

	// Copy again, then the user copies something else: keep it.
	eventually("copy again", func() error { return Copy(ctx, b, secret) })
	eventually("read back again", holds(string(secret)))
	eventually("user copy", func() error { return b.Write(ctx, []byte("user text")) })
	eventually("user text shown", holds("user text"))
	cleared, err = ClearIfUnchanged(ctx, b, tok)
	if err != nil || cleared {
		t.Fatalf("changed clipboard cleared: %v %v", cleared, err)
	}
	eventually("user text kept", holds("user text"))
	// Content over the bound is not read.
	if _, err := b.Read(ctx, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bounded read: %v", err)
	}
}

func TestXclipUnderXvfb(t *testing.T) { testRealBackend(t, "xclip") }
func TestXselUnderXvfb(t *testing.T)  { testRealBackend(t, "xsel") }
