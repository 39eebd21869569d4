package api

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/runbox-dev/runbox/internal/keys"
	"github.com/runbox-dev/runbox/internal/runner"
)

type callerKey struct{}

// keyring is who may call: with keys, every request but the public pages
// needs one and each key's quota holds; without, requests are anonymous,
// or all refused when required (a server on a public address).
type keyring struct {
	kr       *keys.Keyring
	required bool
}

// UseKeys checks requests against kr from now on. required: an empty
// keyring refuses every request instead of serving anonymous ones (the
// server listens beyond loopback and allow_anonymous is off). Call it
// before Serve.
func (s *Server) UseKeys(kr *keys.Keyring, required bool) {
	s.keys.Store(&keyring{kr: kr, required: required})
}

// callerOf is the key a request came with; nil when the server has no
// keys (every request is anonymous, its owner "").
func callerOf(ctx context.Context) *keys.Caller {
	c, _ := ctx.Value(callerKey{}).(*keys.Caller)
	return c
}

// ownerOf is the owner of what a request makes (sessions, jobs): its
// key's name, "" without keys.
func ownerOf(ctx context.Context) string {
	if c := callerOf(ctx); c != nil {
		return c.Name()
	}
	return ""
}

// inProcessKey marks a request that already passed authentication: a
// compatibility adapter's call into the native API carries its client's
// context, so it is neither asked for a key again nor charged twice.
type inProcessKey struct{}

// public are the paths served without a key: pages and documents that
// hold nothing of anybody's (the API description, the signing keys that
// verify results, the playground's files).
func public(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	switch p {
	case "/", "/docs", "/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml", "/v1/keys":
		return true
	}
	return strings.HasPrefix(p, "/ui/")
}

// secretOf finds the key a request sends: Authorization: Bearer (or the
// bare key, as some peers' clients send it), X-Auth-Token (Judge0's
// clients), X-Api-Key; and, for a WebSocket handshake only (a browser
// cannot set its headers), the access_token query parameter.
func secretOf(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if scheme, rest, ok := strings.Cut(a, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(rest)
		}
		return strings.TrimSpace(a)
	}
	for _, h := range []string{"X-Auth-Token", "X-Api-Key"} {
		if v := r.Header.Get(h); v != "" {
			return strings.TrimSpace(v)
		}
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return r.URL.Query().Get("access_token")
	}
	return ""
}

// authenticate checks a request's key and its request rate. It answers
// the request itself (401, 429) and returns false when the request goes no
// further.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	ctx := r.Context()
	k := s.keys.Load()
	if ctx.Value(inProcessKey{}) != nil || k == nil || k.kr.Empty() && !k.required || public(r) {
		return r.WithContext(context.WithValue(ctx, inProcessKey{}, true)), true
	}
	secret := secretOf(r)
	c, ok := k.kr.Authenticate(secret)
	if !ok {
		msg := "this server needs an API key: send Authorization: Bearer <key>"
		if k.kr.Empty() {
			msg = "this server has no API keys yet and serves no anonymous requests on this address: make one with runbox keys create"
		} else if secret != "" {
			msg = "the API key is not valid (revoked, or never made)"
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="runbox"`)
		p := problem(ctx, http.StatusUnauthorized, msg, "header.Authorization", "a valid API key").(*Problem)
		writeProblem(w, p)
		return r, false
	}
	st := c.AllowRequest(time.Now())
	if st.Limit > 0 {
		h := w.Header()
		h.Set("RateLimit-Limit", strconv.Itoa(st.Limit))
		h.Set("RateLimit-Remaining", strconv.Itoa(st.Remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(seconds(st.Reset)))
	}
	if !st.OK {
		p := busy(ctx, "this key's request rate is used up; retry after the time Retry-After gives")
		p.RetryAfter = seconds(st.RetryAfter)
		writeProblem(w, p)
		return r, false
	}
	ctx = context.WithValue(ctx, callerKey{}, c)
	return r.WithContext(context.WithValue(ctx, inProcessKey{}, true)), true
}

// seconds rounds d up to whole seconds, at least 1 (Retry-After and
// RateLimit-Reset are whole seconds; 0 would invite an immediate retry).
func seconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// takeBox holds one of the caller's boxes for a program about to run,
// and checks its CPU bucket. done gives the box back and charges the CPU
// time the program used.
func (s *Server) takeBox(ctx context.Context) (done func(cpu time.Duration), err error) {
	c := callerOf(ctx)
	if c == nil {
		return func(time.Duration) {}, nil
	}
	if ok, wait := c.CPUAvailable(time.Now()); !ok {
		return nil, busyAfter(ctx, "this key's CPU time per minute is used up; retry after the time Retry-After gives", seconds(wait))
	}
	if !c.TakeBox() {
		return nil, busyAfter(ctx, "this key runs as many programs at once as its quota allows; retry when one ends", retryAfter)
	}
	return func(cpu time.Duration) {
		c.ChargeCPU(time.Now(), cpu)
		c.ReleaseBox()
	}, nil
}

// waitBox is takeBox for work that can wait (a job): it waits for a box
// and CPU time of its key instead of refusing.
func (s *Server) waitBox(ctx context.Context) (done func(cpu time.Duration), err error) {
	for {
		done, err := s.takeBox(ctx)
		if err == nil {
			return done, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cpuOf is a session command's CPU time (none: 0).
func cpuOf(res *runner.Result) time.Duration {
	if res == nil {
		return 0
	}
	return res.CPUTime
}

// keyCeiling is the caller's key's maxima as limits: they cap what its
// requests ask and the defaults they get.
func keyCeiling(ctx context.Context) runner.Limits {
	c := callerOf(ctx)
	if c == nil {
		return runner.Limits{}
	}
	m := c.Quota().Maxima
	return runner.Limits{WallTime: m.WallTime, CPUTime: m.CPUTime, Memory: m.Memory, Processes: m.Processes}
}
