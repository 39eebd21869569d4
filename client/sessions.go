package client

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// CreateSession opens a session: a box that lives across commands.
func (c *Client) CreateSession(ctx context.Context, req SessionRequest) (*Session, error) {
	var out Session
	if _, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/sessions", json: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Sessions lists the server's sessions.
func (c *Client) Sessions(ctx context.Context) ([]Session, error) {
	var out struct {
		Sessions []Session `json:"sessions"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/sessions"}, &out); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

// Session describes session id.
func (c *Client) Session(ctx context.Context, id string) (*Session, error) {
	var out Session
	if _, err := c.call(ctx, request{method: http.MethodGet, path: pathOf("sessions", id)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateSession changes a session's environment, working directory or
// idle timeout.
func (c *Client) UpdateSession(ctx context.Context, id string, u SessionUpdate) (*Session, error) {
	var out Session
	if _, err := c.call(ctx, request{method: http.MethodPatch, path: pathOf("sessions", id), json: u}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteSession ends a session; every process in it dies.
func (c *Client) DeleteSession(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: pathOf("sessions", id)}, nil)
	return err
}

// RunCommand runs a command in a session and returns its result when it
// ends. The command dies if ctx ends first.
func (c *Client) RunCommand(ctx context.Context, id string, req CommandRequest) (*Result, error) {
	var out Result
	if _, err := c.call(ctx, request{method: http.MethodPost, path: pathOf("sessions", id, "commands"), json: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartCommand starts a background command in a session and returns its
// id at once; follow it with Command, or Attach to it.
func (c *Client) StartCommand(ctx context.Context, id string, req CommandRequest) (*CommandStarted, error) {
	body := struct {
		CommandRequest
		Background bool `json:"background"`
	}{req, true}
	var out CommandStarted
	if _, err := c.call(ctx, request{method: http.MethodPost, path: pathOf("sessions", id, "commands"), json: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Commands lists a session's running and recent commands.
func (c *Client) Commands(ctx context.Context, id string) ([]Command, error) {
	var out struct {
		Commands []Command `json:"commands"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: pathOf("sessions", id, "commands")}, &out); err != nil {
		return nil, err
	}
	return out.Commands, nil
}

// Command describes a session's command: its output so far while it runs,
// its result when done.
func (c *Client) Command(ctx context.Context, id, commandID string) (*Command, error) {
	var out Command
	if _, err := c.call(ctx, request{method: http.MethodGet, path: pathOf("sessions", id, "commands", commandID)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SignalCommand sends a signal ("SIGTERM", "SIGKILL", …) to a running
// command.
func (c *Client) SignalCommand(ctx context.Context, id, commandID, signal string) error {
	body := struct {
		Signal string `json:"signal"`
	}{signal}
	_, err := c.call(ctx, request{method: http.MethodPost, path: pathOf("sessions", id, "commands", commandID, "signal"), json: body}, nil)
	return err
}

// RunInSession writes req's files into the session's /box, compiles there
// when the language compiles, and runs the program: POST
// /v1/sessions/{id}/run. Outputs is refused (the files stay in the
// session).
func (c *Client) RunInSession(ctx context.Context, id string, req RunRequest) (*RunResponse, error) {
	var out RunResponse
	if _, err := c.call(ctx, request{method: http.MethodPost, path: pathOf("sessions", id, "run"), json: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// filePath is the URL path of a session's file: the box path, absolute
// (/box/src/main.py or /tmp/x), without its leading slash, each element
// escaped.
func filePath(id, boxPath string) (string, error) {
	p := strings.TrimPrefix(boxPath, "/")
	if p != "box" && p != "tmp" && !strings.HasPrefix(p, "box/") && !strings.HasPrefix(p, "tmp/") {
		return "", fmt.Errorf("session file %q: a path below /box or /tmp", boxPath)
	}
	elems := strings.Split(p, "/")
	for i, e := range elems {
		elems[i] = url.PathEscape(e)
	}
	return pathOf("sessions", id, "files") + "/" + strings.Join(elems, "/"), nil
}

// PutFile writes data to boxPath (below /box or /tmp) in a session,
// making missing directories; mode 0 is 0644.
func (c *Client) PutFile(ctx context.Context, id, boxPath string, data []byte, mode fs.FileMode) error {
	p, err := filePath(id, boxPath)
	if err != nil {
		return err
	}
	var q url.Values
	if mode != 0 {
		q = url.Values{"mode": {strconv.FormatUint(uint64(mode.Perm()), 8)}}
	}
	_, err = c.call(ctx, request{method: http.MethodPut, path: p, query: q, raw: bytes.NewReader(data)}, nil)
	return err
}

// GetFile reads a regular file of a session.
func (c *Client) GetFile(ctx context.Context, id, boxPath string) ([]byte, error) {
	p, err := filePath(id, boxPath)
	if err != nil {
		return nil, err
	}
	return c.callRaw(ctx, request{method: http.MethodGet, path: p})
}

// DeleteFile removes a file, a symlink or an empty directory of a session.
func (c *Client) DeleteFile(ctx context.Context, id, boxPath string) error {
	p, err := filePath(id, boxPath)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, request{method: http.MethodDelete, path: p}, nil)
	return err
}

// ListFiles lists a directory of a session ("" is /box).
func (c *Client) ListFiles(ctx context.Context, id, dir string) (*FileList, error) {
	var q url.Values
	if dir != "" {
		q = url.Values{"path": {dir}}
	}
	var out FileList
	if _, err := c.call(ctx, request{method: http.MethodGet, path: pathOf("sessions", id, "files"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
