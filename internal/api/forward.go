package api

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/runbox-dev/runbox/internal/relay"
)

// UseRelay makes the API forward a session's calls that reach this node to
// the node that owns the session (several nodes on one NATS), and record
// the sessions it creates as its own.
func (s *Server) UseRelay(r *relay.Relay) {
	s.relay.Store(r)
	if s.cfg.Sessions != nil {
		s.cfg.Sessions.OnEnd(func(id string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r.Release(ctx, id)
		})
	}
}

// claim records a new session as this node's.
func (s *Server) claim(ctx context.Context, id string) error {
	r := s.relay.Load()
	if r == nil {
		return nil
	}
	if err := r.Claim(ctx, id); err != nil {
		s.log.Error("claiming a session", "request_id", requestID(ctx), "session", id, "err", err)
		return unavailable(ctx, "the cluster could not record the session; retry later")
	}
	return nil
}

var sessionPathRE = regexp.MustCompile(`^/v1/sessions/([0-9a-f]{32})(/|$)`)

// forward sends a call about a session this node does not hold to the
// node that owns it, and reports whether it did. A call that was
// forwarded already is answered here (404 when the session is not here):
// never forwarded twice.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) bool {
	rl := s.relay.Load()
	if rl == nil || s.cfg.Sessions == nil || relay.Forwarded(r) || !strings.HasPrefix(r.URL.Path, "/v1/sessions/") {
		return false
	}
	m := sessionPathRE.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return false
	}
	if _, err := s.cfg.Sessions.Get(m[1]); err == nil {
		return false
	}
	owner, err := rl.Owner(r.Context(), m[1])
	if err != nil {
		s.log.Warn("looking up a session's owner", "request_id", requestID(r.Context()), "session", m[1], "err", err)
		return false
	}
	if owner == "" || owner == s.cfg.Node {
		return false
	}
	rl.Forward(w, r, owner)
	return true
}
