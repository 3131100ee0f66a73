package httpremote

import (
	"context"
	"fmt"
	"net/http"

	"github.com/safehold/safehold/internal/api"
)

// The account API beyond remote.Remote, for the CLI. Every string the
// server sends back for display is sanitised (control characters and
// terminal escapes removed, at most 300 characters).

// maxRecoveryCodes bounds the recovery codes the client accepts.
const maxRecoveryCodes = 100

// Devices lists the account's devices.
func (c *Client) Devices(ctx context.Context) ([]api.Device, error) {
	var out api.Devices
	if err := c.call(ctx, http.MethodGet, api.PathDevices, nil, &out, true); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	for i := range out.Devices {
		d := &out.Devices[i]
		d.ID, d.Platform = sanitize(d.ID), sanitize(d.Platform)
	}
	return out.Devices, nil
}

// RevokeDevice revokes a device: its sessions end and it cannot log in
// again under the same id.
func (c *Client) RevokeDevice(ctx context.Context, device string) error {
	if err := checkIDs("device", device); err != nil {
		return err
	}
	if err := c.call(ctx, http.MethodDelete, api.PathDevices+"/"+device, nil, nil, true); err != nil {
		return fmt.Errorf("revoke device %s: %w", device, err)
	}
	return nil
}

// Logins returns the account's login history, newest first.
func (c *Client) Logins(ctx context.Context) ([]api.Login, error) {
	var out api.Logins
	if err := c.call(ctx, http.MethodGet, api.PathLogins, nil, &out, true); err != nil {
		return nil, fmt.Errorf("list logins: %w", err)
	}
	for i := range out.Logins {
		l := &out.Logins[i]
		l.Device, l.Address, l.Reason = sanitize(l.Device), sanitize(l.Address), sanitize(l.Reason)
	}
	return out.Logins, nil
}

// TOTPSetup asks for a fresh TOTP secret (not enabled until TOTPEnable).
func (c *Client) TOTPSetup(ctx context.Context) (api.TOTPSetup, error) {
	var out api.TOTPSetup
	if err := c.call(ctx, http.MethodPost, api.Path2FASetup, nil, &out, true); err != nil {
		return api.TOTPSetup{}, fmt.Errorf("set up two-factor authentication: %w", err)
	}
	if out.Secret == "" || len(out.Secret) > 256 || !printable(out.Secret) || len(out.URI) > 2048 || !printable(out.URI) {
		return api.TOTPSetup{}, fmt.Errorf("set up two-factor authentication: the server sent a malformed secret or URI")
	}
	return out, nil
}

// TOTPEnable confirms the secret with a current code and returns the
// one-time recovery codes (shown once).
func (c *Client) TOTPEnable(ctx context.Context, code string) ([]string, error) {
	var out api.RecoveryCodes
	if err := c.call(ctx, http.MethodPost, api.Path2FAEnable, api.TOTPEnable{Code: code}, &out, true); err != nil {
		return nil, fmt.Errorf("enable two-factor authentication: %w", err)
	}
	if len(out.Codes) == 0 || len(out.Codes) > maxRecoveryCodes {
		return nil, fmt.Errorf("enable two-factor authentication: the server sent %d recovery codes", len(out.Codes))
	}
	for _, s := range out.Codes {
		if s == "" || len(s) > 64 || !printable(s) {
			return nil, fmt.Errorf("enable two-factor authentication: the server sent a malformed recovery code")
		}
	}
	return out.Codes, nil
}

// TOTPDisable turns two-factor authentication off; it needs a current
// code or a recovery code.
func (c *Client) TOTPDisable(ctx context.Context, r api.TOTPDisable) error {
	if err := c.call(ctx, http.MethodPost, api.Path2FADisable, r, nil, true); err != nil {
		return fmt.Errorf("disable two-factor authentication: %w", err)
	}
	return nil
}
