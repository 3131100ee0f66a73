package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

func (a *app) vaultCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "vault",
		Short: "Vaults: personal ones, and shared ones in an organisation",
		Long: `Items live in vaults. Every account has a personal vault; more can be made, and
an organisation's administrators make shared vaults and give members or
groups read, write or manage access. A shared vault's key is encrypted to
each member who may read it, and replaced when someone loses access.

Item commands take --vault VAULT (id, id prefix or name) to work in one vault.`,
	}
	var org string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a vault: personal, or shared in an organisation with --org",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			vi, err := callAgent[vault.VaultInfo](a, service.OpVaultCreate, service.VaultCreateArgs{Name: args[0], Org: org})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(vi)
			}
			if vi.Org != "" {
				a.printf("Created shared vault %s (%s) in %s.\nGive people access with `safe vault share %s EMAIL|group:NAME --role read|write|manage`.\n",
					textsafe.Clean(vi.Name), vi.ID, textsafe.Clean(orgName(vi)), vi.ID)
				return nil
			}
			a.printf("Created vault %s (%s).\n", textsafe.Clean(vi.Name), vi.ID)
			return nil
		},
	}
	create.Flags().StringVar(&org, "org", "", "make a shared vault in organisation `ORG` (you must administer it)")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the vaults you can open",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			list, err := callAgent[[]vault.VaultInfo](a, service.OpVaults, nil)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(list)
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "ID\tNAME\tORGANISATION\tACCESS\tITEMS\n")
			for _, v := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", v.ID, textsafe.Clean(v.Name), orDash(textsafe.Clean(orgName(v))), textsafe.Clean(v.Access), v.Items)
			}
			return tw.Flush()
		},
	}
	var role string
	share := &cobra.Command{
		Use:   "share VAULT (EMAIL|group:NAME)",
		Short: "Give a member or a group access to a shared vault",
		Long: `Give a member (by e-mail address) or a group (group:NAME) read, write or manage
access to a shared vault. Read lets them see its items, write also change
them, manage also share the vault. Sharing again changes the access; lowering
it below read rotates the vault's key.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			access := strings.ToLower(role)
			if access == "" {
				return usageError{fmt.Errorf("choose the access with --role read, write or manage")}
			}
			if access != "read" && access != "write" && access != "manage" {
				return usageError{fmt.Errorf("--role %q: use read, write or manage", role)}
			}
			subject := strings.TrimSpace(args[1])
			if _, err := callAgent[struct{}](a, service.OpVaultShare, service.ShareArgs{Vault: args[0], Subject: subject, Access: access}); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Shared %s with %s (%s).\n", textsafe.Clean(args[0]), textsafe.Clean(subject), access)
			}
			return nil
		},
	}
	share.Flags().StringVar(&role, "role", "", "the access to give: `read`, write or manage (required)")
	unshare := &cobra.Command{
		Use:   "unshare VAULT (EMAIL|group:NAME)",
		Short: "Take a member's or group's access away; the vault's key is rotated",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			subject := strings.TrimSpace(args[1])
			if _, err := callAgentProgress[struct{}](a, service.OpVaultUnshare, service.ShareArgs{Vault: args[0], Subject: subject}, "re-encrypting"); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("%s no longer has access to %s; its key was rotated.\n", textsafe.Clean(subject), textsafe.Clean(args[0]))
			}
			return nil
		},
	}
	members := &cobra.Command{
		Use:   "members VAULT",
		Short: "List who has access to a shared vault",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			list, err := callAgent[[]vault.VaultMember](a, service.OpVaultMembers, service.VaultArgs{Vault: args[0]})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(list)
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "SUBJECT\tACCESS\tVIA\n")
			for _, m := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", textsafe.Clean(m.Subject), textsafe.Clean(m.Access), orDash(textsafe.Clean(m.Via)))
			}
			return tw.Flush()
		},
	}
	c.AddCommand(create, ls, share, unshare, members)
	return c
}

// orgName names a shared vault's organisation ("" for a personal vault).
func orgName(v vault.VaultInfo) string {
	if v.OrgName != "" {
		return v.OrgName
	}
	return v.Org
}

// moveCommand is `safe mv` (op move) or `safe cp` (op copy).
func (a *app) moveCommand(use string) *cobra.Command {
	op, verb, short := service.OpMove, "Moved", "Move an item to another vault"
	long := "Move an item to another vault: it becomes a new item there (with a new id), and the\nold one is purged."
	if use == "cp" {
		op, verb, short = service.OpCopy, "Copied", "Copy an item into another vault"
		long = "Copy an item into another vault, as a new item there (with a new id)."
	}
	var to, from string
	c := &cobra.Command{
		Use:   use + " NAME --vault VAULT",
		Short: short,
		Long:  long + " NAME is found in every vault, or only in --from VAULT.",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if strings.TrimSpace(to) == "" {
				return usageError{fmt.Errorf("name the vault to %s the item to with --vault VAULT", map[string]string{"mv": "move", "cp": "copy"}[use])}
			}
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			ref := args[0]
			if from != "" {
				if ref, err = sc.ResolveIn(a.ctx, from, ref); err != nil {
					return err
				}
			}
			it, err := sc.Move(a.ctx, op, ref, to)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"id": it.ID, "title": it.Title, "vault": to, "revision": it.Revision})
			}
			a.printf("%s %q to vault %s (%s).\n", verb, textsafe.Clean(it.Title), textsafe.Clean(to), it.ID)
			return nil
		},
	}
	c.Flags().StringVar(&to, "vault", "", "the `VAULT` to "+map[string]string{"mv": "move", "cp": "copy"}[use]+" the item to (id, id prefix or name)")
	c.Flags().StringVar(&from, "from", "", "find NAME only in `VAULT`")
	return c
}
