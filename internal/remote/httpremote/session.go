package httpremote

import "github.com/safehold/safehold/internal/api"

// Session returns a copy of the current session, or nil when logged out.
func (c *Client) Session() *api.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return nil
	}
	s := *c.sess
	return &s
}
