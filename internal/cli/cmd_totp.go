package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/totp"
)

// totpSource finds an item's TOTP configuration: the totp field, or the
// first custom field of kind totp.
func totpSource(it item.Item) (string, error) {
	if it.TOTP != "" {
		return it.TOTP, nil
	}
	for _, f := range it.Fields {
		if f.Kind == item.KindTOTP && f.Value != "" {
			return f.Value, nil
		}
	}
	return "", withHint(ExitNotFound, "add one with `safe edit NAME --totp-stdin` (a base32 seed or an otpauth:// URI)", fmt.Errorf("%q has no TOTP seed", it.Title))
}

func (a *app) totpCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "totp NAME",
		Short: "Print the item's current one-time code (RFC 6238)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sc, it, err := a.withItem(args[0])
			if err != nil {
				return err
			}
			defer sc.C.Close()
			now, err := currentCode(it)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"code": now.code, "remaining_seconds": secondsLeft(now.left), "period": now.period, "digits": now.digits})
			}
			a.printf("%s\n", now.code)
			fmt.Fprintf(a.env.Stderr, "valid for %ds more\n", secondsLeft(now.left))
			return nil
		},
	}
	a.vaultFlag(c)
	return c
}

// otpNow is the one-time code valid now and how long it stays valid.
type otpNow struct {
	code           string
	left           time.Duration
	period, digits int
}

// currentCode computes the item's code valid now, from its TOTP seed or
// otpauth URI (see totpSource).
func currentCode(it item.Item) (otpNow, error) {
	src, err := totpSource(it)
	if err != nil {
		return otpNow{}, err
	}
	cfg, err := totp.Parse(src)
	if err != nil {
		return otpNow{}, withHint(ExitInvalid, "fix the seed with `safe edit`", fmt.Errorf("%q: the TOTP seed does not parse: %w", it.Title, err))
	}
	defer cfg.Secret.Wipe()
	code, left, err := totp.Code(cfg, time.Now())
	return otpNow{code, left, cfg.Period, cfg.Digits}, err
}

// secondsLeft rounds up, so a code is never shown as valid for 0 s.
func secondsLeft(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
