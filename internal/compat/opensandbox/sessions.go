package opensandbox

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// errInternal is a native result that says runbox failed.
var errInternal = errors.New("the native result is an internal error")

// sessionInfo is OpenSandbox's SessionInfo, its env values redacted.
type sessionInfo struct {
	ID       string            `json:"id"`
	Env      map[string]string `json:"env"`
	Cwd      string            `json:"cwd"`
	AgeSecs  int64             `json:"age_secs"`
	IdleSecs int64             `json:"idle_secs"`
}

// nativeSession is what the adapter reads of a native session.
type nativeSession struct {
	ID         string            `json:"id"`
	Owner      string            `json:"owner"`
	CreatedAt  time.Time         `json:"created_at"`
	LastUsedAt time.Time         `json:"last_used_at"`
	Env        map[string]string `json:"env"`
	Cwd        string            `json:"cwd"`
}

// info is the session as OpenSandbox shows it. The values are redacted:
// OpenSandbox lists every session's environment, secrets included, to
// anyone who asks (its weakness 3).
func (s *nativeSession) info(now time.Time) sessionInfo {
	env := make(map[string]string, len(s.Env))
	for k := range s.Env {
		env[k] = redacted
	}
	cwd := s.Cwd
	if cwd == "" || cwd == workspace {
		cwd = "/"
	}
	return sessionInfo{ID: s.ID, Env: env, Cwd: cwd,
		AgeSecs: int64(now.Sub(s.CreatedAt).Seconds()), IdleSecs: int64(now.Sub(s.LastUsedAt).Seconds())}
}

var errNoSession = &textError{status: http.StatusNotFound}

// newSession makes a native session; owned ones are listed by GET
// /sessions.
func (h *handler) newSession(ctx context.Context, hdr http.Header, body map[string]any, owned bool) (string, error) {
	var s nativeSession
	if _, err := h.n.Call(ctx, http.MethodPost, "/v1/sessions", hdr, body, &s); err != nil {
		return "", nativeError(ctx, hdr, err, nil)
	}
	if owned {
		h.mu.Lock()
		if len(h.owned) >= maxTracked {
			// Forget one at random: it still works, it is only not listed.
			for k := range h.owned {
				delete(h.owned, k)
				break
			}
		}
		h.owned[s.ID] = s.Owner
		h.mu.Unlock()
	}
	return s.ID, nil
}

// createSession answers POST /sessions {env}.
func (h *handler) createSession(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request) (any, error) {
	var q struct {
		Env map[string]string `json:"env"`
	}
	if err := h.decode(ctx, hdr, w, r, &q); err != nil {
		return nil, err
	}
	body := map[string]any{}
	if len(q.Env) > 0 {
		body["env"] = q.Env
	}
	id, err := h.newSession(ctx, hdr, body, true)
	if err != nil {
		return nil, err
	}
	return map[string]string{"session_id": id}, nil
}

// listSessions answers GET /sessions: the native sessions made here.
func (h *handler) listSessions(ctx context.Context, hdr http.Header) (any, error) {
	var list struct {
		Sessions []nativeSession `json:"sessions"`
	}
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/sessions", hdr, nil, &list); err != nil {
		return nil, failure(ctx, hdr, err)
	}
	now := time.Now()
	out := []sessionInfo{}
	live := map[string]bool{}
	owner, seen := "", false
	h.mu.Lock()
	for _, s := range list.Sessions {
		owner, seen = s.Owner, true // the native list is one owner's (one API key's)
		if _, ok := h.owned[s.ID]; ok {
			live[s.ID] = true
			out = append(out, s.info(now))
		}
	}
	// Sessions of this owner that ended (idle, deleted natively) are
	// forgotten; another key's are not in this list, and stay.
	for id, o := range h.owned {
		if seen && o == owner && !live[id] {
			delete(h.owned, id)
		}
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b sessionInfo) int { return int(b.AgeSecs - a.AgeSecs) })
	return out, nil
}

// getSession answers GET /sessions/:id.
func (h *handler) getSession(ctx context.Context, hdr http.Header, id string) (any, error) {
	var s nativeSession
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), hdr, nil, &s); err != nil {
		return nil, nativeError(ctx, hdr, err, errNoSession)
	}
	return s.info(time.Now()), nil
}

// deleteSession answers DELETE /sessions/:id: 204.
func (h *handler) deleteSession(ctx context.Context, hdr http.Header, w http.ResponseWriter, id string) (any, error) {
	if _, err := h.n.Call(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), hdr, nil, nil); err != nil {
		return nil, nativeError(ctx, hdr, err, errNoSession)
	}
	h.mu.Lock()
	delete(h.owned, id)
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return nil, errWritten
}

// errWritten: the answer is written already.
var errWritten = errors.New("answer written")

// sessionRun answers POST /sessions/:id/run: the request's env overlays
// the session's for this command; its cwd applies unless it is "/".
func (h *handler) sessionRun(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request, id string) (any, error) {
	var q runRequest
	if err := h.decode(ctx, hdr, w, r, &q); err != nil {
		return nil, err
	}
	in, err := h.nativeInfo(ctx, hdr)
	if err != nil {
		return nil, err
	}
	l, err := q.check(in)
	if err != nil {
		return nil, err
	}
	return h.command(ctx, hdr, id, &q, l)
}

// setEnv answers POST /sessions/:id/env {env}: merged into the session's.
func (h *handler) setEnv(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request, id string) (any, error) {
	var q struct {
		Env *map[string]string `json:"env"`
	}
	if err := h.decode(ctx, hdr, w, r, &q); err != nil {
		return nil, err
	}
	if q.Env == nil {
		return nil, unprocessable("missing field `env`")
	}
	return nil, h.patch(ctx, hdr, id, map[string]any{"env": *q.Env})
}

// setCwd answers POST /sessions/:id/cwd {cwd}; "/" is the workspace.
func (h *handler) setCwd(ctx context.Context, hdr http.Header, w http.ResponseWriter, r *http.Request, id string) (any, error) {
	var q struct {
		Cwd *string `json:"cwd"`
	}
	if err := h.decode(ctx, hdr, w, r, &q); err != nil {
		return nil, err
	}
	if q.Cwd == nil {
		return nil, unprocessable("missing field `cwd`")
	}
	cwd := *q.Cwd
	if cwd == "/" || cwd == "" {
		cwd = workspace
	}
	return nil, h.patch(ctx, hdr, id, map[string]any{"cwd": cwd})
}

func (h *handler) patch(ctx context.Context, hdr http.Header, id string, body map[string]any) error {
	if _, err := h.n.Call(ctx, http.MethodPatch, "/v1/sessions/"+url.PathEscape(id), hdr, body, nil); err != nil {
		return nativeError(ctx, hdr, err, errNoSession)
	}
	return nil
}
