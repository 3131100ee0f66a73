package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/genpass"
	"github.com/safehold/safehold/internal/random"
	"github.com/safehold/safehold/internal/secret"
)

// genFlags are the generator options shared by generate, add and edit.
type genFlags struct {
	length                                int
	noUpper, noLower, noDigits, noSymbols bool
	noAmbiguous, eachClass                bool
	passphrase                            bool
	words                                 int
	separator                             string
	capitalize                            string
	digit                                 bool
}

func (g *genFlags) register(c *cobra.Command) {
	f := c.Flags()
	f.IntVar(&g.length, "length", genpass.DefaultLength, "password length")
	f.BoolVar(&g.noUpper, "no-upper", false, "no upper-case letters")
	f.BoolVar(&g.noLower, "no-lower", false, "no lower-case letters")
	f.BoolVar(&g.noDigits, "no-digits", false, "no digits")
	f.BoolVar(&g.noSymbols, "no-symbols", false, "no symbols")
	f.BoolVar(&g.noAmbiguous, "no-ambiguous", false, "leave out look-alike characters (0 O 1 l I |)")
	f.BoolVar(&g.eachClass, "each-class", true, "use every enabled character class at least once")
	f.BoolVar(&g.passphrase, "passphrase", false, "generate words from the EFF long word list instead")
	f.IntVar(&g.words, "words", genpass.DefaultWords, "passphrase word count")
	f.StringVar(&g.separator, "separator", "-", "passphrase word separator")
	f.StringVar(&g.capitalize, "capitalize", "none", "passphrase capitalisation: none, title, upper or random")
	f.BoolVar(&g.digit, "digit", false, "append a random digit to one passphrase word")
}

// generate makes a password or passphrase and returns it with its entropy.
func (g *genFlags) generate() (secret.Bytes, float64, error) {
	src, err := random.New()
	if err != nil {
		return nil, 0, err
	}
	// 0 means "the default" to genpass; on the command line it is a mistake.
	if g.length <= 0 || g.words <= 0 {
		return nil, 0, usageError{fmt.Errorf("--length and --words must be positive")}
	}
	if g.passphrase {
		capz, err := genpass.ParseCapitalization(g.capitalize)
		if err != nil {
			return nil, 0, usageError{err}
		}
		pw, bits, err := genpass.Passphrase(src, genpass.PassphraseOptions{Words: g.words, Separator: g.separator, Capitalization: capz, AppendDigit: g.digit})
		if err != nil {
			return nil, 0, usageError{err}
		}
		return pw, bits, nil
	}
	pw, bits, err := genpass.Password(src, genpass.PasswordOptions{
		Length: g.length, NoUpper: g.noUpper, NoLower: g.noLower, NoDigits: g.noDigits, NoSymbols: g.noSymbols,
		ExcludeAmbiguous: g.noAmbiguous, RequireEachClass: g.eachClass,
	})
	if err != nil {
		return nil, 0, usageError{err}
	}
	return pw, bits, nil
}
