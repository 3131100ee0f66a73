package cli

import (
	"bytes"

	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/kit"
	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/vault"
)

func (a *app) kitCommand() *cobra.Command {
	var out, rkFile string
	c := &cobra.Command{
		Use:   "kit --out FILE",
		Short: "Write the printable recovery kit (PDF): account, server, Secret Key, setup QR code",
		Long: `Write the recovery kit as a PDF, made here and sent nowhere: the account's
e-mail address, the server and its certificate fingerprint, the Secret Key, a box
to write the password in, and a QR code a new device can read. With
--recovery-key-file, the Recovery Key is printed on a page of its own (it is not
stored anywhere, so safe cannot add it by itself). Print it, then delete the file.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return failf(ExitUsage, "pass --out FILE", "the output file is needed")
			}
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			var st service.AccountStatus
			if err := sc.C.Call(a.ctx, service.OpAccountStatus, nil, &st); err != nil {
				return err
			}
			if st.Remote.Kind != vault.RemoteServer {
				return failf(ExitUsage, "the Secret Key is still needed with a folder: `safe account secret-key` prints it", "the recovery kit is for an account on a server; this vault syncs with a folder")
			}
			var sk service.SecretKey
			if err := sc.C.Call(a.ctx, service.OpSecretKey, nil, &sk); err != nil {
				return err
			}
			info, err := sc.Info(a.ctx, false)
			if err != nil {
				return err
			}
			k := kit.Kit{Email: st.Remote.Email, Server: st.Remote.URL, Fingerprint: st.Remote.Fingerprint, Account: info.Account, SecretKey: sk.SecretKey, Created: time.Now()}
			if rkFile != "" {
				rk, err := readSecretFile(rkFile)
				if err != nil {
					return err
				}
				k.RecoveryKey = string(rk)
				rk.Wipe()
			}
			var buf bytes.Buffer
			if err := kit.WritePDF(&buf, k); err != nil {
				return withHint(ExitInvalid, "", err)
			}
			if err := writeFileAtomic(out, buf.Bytes()); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"out": out, "bytes": buf.Len()})
			}
			a.printf("Wrote the recovery kit to %s (%d bytes). Print it, keep it safe, and delete the file.\n", out, buf.Len())
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "write the PDF to `FILE` (created 0600)")
	c.Flags().StringVar(&rkFile, "recovery-key-file", "", "also print the Recovery Key read from `FILE` (or fd:N), on its own page")
	return c
}
