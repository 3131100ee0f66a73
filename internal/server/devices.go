package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/safehold/safehold/internal/api"
	"github.com/safehold/safehold/internal/server/storage"
)

// loginHistory is how many login attempts GET /v1/logins returns.
const loginHistory = 100

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// handleDevices lists the account's devices, revoked ones included.
func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request, p *principal) error {
	ds, err := s.store.Devices(r.Context(), p.account.ID)
	if err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	out := api.Devices{Devices: make([]api.Device, 0, len(ds))}
	for _, d := range ds {
		out.Devices = append(out.Devices, api.Device{
			ID:       d.ID,
			Platform: d.Platform,
			Created:  unix(d.Created),
			LastSeen: unix(d.LastSeen),
			Revoked:  unix(d.Revoked),
			Current:  d.ID == p.device.ID,
		})
	}
	writeJSON(w, out)
	return nil
}

// handleDeviceRevoke revokes a device for good: its sessions end and it
// cannot log in again under that id. Revoking the calling device is
// allowed (it logs itself out). Revoking a revoked device changes nothing.
func (s *Server) handleDeviceRevoke(w http.ResponseWriter, r *http.Request, p *principal) error {
	id := r.PathValue("device")
	if !validID(id) {
		return badRequest("device id is not a 26-character id")
	}
	ctx := r.Context()
	d, err := s.store.Device(ctx, p.account.ID, id)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("device")
	}
	if err != nil {
		return fmt.Errorf("look up device: %w", err)
	}
	if d.Revoked.IsZero() {
		if err := s.store.RevokeDevice(ctx, p.account.ID, id, s.now()); err != nil {
			return fmt.Errorf("revoke device: %w", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleLogins returns the account's recent login attempts, newest first.
func (s *Server) handleLogins(w http.ResponseWriter, r *http.Request, p *principal) error {
	evs, err := s.store.Logins(r.Context(), p.account.ID, loginHistory)
	if err != nil {
		return fmt.Errorf("list logins: %w", err)
	}
	out := api.Logins{Logins: make([]api.Login, 0, len(evs))}
	for _, e := range evs {
		out.Logins = append(out.Logins, api.Login{
			Time:    unix(e.Time),
			Device:  e.Device,
			Address: e.Address,
			OK:      e.OK,
			Reason:  e.Reason,
		})
	}
	writeJSON(w, out)
	return nil
}
