package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/safehold/safehold/internal/service"
	"github.com/safehold/safehold/internal/textsafe"
	"github.com/safehold/safehold/internal/vault"
)

// Exit codes of organisation commands (docs/cli.md).
const (
	ExitNotAllowed  = 16 // the role does not allow it, or the server refused access
	ExitFingerprint = 17 // a typed organisation or member fingerprint does not match
)

func init() {
	agentCodes[service.CodeNotAllowed] = ExitNotAllowed
	agentCodes[service.CodeOrgFingerprint] = ExitFingerprint
	agentCodes[service.CodeNoOrg] = ExitNotFound
	agentCodes[service.CodeNoOrgs] = ExitUsage
}

// Every name and address an organisation holds is server-visible text
// that other people chose: human output shows it through textsafe.Clean.

func (a *app) orgCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "org",
		Short: "Organisations: members, roles, groups and the keys that tie them together",
		Long: `An organisation shares vaults between accounts on one server. Its root key is
pinned on every member's device when they accept, after they compare its
fingerprint with the one the inviter sees; each member's identity key is
compared the same way by the administrator who confirms them. The server
stores the organisation's signed log but cannot add members, change roles or
read shared vaults.`,
	}
	c.AddCommand(a.orgCreateCommand(), a.orgLsCommand(), a.orgShowCommand(), a.orgRmCommand(),
		a.orgInviteCommand(), a.orgAcceptCommand(), a.orgConfirmCommand(), a.orgMembersCommand(),
		a.orgRemoveCommand(), a.orgRoleCommand(), a.groupCommand())
	return c
}

func (a *app) orgCreateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "create NAME",
		Short: "Create an organisation with you as its owner",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o, err := callAgent[vault.OrgSummary](a, service.OpOrgCreate, service.NameArgs{Name: args[0]})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(o)
			}
			a.printf("Created organisation %s (%s).\n\n", textsafe.Clean(o.Name), o.ID)
			a.printf("Its fingerprint:\n\n    %s\n\n", o.Fingerprint)
			a.printf("People you invite (`safe org invite`) compare it before they accept: tell it\nto them in person or by phone, not through the server.\n")
			return nil
		},
	}
}

func (a *app) orgLsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List your organisations and invitations",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			list, err := callAgent[[]vault.OrgSummary](a, service.OpOrgs, nil)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(list)
			}
			if len(list) == 0 {
				a.printf("No organisations. Create one with `safe org create NAME`.\n")
				return nil
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "ID\tNAME\tROLE\tMEMBERS\tVAULTS\n")
			for _, o := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", o.ID, textsafe.Clean(o.Name), orgRole(o), o.Members, o.Vaults)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, o := range list {
				if o.State == "invited" {
					a.printf("\nYou are invited to %s: check its fingerprint with the inviter, then\n`safe org accept %s --fingerprint CODE`.\n", textsafe.Clean(o.Name), o.ID)
					break
				}
			}
			return nil
		},
	}
}

// orgRole is the ROLE column: the role, or the state of a membership that
// is not active yet.
func orgRole(o vault.OrgSummary) string {
	switch {
	case o.State == "" || o.State == "active":
		return textsafe.Clean(o.Role)
	case o.State == "accepted":
		return "accepted (waiting for confirmation)"
	}
	return textsafe.Clean(o.State)
}

func (a *app) orgShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ORG",
		Short: "Show an organisation: its fingerprint, members, groups and vaults",
		Long: `Show an organisation found by id, id prefix or name. The fingerprint is the code
that people you invite compare before they accept.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			d, err := callAgent[vault.OrgDetail](a, service.OpOrgShow, service.OrgArgs{Org: args[0]})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(d)
			}
			creator := d.Creator
			for _, m := range d.Members {
				if m.Account == d.Creator {
					creator = textsafe.Clean(m.Email)
				}
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "name:\t%s\n", textsafe.Clean(d.Name))
			fmt.Fprintf(tw, "id:\t%s\n", d.ID)
			fmt.Fprintf(tw, "fingerprint:\t%s\n", d.Fingerprint)
			fmt.Fprintf(tw, "your role:\t%s\n", orgRole(d.OrgSummary))
			if d.Created != 0 {
				fmt.Fprintf(tw, "created:\t%s by %s\n", time.UnixMilli(d.Created).Local().Format(time.DateTime), creator)
			}
			fmt.Fprintf(tw, "members:\t%d active\n", d.OrgSummary.Members)
			for _, g := range d.Groups {
				fmt.Fprintf(tw, "group:\t%s (%s)\n", textsafe.Clean(g.Name), cleanList(g.Members))
			}
			for _, v := range d.Shared {
				fmt.Fprintf(tw, "vault:\t%s (%s, %d items)\n", textsafe.Clean(v.Name), textsafe.Clean(v.Access), v.Items)
			}
			return tw.Flush()
		},
	}
}

// cleanList joins names for a line of human output.
func cleanList(list []string) string {
	if len(list) == 0 {
		return "no members"
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = textsafe.Clean(s)
	}
	return strings.Join(out, ", ")
}

func (a *app) orgRmCommand() *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "rm ORG",
		Short: "Dissolve an organisation (its owner), or leave it (anyone else)",
		Long: `Dissolve an organisation you created: the server deletes its log and shared
vaults for everyone. Anyone else leaves it. Either way its shared vaults are
removed from this device. On a terminal it asks first, unless --yes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !yes && a.stdinIsTerminal() {
				fmt.Fprintf(a.env.Stderr, "Dissolve or leave organisation %s, and remove its shared vaults from this device? [y/N] ", textsafe.Clean(args[0]))
				line, err := a.readLine()
				if err != nil || !strings.EqualFold(line, "y") {
					return failf(ExitError, "", "nothing was changed")
				}
			}
			if _, err := callAgent[struct{}](a, service.OpOrgDelete, service.OrgArgs{Org: args[0]}); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Organisation %s is gone from this device.\n", textsafe.Clean(args[0]))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return c
}

func (a *app) orgInviteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "invite ORG EMAIL",
		Short: "Invite an account (by its e-mail address) to an organisation",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			email := strings.TrimSpace(args[1])
			if !strings.Contains(email, "@") {
				return failf(ExitUsage, "", "%q is not an e-mail address", email)
			}
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			if err := sc.C.Call(a.ctx, service.OpOrgInvite, service.MemberArgs{Org: args[0], Email: email}, nil); err != nil {
				return err
			}
			var d vault.OrgDetail
			if err := sc.C.Call(a.ctx, service.OpOrgShow, service.OrgArgs{Org: args[0]}, &d); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"org": d.ID, "email": email, "fingerprint": d.Fingerprint})
			}
			a.printf("Invited %s to %s.\n\n", textsafe.Clean(email), textsafe.Clean(d.Name))
			a.printf("Give them the organisation's fingerprint in person or by phone:\n\n    %s\n\n", d.Fingerprint)
			a.printf("They accept with `safe org accept %s --fingerprint CODE` and read you their\nidentity code; then confirm them with `safe org confirm %s %s --fingerprint CODE`.\n",
				d.ID, d.ID, textsafe.Clean(email))
			return nil
		},
	}
}

func (a *app) orgAcceptCommand() *cobra.Command {
	var fingerprint string
	c := &cobra.Command{
		Use:   "accept ORG",
		Short: "Accept an invitation after checking the organisation's fingerprint",
		Long: `Accept an invitation to an organisation (its id, id prefix or name, as
` + "`safe org ls`" + ` shows it). Its fingerprint must match the one the person who
invited you sees: pass it with --fingerprint, or, on a terminal, compare the
code shown and confirm. The organisation's key is then pinned on this device,
and later changes of it are refused.

You then get your own identity code: read it to the administrator, who
confirms your membership with it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			code := strings.TrimSpace(fingerprint)
			if code == "" {
				if code, err = a.confirmInvitation(sc, args[0]); err != nil {
					return err
				}
			}
			var acc vault.Accepted
			if err := sc.C.Call(a.ctx, service.OpOrgAccept, service.AcceptArgs{Org: args[0], Fingerprint: code}, &acc); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(acc)
			}
			email := "YOUR-EMAIL"
			var st service.AccountStatus
			if err := sc.C.Call(a.ctx, service.OpAccountStatus, nil, &st); err == nil && st.Remote != nil {
				email = textsafe.Clean(st.Remote.Email)
			}
			a.printf("Accepted: you joined %s (%s). Its key is pinned on this device.\n\n", textsafe.Clean(acc.Org.Name), acc.Org.ID)
			a.printf("Your identity code:\n\n    %s\n\n", acc.Fingerprint)
			a.printf("Read it to the administrator in person or by phone; they confirm you with\n`safe org confirm %s %s --fingerprint CODE`. Shared vaults reach you after that.\n", acc.Org.ID, email)
			return nil
		},
	}
	c.Flags().StringVar(&fingerprint, "fingerprint", "", "the organisation's fingerprint `CODE`, as the person who invited you sees it (`safe org show ORG`)")
	return c
}

// confirmInvitation shows the fingerprint of the organisation ref names
// among the invitations and asks the user whether it matches what the
// inviter sees. It returns the code to accept.
func (a *app) confirmInvitation(sc *service.Client, ref string) (string, error) {
	if !a.stdinIsTerminal() {
		return "", failf(ExitUsage, "ask whoever invited you for the code `safe org show ORG` prints, then pass --fingerprint CODE",
			"accepting %s needs its fingerprint, checked with the person who invited you", textsafe.Clean(ref))
	}
	var list []vault.OrgSummary
	if err := sc.C.Call(a.ctx, service.OpOrgs, nil, &list); err != nil {
		return "", err
	}
	want := strings.ToLower(strings.TrimSpace(ref))
	var hits []vault.OrgSummary
	for _, o := range list {
		if o.Pinned || o.State != "invited" {
			continue
		}
		if o.ID == want || len(want) >= 4 && strings.HasPrefix(o.ID, want) || strings.EqualFold(o.Name, ref) {
			hits = append(hits, o)
		}
	}
	switch len(hits) {
	case 0:
		return "", failf(ExitNotFound, "`safe org ls` lists your invitations", "no invitation to %q", textsafe.Clean(ref))
	case 1:
	default:
		return "", failf(ExitAmbiguous, "use the id `safe org ls` shows", "%q names %d organisations you are invited to", textsafe.Clean(ref), len(hits))
	}
	o := hits[0]
	fmt.Fprintf(a.env.Stderr, "You are invited to %s (%s). Its fingerprint is:\n\n    %s\n\n", textsafe.Clean(o.Name), o.ID, o.Fingerprint)
	fmt.Fprintf(a.env.Stderr, "Compare it with the one the person who invited you sees (`safe org show`),\nin person or by phone, not through the server. Does it match exactly? [y/N] ")
	return a.confirmed(o.Fingerprint)
}

// confirmed reads the answer to a "does it match" question: the code on
// yes, an error otherwise.
func (a *app) confirmed(code string) (string, error) {
	line, err := a.readLine()
	if err != nil || !strings.EqualFold(strings.TrimSpace(line), "y") {
		return "", failf(ExitFingerprint, "nothing was pinned or certified; if the codes differ, someone may be substituting keys: tell the other person",
			"the fingerprint was not confirmed")
	}
	return code, nil
}

func (a *app) orgConfirmCommand() *cobra.Command {
	var fingerprint string
	c := &cobra.Command{
		Use:   "confirm ORG EMAIL",
		Short: "Confirm a member who accepted, after checking their identity code",
		Long: `Certify the membership of someone who accepted an invitation. Their identity
code must match the one they see (printed when they accepted, and by
` + "`safe account fingerprint`" + `): pass it with --fingerprint, or, on a terminal,
compare the code shown and confirm. Shared vaults they are given access to
are then encrypted to their keys.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			sc, err := a.unlocked()
			if err != nil {
				return err
			}
			defer sc.C.Close()
			email := strings.TrimSpace(args[1])
			code := strings.TrimSpace(fingerprint)
			if code == "" {
				if code, err = a.confirmMember(sc, args[0], email); err != nil {
					return err
				}
			}
			if err := sc.C.Call(a.ctx, service.OpOrgConfirm, service.ConfirmArgs{Org: args[0], Email: email, Fingerprint: code}, nil); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Confirmed %s as a member of %s.\n", textsafe.Clean(email), textsafe.Clean(args[0]))
			}
			return nil
		},
	}
	c.Flags().StringVar(&fingerprint, "fingerprint", "", "the member's identity `CODE`, as they see it")
	return c
}

// confirmMember shows the identity code of a member waiting for
// confirmation and asks the user whether it matches what the member sees.
func (a *app) confirmMember(sc *service.Client, org, email string) (string, error) {
	if !a.stdinIsTerminal() {
		return "", failf(ExitUsage, "ask "+textsafe.Clean(email)+" for the identity code they were shown when they accepted, then pass --fingerprint CODE",
			"confirming %s needs their identity code, checked with them", textsafe.Clean(email))
	}
	var list []vault.OrgMember
	if err := sc.C.Call(a.ctx, service.OpOrgMembers, service.OrgArgs{Org: org}, &list); err != nil {
		return "", err
	}
	for _, m := range list {
		if !strings.EqualFold(m.Email, email) || m.State != "accepted" {
			continue
		}
		fmt.Fprintf(a.env.Stderr, "%s presented this identity code:\n\n    %s\n\n", textsafe.Clean(m.Email), m.Fingerprint)
		fmt.Fprintf(a.env.Stderr, "Compare it with the one they see (printed when they accepted, or by\n`safe account fingerprint`), in person or by phone. Does it match exactly? [y/N] ")
		return a.confirmed(m.Fingerprint)
	}
	return "", failf(ExitNotFound, "`safe org members ORG` lists who waits for confirmation (state accepted)",
		"%s has not accepted an invitation to %s", textsafe.Clean(email), textsafe.Clean(org))
}

func (a *app) orgMembersCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "members ORG",
		Short: "List an organisation's members and invitations, with their identity codes",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			list, err := callAgent[[]vault.OrgMember](a, service.OpOrgMembers, service.OrgArgs{Org: args[0]})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(list)
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "EMAIL\tROLE\tSTATE\tFINGERPRINT\n")
			for _, m := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", textsafe.Clean(m.Email), orDash(textsafe.Clean(m.Role)), textsafe.Clean(m.State), orDash(m.Fingerprint))
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) orgRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove ORG EMAIL",
		Short: "Remove a member; the keys of every vault they could read are rotated",
		Long: `Remove a member from an organisation. Every shared vault they could read gets a
new key at once, and its items are re-encrypted (with a progress bar), so
nothing written from now on can be read with what they kept.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			email := strings.TrimSpace(args[1])
			if _, err := callAgentProgress[struct{}](a, service.OpOrgRemove, service.MemberArgs{Org: args[0], Email: email}, "re-encrypting"); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Removed %s from %s; the keys of the vaults they could read were rotated.\n", textsafe.Clean(email), textsafe.Clean(args[0]))
			}
			return nil
		},
	}
}

func (a *app) orgRoleCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "role ORG EMAIL admin|member",
		Short: "Make a member an administrator, or an administrator a member",
		Args:  cobra.ExactArgs(3),
		RunE: func(c *cobra.Command, args []string) error {
			role := strings.ToLower(args[2])
			if role != "admin" && role != "member" {
				return usageError{fmt.Errorf("role %q: use admin or member", args[2])}
			}
			email := strings.TrimSpace(args[1])
			if _, err := callAgent[struct{}](a, service.OpOrgSetRole, service.RoleArgs{Org: args[0], Email: email, Role: role}); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("%s is now %s of %s.\n", textsafe.Clean(email), map[string]string{"admin": "an administrator", "member": "a member"}[role], textsafe.Clean(args[0]))
			}
			return nil
		},
	}
}

func (a *app) groupCommand() *cobra.Command {
	c := &cobra.Command{Use: "group", Short: "Groups of members, to share vaults with several people at once"}
	create := &cobra.Command{
		Use:   "create ORG NAME",
		Short: "Create an empty group",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := callAgent[struct{}](a, service.OpGroupCreate, service.GroupArgs{Org: args[0], Name: args[1]}); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Created group %s in %s. Share a vault with it: `safe vault share VAULT group:%s --role read`.\n",
					textsafe.Clean(args[1]), textsafe.Clean(args[0]), textsafe.Clean(args[1]))
			}
			return nil
		},
	}
	add := &cobra.Command{
		Use:   "add ORG NAME EMAIL",
		Short: "Add a member to a group (they get the group's vaults)",
		Args:  cobra.ExactArgs(3),
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := callAgent[struct{}](a, service.OpGroupAdd, service.GroupArgs{Org: args[0], Name: args[1], Email: strings.TrimSpace(args[2])}); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Added %s to group %s.\n", textsafe.Clean(args[2]), textsafe.Clean(args[1]))
			}
			return nil
		},
	}
	rm := &cobra.Command{
		Use:   "rm ORG NAME EMAIL",
		Short: "Take a member out of a group; the keys of vaults they lose are rotated",
		Args:  cobra.ExactArgs(3),
		RunE: func(c *cobra.Command, args []string) error {
			args3 := service.GroupArgs{Org: args[0], Name: args[1], Email: strings.TrimSpace(args[2])}
			if _, err := callAgentProgress[struct{}](a, service.OpGroupRemove, args3, "re-encrypting"); err != nil {
				return err
			}
			if !a.jsonOut {
				a.printf("Took %s out of group %s.\n", textsafe.Clean(args[2]), textsafe.Clean(args[1]))
			}
			return nil
		},
	}
	c.AddCommand(create, add, rm)
	return c
}
