package sshagent

import "github.com/safehold/safehold/internal/unixsock"

// MaxSocketPath is the longest socket path the kernel accepts.
const MaxSocketPath = unixsock.MaxPath

// Errors of Listen; match them with errors.Is.
var (
	// ErrSocketPath means the path is unusable: not absolute, too long, or
	// an existing file that is not a socket.
	ErrSocketPath = unixsock.ErrPath
	// ErrInsecureDir means the socket's directory exists and is not a 0700
	// directory of the current user.
	ErrInsecureDir = unixsock.ErrInsecureDir
	// ErrInUse means something answers on the socket already.
	ErrInUse = unixsock.ErrInUse
)

// Listener is the agent's socket (internal/unixsock: 0600, in a 0700
// directory of this user). Close removes the socket file if it is still
// the one this listener made.
type Listener = unixsock.Listener

// Listen creates the socket at path (unixsock.Listen).
func Listen(path string) (*Listener, error) { return unixsock.Listen(path) }
