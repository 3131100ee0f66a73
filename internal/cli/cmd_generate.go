package cli

import (
	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/genpass"
)

func (a *app) generateCommand() *cobra.Command {
	var g genFlags
	c := &cobra.Command{
		Use:   "generate",
		Short: "Generate a password or passphrase and show its strength",
		Example: `  safe generate --length 32 --no-symbols
  safe generate --passphrase --words 6 --capitalize title --separator .`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			pw, bits, err := g.generate()
			if err != nil {
				return err
			}
			defer pw.Wipe()
			if a.jsonOut {
				return a.printJSON(map[string]any{"password": string(pw), "entropy_bits": round1(bits), "strength": genpass.Strength(bits)})
			}
			a.env.Stdout.Write(append(append([]byte(nil), pw...), '\n'))
			a.env.Stderr.Write([]byte(formatEntropy(bits)))
			return nil
		},
	}
	g.register(c)
	return c
}

func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }

func formatEntropy(bits float64) string {
	return "entropy: " + ftoa(round1(bits)) + " bits (" + genpass.Strength(bits) + ")\n"
}
