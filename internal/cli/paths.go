package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// paths are where the client keeps its state.
type paths struct {
	Home   string // set when SAFE_HOME or --home is used
	Data   string // directory of the vault file
	Vault  string
	Socket string
	Log    string // agent log
}

// maxSocketPath keeps socket paths under the 108-byte sun_path limit.
const maxSocketPath = 100

// resolvePaths applies --home, then SAFE_HOME, then the XDG directories:
// the vault under $XDG_DATA_HOME/safehold (~/.local/share/safehold) and the
// agent socket under $XDG_RUNTIME_DIR/safehold (or the data directory).
func (a *app) paths() (paths, error) {
	home := a.home
	if home == "" {
		home = a.env.Getenv("SAFE_HOME")
	}
	var p paths
	if home != "" {
		abs, err := filepath.Abs(home)
		if err != nil {
			return p, fmt.Errorf("resolve SAFE_HOME %q: %w", home, err)
		}
		p.Home, p.Data = abs, abs
		p.Socket = filepath.Join(abs, "run", "agent.sock")
	} else {
		data := a.env.Getenv("XDG_DATA_HOME")
		if data == "" {
			uh, err := os.UserHomeDir()
			if err != nil {
				return p, fmt.Errorf("find the home directory: %w; set SAFE_HOME", err)
			}
			data = filepath.Join(uh, ".local", "share")
		}
		p.Data = filepath.Join(data, "safehold")
		if rt := a.env.Getenv("XDG_RUNTIME_DIR"); rt != "" {
			p.Socket = filepath.Join(rt, "safehold", "agent.sock")
		} else {
			p.Socket = filepath.Join(p.Data, "run", "agent.sock")
		}
	}
	p.Vault = filepath.Join(p.Data, "vault.db")
	p.Log = filepath.Join(p.Data, "agent.log")
	if len(p.Socket) > maxSocketPath {
		// Too long for a Unix socket address: use a short per-user
		// directory keyed by the data directory.
		sum := sha256.Sum256([]byte(p.Data))
		p.Socket = filepath.Join(os.TempDir(), fmt.Sprintf("safehold-%d", os.Getuid()), hex.EncodeToString(sum[:8])+".sock")
	}
	return p, nil
}
