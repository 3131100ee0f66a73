package cli

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/loadgen"
)

func (a *app) benchCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure the sync server under load (loopback only)",
	}
	var (
		cfg      loadgen.Config
		pushPct  int
		progress bool
		cpuProf  string
	)
	sync := &cobra.Command{
		Use:   "sync",
		Short: "Load a sync server with concurrent clients and report throughput and latency",
		Long: `Start the sync server in this process (SQLite in a temporary directory, or
PostgreSQL with --db in a fresh schema that is dropped afterwards) or target one
running on this machine (--url and --fingerprint; loopback addresses only),
register one account per client (setup, not measured), and have every client
send sync requests on its own connection for --duration: pulls of its vault's
log since its head, and --push percent pushes of one signed log entry. Reports
requests per second, latency quantiles, errors by kind and, for an in-process
server, CPU and memory before and after the run (the server and the load
generator together: they share the process).

For a soak run, give a long --duration (up to 1h) and an --interval: the report
then has a timeline, a row per interval with its throughput, p50/p99, errors and
memory, so drift shows. To follow the memory of a server in its own process,
start it with 'safe serve --info-file F', and pass its --server-pid
(scripts/soak does this for SQLite and PostgreSQL).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if cfg.URL == "" && c.Flags().Changed("fingerprint") {
				return failf(ExitUsage, "pass --url with --fingerprint, or neither to start a server here", "--fingerprint without --url")
			}
			if cfg.Duration > loadgen.MaxDuration {
				return failf(ExitUsage, "the longest run is 1h", "--duration %s is too long", cfg.Duration)
			}
			if c.Flags().Changed("server-pid") && cfg.URL == "" {
				return failf(ExitUsage, "start the server yourself and pass --url, --fingerprint and its --server-pid; an in-process server is measured without it", "--server-pid without --url")
			}
			if cfg.Interval != 0 && (cfg.Interval < time.Second || cfg.Interval > cfg.Duration) {
				return failf(ExitUsage, "choose an --interval between 1s and the --duration", "--interval %s is out of range", cfg.Interval)
			}
			cfg.PushPct = pushPct
			if pushPct == 0 {
				cfg.PushPct = -1
			}
			if cfg.Seed == 0 {
				cfg.Seed = -1
			}
			if cfg.Payload < 1 {
				return failf(ExitUsage, "a sealed item is a few hundred bytes", "--payload must be at least 1 byte")
			}
			if progress || !a.jsonOut {
				cfg.Progress = a.env.Stderr
			} else {
				cfg.Progress = io.Discard
			}
			// Main turns garbage collection off for short-lived commands;
			// a server under load for minutes needs it, and the memory
			// figures mean nothing without it.
			if a.env.Getenv("GOGC") == "" && a.env.Getenv("GOMEMLIMIT") == "" {
				debug.SetGCPercent(100)
				debug.SetMemoryLimit(math.MaxInt64)
			}
			ctx, cancel := signal.NotifyContext(a.ctx, syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			if cpuProf != "" {
				f, err := os.OpenFile(cpuProf, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return fmt.Errorf("create the profile: %w", err)
				}
				defer f.Close()
				cfg.CPUProfile = f
			}
			rep, err := loadgen.Run(ctx, cfg)
			if rep == nil {
				if errors.Is(err, loadgen.ErrNotLoopback) {
					return withHint(ExitUsage, "run the server on this machine and pass https://127.0.0.1:PORT", err)
				}
				return err
			}
			if a.jsonOut {
				if perr := a.printJSON(rep); perr != nil {
					return perr
				}
			} else if werr := rep.WriteText(a.env.Stdout); werr != nil {
				return werr
			}
			if err != nil {
				return fmt.Errorf("bench sync: %w", err)
			}
			return nil
		},
	}
	f := sync.Flags()
	f.IntVar(&cfg.Clients, "clients", loadgen.DefaultClients, fmt.Sprintf("concurrent clients, each with its own account (1..%d)", loadgen.MaxClients))
	f.DurationVar(&cfg.Duration, "duration", loadgen.DefaultDuration, "measured time (at most 1h)")
	f.DurationVar(&cfg.Interval, "interval", 0, "report a timeline row every `D` (1s..duration; default: no timeline)")
	f.IntVar(&cfg.ServerPID, "server-pid", 0, "follow the resident memory of the server process `PID` (with --url; Linux)")
	f.IntVar(&pushPct, "push", loadgen.DefaultPushPct, "percent of requests that push one new log entry; the rest pull since the head")
	f.IntVar(&cfg.Payload, "payload", loadgen.DefaultPayload, "bytes of each pushed entry's payload (a sealed item)")
	f.IntVar(&cfg.Seed, "seed", loadgen.DefaultSeed, "log entries written to each client's vault before the run (0: none)")
	f.StringVar(&cfg.URL, "url", "", "load a running server at `https://127.0.0.1:PORT` instead of starting one")
	f.StringVar(&cfg.Fingerprint, "fingerprint", "", "the running server's certificate `FINGERPRINT` (as `safe serve` prints it)")
	f.StringVar(&cfg.DB, "db", "", "run the in-process server on PostgreSQL at `URL` (postgres://...), in a fresh schema")
	f.StringVar(&cfg.DataDir, "data", "", "the in-process server's data `DIR` for its certificate and SQLite database (default: a temporary directory)")
	f.StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile of the measured run (setup excluded) to `FILE`, for go tool pprof")
	f.BoolVar(&progress, "progress", false, "print setup progress to stderr even with --json")
	c.AddCommand(sync)
	return c
}
