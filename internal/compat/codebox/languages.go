package codebox

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// language is one entry of GET /languages: Codebox's name, the native
// environment it comes from, and which word of the version line Codebox
// keeps ("Python 3.11.4", "rustc 1.73.0 (…)", "GNU bash, version 5.2.15(1)-release …").
type language struct {
	name, environment string
	word              int
}

// languages answers GET /languages: each of Codebox's languages runbox
// has, with its version as Codebox prints it, in Codebox's order.
func (h *handler) languages(ctx context.Context, hdr http.Header) (json.RawMessage, error) {
	var envs []struct {
		Name      string `json:"name"`
		Version   string `json:"version"`
		Available bool   `json:"available"`
	}
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/environments", hdr, nil, &envs); err != nil {
		return nil, failure(ctx, hdr, err)
	}
	versions := map[string]string{}
	for _, e := range envs {
		if e.Available {
			versions[e.Name] = e.Version
		}
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	add := func(name, version string) {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		v, _ := json.Marshal(version)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	for _, l := range []language{{"python", "python", 1}, {"rust", "rust", 1}, {"sqlite3", "", 0}, {"bash", "bash", 3}} {
		line := versions[l.environment]
		if l.name == "sqlite3" {
			var err error
			if line, err = h.sqlite3Version(ctx, hdr); err != nil {
				return nil, err
			}
		}
		if line == "" {
			continue
		}
		if f := strings.Fields(line); len(f) > l.word {
			line = f[l.word]
		}
		add(l.name, line)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// sqlite3Version is the first line of `sqlite3 --version` in a box ("":
// the server has no sqlite3). runbox has no sqlite3 environment; the
// answer is kept once a box gave it, as Codebox keeps its own.
func (h *handler) sqlite3Version(ctx context.Context, hdr http.Header) (string, error) {
	h.mu.Lock()
	known := h.sqlite3
	h.mu.Unlock()
	if known != nil {
		return *known, nil
	}
	var res struct {
		Run *runResult `json:"run"`
	}
	body := map[string]any{"command": []string{"sqlite3", "--version"}}
	if _, err := h.n.Call(ctx, http.MethodPost, "/v1/run", hdr, body, &res); err != nil {
		return "", failure(ctx, hdr, err)
	}
	version := ""
	if res.Run != nil && res.Run.Status == "ok" {
		version, _, _ = strings.Cut(strings.TrimSpace(res.Run.Stdout), "\n")
	}
	h.mu.Lock()
	h.sqlite3 = &version
	h.mu.Unlock()
	return version, nil
}
