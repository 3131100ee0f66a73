package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/safehold/safehold/internal/server"
	"github.com/safehold/safehold/internal/server/storage"
	"github.com/safehold/safehold/internal/server/storage/postgres"
	"github.com/safehold/safehold/internal/server/storage/sqlite"
	"github.com/safehold/safehold/internal/textsafe"
)

// serverFlags name the server's data and database.
type serverFlags struct {
	data, db string
}

func (f *serverFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.data, "data", "", "the server's data `DIR` (certificate, and the SQLite database unless --db is given; default $XDG_DATA_HOME/safehold-server)")
	fs.StringVar(&f.db, "db", "", "a PostgreSQL `URL` (postgres://...) to store data in instead of SQLite")
}

func (a *app) serverDataDir(f *serverFlags) (string, error) {
	if f.data != "" {
		return filepath.Abs(f.data)
	}
	data := a.env.Getenv("XDG_DATA_HOME")
	if data == "" {
		uh, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the home directory: %w; pass --data DIR", err)
		}
		data = filepath.Join(uh, ".local", "share")
	}
	return filepath.Join(data, "safehold-server"), nil
}

// openServerStore opens PostgreSQL when --db is given, else SQLite in the
// data directory.
func (a *app) openServerStore(ctx context.Context, f *serverFlags, dir string) (storage.Store, string, error) {
	if f.db != "" {
		if !strings.HasPrefix(f.db, "postgres://") && !strings.HasPrefix(f.db, "postgresql://") {
			return nil, "", failf(ExitUsage, "give a URL like postgres://user@host:5432/db", "--db must be a PostgreSQL URL")
		}
		st, err := postgres.Open(ctx, f.db)
		return st, "postgresql", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create the data directory: %w", err)
	}
	st, err := sqlite.Open(filepath.Join(dir, "server.db"))
	return st, "sqlite " + filepath.Join(dir, "server.db"), err
}

func (a *app) serveCommand() *cobra.Command {
	var f serverFlags
	var addr, certFile, keyFile, logLevel, infoFile string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the sync server (HTTPS; stores only ciphertext and signed metadata)",
		Long: `Run the Safehold sync server. It always speaks TLS: on first start it makes a
self-signed certificate in the data directory and prints its fingerprint, which
clients pin (` + "`safe account register --fingerprint FP`" + `); --cert and --key use an
operator's certificate instead. Data goes to SQLite in the data directory, or to
PostgreSQL with --db. SIGINT or SIGTERM shut it down gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dir, err := a.serverDataDir(&f)
			if err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return failf(ExitUsage, "use debug, info, warn or error", "bad --log-level %q", logLevel)
			}
			logger := slog.New(slog.NewJSONHandler(a.env.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, cancel := signal.NotifyContext(a.ctx, syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			st, desc, err := a.openServerStore(ctx, &f, dir)
			if err != nil {
				return err
			}
			defer st.Close()
			if certFile == "" && keyFile == "" {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return fmt.Errorf("create the data directory: %w", err)
				}
			}
			srv, err := server.New(server.Config{Addr: addr, DataDir: dir, Store: st, CertFile: certFile, KeyFile: keyFile, Logger: logger})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return withHint(ExitError, "choose another --addr", fmt.Errorf("listen on %s: %w", addr, err))
			}
			if a.jsonOut {
				a.printJSON(map[string]any{"addr": ln.Addr().String(), "url": "https://" + ln.Addr().String(), "fingerprint": srv.Fingerprint(), "storage": desc})
			} else {
				a.printf("Safehold server on https://%s (storage: %s)\nfingerprint: %s\n", ln.Addr(), desc, srv.Fingerprint())
			}
			if infoFile != "" {
				info, _ := json.Marshal(map[string]string{"url": "https://" + ln.Addr().String(), "fingerprint": srv.Fingerprint()})
				if err := writeFileAtomic(infoFile, append(info, '\n')); err != nil {
					ln.Close()
					return err
				}
			}
			err = srv.Serve(ctx, ln)
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	f.add(c.Flags())
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8443", "listen on `HOST:PORT`")
	c.Flags().StringVar(&certFile, "cert", "", "an operator-supplied certificate chain `FILE` (PEM)")
	c.Flags().StringVar(&keyFile, "key", "", "its private key `FILE` (PEM)")
	c.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	c.Flags().StringVar(&infoFile, "info-file", "", "once listening, write {\"url\", \"fingerprint\"} as JSON to `FILE` (for scripts)")
	var fpf serverFlags
	fp := &cobra.Command{
		Use:   "fingerprint",
		Short: "Print the server certificate's fingerprint (made on first use)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dir, err := a.serverDataDir(&fpf)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("create the data directory: %w", err)
			}
			_, fingerprint, err := server.LoadOrCreateCert(dir)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]string{"fingerprint": fingerprint})
			}
			a.printf("%s\n", fingerprint)
			return nil
		},
	}
	fp.Flags().StringVar(&fpf.data, "data", "", "the server's data `DIR`")
	c.AddCommand(fp)
	return c
}

func (a *app) adminCommand() *cobra.Command {
	var f serverFlags
	c := &cobra.Command{
		Use:   "admin",
		Short: "Administer a server's accounts, on its database directly",
	}
	f.add(c.PersistentFlags())
	withStore := func(fn func(ctx context.Context, st storage.Store, args []string) error) func(*cobra.Command, []string) error {
		return func(_ *cobra.Command, args []string) error {
			dir, err := a.serverDataDir(&f)
			if err != nil {
				return err
			}
			if f.db == "" {
				if _, err := os.Stat(filepath.Join(dir, "server.db")); err != nil {
					return failf(ExitUsage, "pass --data DIR (the one `safe serve` uses) or --db URL", "no server database in %s", dir)
				}
			}
			ctx, cancel := context.WithTimeout(a.ctx, time.Minute)
			defer cancel()
			st, _, err := a.openServerStore(ctx, &f, dir)
			if err != nil {
				return err
			}
			defer st.Close()
			return fn(ctx, st, args)
		}
	}
	users := &cobra.Command{
		Use:   "users",
		Short: "List accounts with their storage use",
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, st storage.Store, _ []string) error {
			list, err := server.Users(ctx, st)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if list == nil {
					list = []server.UserInfo{}
				}
				return a.printJSON(list)
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "ACCOUNT\tEMAIL\tSTATE\t2FA\tDEVICES\tENTRIES\tBYTES\n")
			for _, u := range list {
				state := "active"
				if u.Disabled {
					state = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", u.Account, textsafe.Clean(u.Email), state, yesNo(u.TOTP), u.Usage.Devices, u.Usage.Entries, u.Usage.Bytes)
			}
			return tw.Flush()
		}),
	}
	setDisabled := func(use, short string, disabled bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ACCOUNT",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: withStore(func(ctx context.Context, st storage.Store, args []string) error {
				acct, err := server.FindAccount(ctx, st, args[0])
				if err != nil {
					return adminNotFound(err)
				}
				if err := server.SetDisabled(ctx, st, acct.ID, disabled); err != nil {
					return err
				}
				if !a.jsonOut {
					a.printf("Account %s (%s) is now %s.\n", acct.ID, textsafe.Clean(acct.Email), map[bool]string{true: "disabled", false: "enabled"}[disabled])
				}
				return nil
			}),
		}
	}
	var yes bool
	del := &cobra.Command{
		Use:   "delete ACCOUNT",
		Short: "Delete an account and everything it stores (cannot be undone)",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(ctx context.Context, st storage.Store, args []string) error {
			acct, err := server.FindAccount(ctx, st, args[0])
			if err != nil {
				return adminNotFound(err)
			}
			if !yes {
				return failf(ExitUsage, "pass --yes to confirm", "deleting %s (%s) removes all its data", acct.ID, textsafe.Clean(acct.Email))
			}
			if err := server.DeleteAccount(ctx, st, acct.ID); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Deleted account %s.\n", acct.ID)
			}
			return nil
		}),
	}
	del.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	usage := &cobra.Command{
		Use:   "usage ACCOUNT",
		Short: "Show what an account stores",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(ctx context.Context, st storage.Store, args []string) error {
			acct, err := server.FindAccount(ctx, st, args[0])
			if err != nil {
				return adminNotFound(err)
			}
			u, err := server.Usage(ctx, st, acct.ID)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(u)
			}
			a.printf("account:  %s (%s)\nvaults:   %d\nentries:  %d\nbytes:    %d\ndevices:  %d\n", acct.ID, textsafe.Clean(acct.Email), u.Vaults, u.Entries, u.Bytes, u.Devices)
			return nil
		}),
	}
	c.AddCommand(users, setDisabled("disable", "Disable an account: its sessions end and it cannot log in", true),
		setDisabled("enable", "Enable a disabled account", false), del, usage)
	return c
}

func adminNotFound(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return withHint(ExitNotFound, "`safe admin users` lists the accounts", err)
	}
	return err
}
