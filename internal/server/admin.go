package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/safehold/safehold/internal/server/storage"
)

// Administration for `safe admin`, run on the server's database directly
// (not over HTTP). Thin wrappers that keep the rules in one place: a
// disabled account also loses its sessions.

// UserInfo is one account as `safe admin users` shows it.
type UserInfo struct {
	Account  string        `json:"account"`
	Email    string        `json:"email"`
	Created  time.Time     `json:"created"`
	Disabled bool          `json:"disabled"`
	TOTP     bool          `json:"totp"`
	Usage    storage.Usage `json:"usage"`
}

// Users lists every account with its usage.
func Users(ctx context.Context, st storage.Store) ([]UserInfo, error) {
	sums, err := st.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := make([]UserInfo, 0, len(sums))
	for _, s := range sums {
		out = append(out, UserInfo{
			Account:  s.Account.ID,
			Email:    s.Account.Email,
			Created:  s.Account.Created,
			Disabled: s.Account.Disabled,
			TOTP:     s.Account.TOTPEnabled,
			Usage:    s.Usage,
		})
	}
	return out, nil
}

// FindAccount looks an account up by id or e-mail address.
func FindAccount(ctx context.Context, st storage.Store, idOrEmail string) (storage.Account, error) {
	if validID(idOrEmail) {
		a, err := st.AccountByID(ctx, idOrEmail)
		if err == nil || !errors.Is(err, storage.ErrNotFound) {
			return a, err
		}
	}
	email, ok := normalizeEmail(idOrEmail)
	if !ok {
		return storage.Account{}, fmt.Errorf("no account %q: %w", idOrEmail, storage.ErrNotFound)
	}
	a, err := st.AccountByEmail(ctx, email)
	if err != nil {
		return storage.Account{}, fmt.Errorf("no account %q: %w", idOrEmail, err)
	}
	return a, nil
}

// SetDisabled disables or enables an account. Disabling also ends every
// session of the account (requests would be refused anyway).
func SetDisabled(ctx context.Context, st storage.Store, account string, disabled bool) error {
	if err := st.SetDisabled(ctx, account, disabled); err != nil {
		return fmt.Errorf("set account %s disabled=%t: %w", account, disabled, err)
	}
	if disabled {
		if err := st.DeleteSessions(ctx, account); err != nil {
			return fmt.Errorf("end sessions of account %s: %w", account, err)
		}
	}
	return nil
}

// DeleteAccount deletes an account and everything it owns: devices,
// sessions, history, vaults, logs and blobs. It cannot be undone.
func DeleteAccount(ctx context.Context, st storage.Store, account string) error {
	if err := st.DeleteAccount(ctx, account); err != nil {
		return fmt.Errorf("delete account %s: %w", account, err)
	}
	return nil
}

// Usage returns what one account stores.
func Usage(ctx context.Context, st storage.Store, account string) (storage.Usage, error) {
	u, err := st.Usage(ctx, account)
	if err != nil {
		return storage.Usage{}, fmt.Errorf("usage of account %s: %w", account, err)
	}
	return u, nil
}
