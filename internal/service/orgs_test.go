package service

import (
	"testing"

	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/vault"
)

// The organisation ops that need no remote: personal vaults, and items
// added, found, moved and copied between them. The ops that need one say
// so with a code the CLI knows.
func TestVaultOpsWithoutRemote(t *testing.T) {
	h := newHandler(t)
	if _, err := handle(t, h, OpIdentity, nil); code(err) != CodeLocked {
		t.Fatalf("identity while locked: %v", err)
	}
	if _, err := handle(t, h, OpUnlock, UnlockArgs{Password: []byte("correct horse battery")}); err != nil {
		t.Fatal(err)
	}
	res, err := handle(t, h, OpIdentity, nil)
	if err != nil || res.(Identity).Fingerprint == "" {
		t.Fatalf("identity = %v, %v", res, err)
	}
	res, err = handle(t, h, OpVaultCreate, VaultCreateArgs{Name: "Work"})
	if err != nil {
		t.Fatalf("create a personal vault: %v", err)
	}
	work := res.(vault.VaultInfo)
	if work.Name != "Work" || work.Org != "" {
		t.Fatalf("created %+v", work)
	}
	res, err = handle(t, h, OpVaults, nil)
	if err != nil || len(res.([]vault.VaultInfo)) != 2 {
		t.Fatalf("vaults = %v, %v", res, err)
	}
	personal := res.([]vault.VaultInfo)[0]
	if personal.ID == work.ID {
		t.Fatalf("the new vault comes first: %v", res)
	}
	if _, err := handle(t, h, OpAddTo, AddToArgs{Vault: "Work", Items: []item.Item{{Type: item.Login, Title: "Same"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := handle(t, h, OpAdd, AddArgs{Items: []item.Item{{Type: item.Login, Title: "Same"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := handle(t, h, OpGet, RefArgs{Ref: "Same"}); code(err) != CodeAmbiguous {
		t.Fatalf("a title in two vaults: %v", err)
	}
	res, err = handle(t, h, OpResolveIn, ResolveArgs{Vault: work.ID, Ref: "same"})
	if err != nil {
		t.Fatal(err)
	}
	id := res.(ItemID).ID
	res, err = handle(t, h, OpList, ListArgs{Filter: vault.Filter{Vault: "Work"}})
	if list := res.([]vault.Overview); err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("list of Work = %v, %v", res, err)
	}
	if _, err := handle(t, h, OpResolveIn, ResolveArgs{Vault: "Nowhere", Ref: "Same"}); code(err) != CodeNoOrg {
		t.Fatalf("an unknown vault: %v", err)
	}
	// A copy of Work's item joins the personal one; then Work's moves
	// there too, and Work is empty.
	res, err = handle(t, h, OpCopy, MoveArgs{Ref: id, Vault: personal.ID})
	if err != nil || res.(item.Item).ID == id || res.(item.Item).Title != "Same" {
		t.Fatalf("copy = %v, %v", res, err)
	}
	if _, err := handle(t, h, OpCopy, MoveArgs{Ref: id, Vault: "Work"}); code(err) != CodeOrgRefused {
		t.Fatalf("copy into its own vault: %v", err)
	}
	if _, err := handle(t, h, OpMove, MoveArgs{Ref: id, Vault: personal.ID}); err != nil {
		t.Fatalf("move: %v", err)
	}
	res, err = handle(t, h, OpList, ListArgs{Filter: vault.Filter{Vault: personal.ID}})
	if err != nil || len(res.([]vault.Overview)) != 3 {
		t.Fatalf("personal vault after copy and move = %v, %v", res, err)
	}
	res, err = handle(t, h, OpList, ListArgs{Filter: vault.Filter{Vault: "Work"}})
	if err != nil || len(res.([]vault.Overview)) != 0 {
		t.Fatalf("Work after the move = %v, %v", res, err)
	}
	if _, err := handle(t, h, OpMove, MoveArgs{Ref: "Same", Vault: "Nowhere"}); code(err) != CodeNoOrg && code(err) != CodeAmbiguous {
		t.Fatalf("move to an unknown vault: %v", err)
	}

	// Without a remote: the organisations pinned here (none), and a clear
	// code for everything that needs the server.
	res, err = handle(t, h, OpOrgs, nil)
	if err != nil || len(res.([]vault.OrgSummary)) != 0 {
		t.Fatalf("orgs = %v, %v", res, err)
	}
	for op, args := range map[string]any{
		OpOrgCreate:   NameArgs{Name: "Acme"},
		OpOrgShow:     OrgArgs{Org: "Acme"},
		OpVaultCreate: VaultCreateArgs{Name: "Team", Org: "Acme"},
		OpVaultShare:  ShareArgs{Vault: "Work", Subject: "bob@example.com", Access: "read"},
	} {
		if _, err := handle(t, h, op, args); code(err) != CodeNoRemote {
			t.Errorf("%s without a remote: %v", op, err)
		}
	}
	// Arguments are decoded strictly before the remote is opened.
	if _, err := handle(t, h, OpOrgInvite, map[string]string{"org": "Acme", "mail": "x"}); code(err) != "bad_request" {
		t.Errorf("unknown argument: %v", err)
	}
}
