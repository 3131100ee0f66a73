package loadgen

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteText writes the report as a table for people.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "server:     %s\n", r.Server)
	fmt.Fprintf(w, "clients:    %d (each its own account, vault of %d entries and connection), %d%% pushes of %d-byte payloads\n", r.Clients, r.Seed, r.PushPct, r.Payload)
	fmt.Fprintf(w, "setup:      %.1f s (registration and seeding, not measured)\n", r.SetupS)
	fmt.Fprintf(w, "run:        %d requests in %.2f s = %.0f requests/s, %d errors (GOMAXPROCS %d)\n\n", r.Requests, r.ElapsedS, r.PerSecond, r.Errors, r.GOMAXPROCS)
	fmt.Fprintf(tw, "request\tcount\tmean ms\tp50 ms\tp90 ms\tp99 ms\tmax ms\t\n")
	for _, row := range []struct {
		name string
		l    Latency
	}{{"all", r.Latency}, {"pull", r.Pull}, {"push", r.Push}} {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", row.name, row.l.Count, row.l.Mean, row.l.P50, row.l.P90, row.l.P99, row.l.Max)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.ErrorKinds) > 0 {
		fmt.Fprintf(w, "\nerrors:\n")
		for _, e := range r.ErrorKinds {
			fmt.Fprintf(w, "  %-28s %8d  e.g. %s\n", e.Kind, e.Count, e.Example)
		}
	}
	if c := r.CPU; c != nil {
		who := "load generator only"
		if c.IncludesServer {
			who = "server and load generator"
		}
		fmt.Fprintf(w, "\ncpu:        %.2f s user + %.2f s system = %.2f cores busy, %.0f µs per request (%s)\n", c.UserS, c.SystemS, c.Utilisation, c.PerRequestUS, who)
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "memory:     heap in use %.1f MiB before, %.1f MiB after (after a GC; growth %+.1f MiB), peak %.1f MiB during the run\n",
			m.HeapInuseBeforeMiB, m.HeapInuseAfterMiB, m.GrowthMiB, m.HeapInusePeakMiB)
		fmt.Fprintf(w, "            RSS %.1f → %.1f MiB, Go runtime Sys %.1f → %.1f MiB, %.1f KiB allocated per request, %d GCs, goroutines %d → %d\n",
			m.RSSBeforeMiB, m.RSSAfterMiB, m.SysBeforeMiB, m.SysAfterMiB, m.AllocPerRequestKiB, m.GCs, m.GoroutinesBefore, m.GoroutinesAfter)
		fmt.Fprintf(w, "            (%s)\n", r.MemoryNotes)
	}
	if m := r.ServerMemory; m != nil {
		fmt.Fprintf(w, "server:     process %d, resident %.1f MiB before, %.1f MiB after the first interval, %.1f MiB after (growth %+.1f MiB; %+.1f MiB after warm-up), peak %.1f MiB, high-water mark %.1f MiB\n",
			m.PID, m.RSSBeforeMiB, m.RSSWarmMiB, m.RSSAfterMiB, m.GrowthMiB, m.SteadyMiB, m.RSSPeakMiB, m.HWMMiB)
	}
	if len(r.Intervals) > 0 {
		fmt.Fprintf(w, "\ntimeline:\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "end s\trequests\trequests/s\tp50 ms\tp99 ms\tmax ms\terrors\theap MiB\tserver RSS MiB\t\n")
		for _, iv := range r.Intervals {
			heap := "-"
			if iv.HeapInuseMiB > 0 {
				heap = fmt.Sprintf("%.1f", iv.HeapInuseMiB)
			}
			rss := "-"
			if iv.ServerRSSMiB > 0 {
				rss = fmt.Sprintf("%.1f", iv.ServerRSSMiB)
			}
			fmt.Fprintf(tw, "%.0f\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\t\n", iv.EndS, iv.Requests, iv.PerSecond, iv.P50, iv.P99, iv.Max, iv.Errors, heap, rss)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
