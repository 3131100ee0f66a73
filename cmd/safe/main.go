// Command safe is Safehold's command line, unlock agent and (later) sync
// server. Everything lives in internal/cli; this file only wires the
// process to it.
package main

import (
	"context"
	"os"
	"syscall"

	"github.com/safehold/safehold/internal/cli"
)

func main() {
	// Every file and directory safe creates is private to the user.
	syscall.Umask(0o077)
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, Exe: cli.Executable(),
	}))
}
