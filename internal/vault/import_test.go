package vault

import (
	"testing"
	"time"

	"github.com/safehold/safehold/internal/item"
)

func TestImportKeepsThePastDatesItCarries(t *testing.T) {
	v, _, _ := newVault(t)
	past := time.Date(2020, 3, 1, 12, 0, 0, 0, time.UTC)
	future := time.Now().Add(48 * time.Hour)
	got, err := v.Import(ctx, "", []item.Item{
		{Type: item.Login, Title: "Old", Password: "pw-old", Created: past, Modified: past, PasswordChanged: past},
		{Type: item.Login, Title: "Future", Password: "pw-new", Created: future, PasswordChanged: future},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].PasswordChanged.Equal(past) || !got[0].Created.Equal(past) || !got[0].Modified.Equal(past) {
		t.Fatalf("imported dates = %v %v %v, want %v", got[0].Created, got[0].Modified, got[0].PasswordChanged, past)
	}
	if got[1].PasswordChanged.After(time.Now()) || got[1].Created.After(time.Now()) {
		t.Fatalf("a date in the future was kept: %v %v", got[1].Created, got[1].PasswordChanged)
	}
	// Add, unlike Import, stamps now.
	added, err := v.Add(ctx, []item.Item{{Type: item.Login, Title: "Added", Password: "pw", PasswordChanged: past}})
	if err != nil {
		t.Fatal(err)
	}
	if added[0].PasswordChanged.Equal(past) {
		t.Fatal("Add kept a caller's password-change date")
	}
}
