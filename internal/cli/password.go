package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/safehold/safehold/internal/secret"
)

// maxSecretInput bounds a password or key read from a file or descriptor.
const maxSecretInput = 64 << 10

// readSecretFile reads a secret from a file path or, for "fd:N", an open
// file descriptor. One trailing newline is removed.
func readSecretFile(spec string) (secret.Bytes, error) {
	var f *os.File
	if n, ok := strings.CutPrefix(spec, "fd:"); ok {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < 0 {
			return nil, failf(ExitUsage, "give a descriptor number, like fd:3", "bad descriptor %q", spec)
		}
		f = os.NewFile(uintptr(fd), "fd"+n)
	} else {
		var err error
		if f, err = os.Open(spec); err != nil {
			return nil, withHint(ExitUsage, "check the path given to the flag", fmt.Errorf("read secret file: %w", err))
		}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretInput+1))
	if err != nil {
		return nil, fmt.Errorf("read secret from %s: %w", spec, err)
	}
	if len(b) > maxSecretInput {
		secret.Wipe(b)
		return nil, failf(ExitInvalid, "", "secret file %s is larger than %d bytes", spec, maxSecretInput)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return secret.Bytes(b), nil
}

// promptSecret asks on the terminal without echo. It refuses when standard
// input is not a terminal, so that nothing ever hangs waiting for a prompt
// in a script.
func (a *app) promptSecret(prompt, flagHint string) (secret.Bytes, error) {
	f, ok := a.env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, failf(ExitUsage, "pass "+flagHint, "standard input is not a terminal, so safe cannot prompt for the %s", strings.TrimSuffix(strings.ToLower(prompt), ": "))
	}
	fmt.Fprint(a.env.Stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.env.Stderr)
	if err != nil {
		return nil, fmt.Errorf("read from terminal: %w", err)
	}
	return secret.Bytes(b), nil
}

// password gets a password from --password-file or the terminal.
func (a *app) password(file, prompt string) (secret.Bytes, error) {
	if file != "" {
		return readSecretFile(file)
	}
	return a.promptSecret(prompt, "--password-file FILE")
}

// newPassword gets a new password: from a file, or typed twice.
func (a *app) newPassword(file, flag string) (secret.Bytes, error) {
	var pw secret.Bytes
	var err error
	if file != "" {
		pw, err = readSecretFile(file)
	} else {
		if pw, err = a.promptSecret("New password: ", flag+" FILE"); err != nil {
			return nil, err
		}
		again, err := a.promptSecret("Repeat it: ", flag+" FILE")
		if err != nil {
			pw.Wipe()
			return nil, err
		}
		same := bytes.Equal(pw, again)
		again.Wipe()
		if !same {
			pw.Wipe()
			return nil, failf(ExitUsage, "type the same password twice", "the passwords differ")
		}
	}
	if err != nil {
		return nil, err
	}
	if n := len([]rune(string(pw))); n < minPassword {
		pw.Wipe()
		return nil, failf(ExitInvalid, "a passphrase of four or more random words is easy to remember and hard to guess (`safe generate --passphrase`)",
			"the password has %d characters; use at least %d", n, minPassword)
	}
	return pw, nil
}

// minPassword is the shortest password accepted for a vault.
const minPassword = 8

// readLine reads one line from standard input (for confirmations).
func (a *app) readLine() (string, error) {
	line, err := bufio.NewReader(a.env.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimSpace(line), nil
}
