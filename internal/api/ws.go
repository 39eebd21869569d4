package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"

	"github.com/runbox-dev/runbox/internal/result"
	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/session"
)

// Live I/O over WebSocket (coder/websocket): GET /v1/sessions/{id}/attach
// and GET /v1/run/stream. Messages are JSON text, one object each, with a
// type (see WSIn and WSOut).
//
// Back-pressure: the server never buffers more than a command's own
// output limit. A command's output is kept in its log (bounded by its
// output_bytes per stream; one more byte kills it with output_limit) and
// each socket is a reader of that log at its own pace; a run stream's
// output is bounded the same way, per box, and counted in the memory
// budget before the run. A client that stops reading therefore slows
// nobody: its program runs on until its output limit; a write that takes
// longer than write_timeout closes the socket.

// WSIn is a message from the client.
type WSIn struct {
	Type string `json:"type" enum:"start,attach,stdin,close_stdin,resize,signal"`
	// start
	Command []string          `json:"command,omitempty"`
	Shell   string            `json:"shell,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	Limits  *CommandLimitsIn  `json:"limits,omitempty"`
	PTY     *PTYIn            `json:"pty,omitempty"`
	// MergeOutput: stderr is stdout's descriptor (no effect with a pty).
	MergeOutput bool `json:"merge_output,omitempty"`
	// attach
	CommandID string `json:"command_id,omitempty"`
	// stdin
	Data       *string `json:"data,omitempty"`
	DataBase64 string  `json:"data_base64,omitempty"`
	// resize
	Rows int `json:"rows,omitempty"`
	Cols int `json:"cols,omitempty"`
	// signal
	Signal string `json:"signal,omitempty"`
}

// WSOut is a message from the server.
type WSOut struct {
	Type       string          `json:"type" enum:"started,stdout,stderr,stage,exit,done,error"`
	CommandID  string          `json:"command_id,omitempty"`
	Data       *string         `json:"data,omitempty"`
	DataBase64 string          `json:"data_base64,omitempty"`
	Stage      string          `json:"stage,omitempty"`
	Index      *int            `json:"index,omitempty"`
	Result     *result.Result  `json:"result,omitempty"`
	Response   json.RawMessage `json:"response,omitempty"`
	Error      *Problem        `json:"error,omitempty"`
}

// Bounds of the sockets.
const (
	// wsMessageBytes bounds a client message on an attach socket.
	wsMessageBytes = 1 << 20
	// wsChunkBytes bounds the data of one output message.
	wsChunkBytes = 64 << 10
)

func (s *Server) registerStreams(api huma.API) {
	s.hapi = api
	s.mux.HandleFunc("GET /v1/sessions/{id}/attach", s.attach)
	s.mux.HandleFunc("GET /v1/run/stream", s.runStream)
	oa := api.OpenAPI()
	msgs := func(in, out string) string {
		return "WebSocket (JSON text messages with a type). From the client: " + in + ". From the server: " + out + ". See the README for each message."
	}
	upgrade := map[string]*huma.Response{"101": {Description: "Switching to WebSocket."}}
	_ = oa.Components.Schemas.Schema(reflect.TypeOf(WSIn{}), true, "WSIn")
	_ = oa.Components.Schemas.Schema(reflect.TypeOf(WSOut{}), true, "WSOut")
	oa.AddOperation(&huma.Operation{OperationID: "attach", Method: http.MethodGet, Path: "/v1/sessions/{id}/attach",
		Summary:     "Start a command in a session (optionally with a PTY), or attach to a running one, over a WebSocket",
		Description: msgs("start or attach first; then stdin, close_stdin, resize, signal", "started, stdout, stderr, exit (the result), error"),
		Parameters:  []*huma.Param{{Name: "id", In: "path", Required: true, Schema: &huma.Schema{Type: "string"}}},
		Responses:   upgrade})
	oa.AddOperation(&huma.Operation{OperationID: "run-stream", Method: http.MethodGet, Path: "/v1/run/stream",
		Summary:     "Run a program with live output and input over a WebSocket",
		Description: msgs("a /v1/run body first (no type field needed); then stdin, close_stdin", "stage, stdout, stderr, done (the /v1/run response), error"),
		Responses:   upgrade})
}

// accept upgrades a request. The HTTP server's read and write deadlines
// end here: a socket lives as long as what it carries.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, limit int64) (*websocket.Conn, bool) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{})
	if err != nil {
		s.log.Info("websocket refused", "request_id", requestID(r.Context()), "err", err)
		return nil, false
	}
	c.SetReadLimit(limit)
	return c, true
}

// socket is one WebSocket with serialised, deadline-bound writes.
type socket struct {
	c       *websocket.Conn
	timeout time.Duration
	mu      sync.Mutex
}

func (k *socket) send(ctx context.Context, m WSOut) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	return k.c.Write(ctx, websocket.MessageText, b)
}

// sendData sends output, split into messages of at most wsChunkBytes.
func (k *socket) sendData(ctx context.Context, stream string, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), wsChunkBytes)
		m := WSOut{Type: stream}
		if chunk := b[:n]; utf8.Valid(chunk) {
			str := string(chunk)
			m.Data = &str
		} else {
			m.DataBase64 = base64.StdEncoding.EncodeToString(chunk)
		}
		if err := k.send(ctx, m); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// fail sends an error message and closes the socket.
func (k *socket) fail(ctx context.Context, err error, code websocket.StatusCode) {
	var p *Problem
	if !errors.As(err, &p) {
		p = problem(ctx, http.StatusInternalServerError, "runbox failed", "", "internal error").(*Problem)
	}
	_ = k.send(ctx, WSOut{Type: "error", Error: p})
	_ = k.c.Close(code, truncateReason(p.Detail))
}

// closeCode is the close code for a problem: the client's fault (4xx) is
// a policy violation, runbox's an internal error.
func closeCode(err error) websocket.StatusCode {
	var p *Problem
	if errors.As(err, &p) && p.Status >= 400 && p.Status < 500 {
		return websocket.StatusPolicyViolation
	}
	return websocket.StatusInternalError
}

// warn sends an error message; the socket goes on.
func (k *socket) warn(ctx context.Context, err error) {
	var p *Problem
	if !errors.As(err, &p) {
		p = problem(ctx, http.StatusUnprocessableEntity, err.Error(), "", err.Error()).(*Problem)
	}
	_ = k.send(ctx, WSOut{Type: "error", Error: p})
}

// truncateReason keeps a close reason within the 123 bytes a close frame
// carries.
func truncateReason(s string) string {
	for len(s) > 120 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// errBadMessage marks a client message that arrived whole but is not a
// valid one: the socket goes on.
var errBadMessage = errors.New("bad message")

// readJSON reads one message of the client into v.
func readJSON(ctx context.Context, c *websocket.Conn, v any) ([]byte, error) {
	typ, b, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return b, fmt.Errorf("%w: messages are JSON text", errBadMessage)
	}
	return b, decodeMessage(b, v)
}

// decodeMessage decodes one client message: one JSON object, no unknown
// field, nothing after it.
func decodeMessage(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: not a valid message: %v", errBadMessage, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: one JSON object per message", errBadMessage)
	}
	return nil
}

func stdinBytes(m WSIn) ([]byte, error) {
	switch {
	case m.Data != nil && m.DataBase64 != "":
		return nil, errors.New("stdin: data or data_base64, not both")
	case m.Data != nil:
		return []byte(*m.Data), nil
	default:
		b, err := base64.StdEncoding.DecodeString(m.DataBase64)
		if err != nil {
			return nil, errors.New("stdin: data_base64 is not valid base64")
		}
		return b, nil
	}
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ss, err := s.session(ctx, r.PathValue("id"))
	if err != nil {
		writeProblem(w, err.(*Problem))
		return
	}
	c, ok := s.accept(w, r, wsMessageBytes)
	if !ok {
		return
	}
	defer c.CloseNow()
	k := &socket{c: c, timeout: s.cfg.WriteTimeout}
	first := WSIn{}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.ReadTimeout)
	_, err = readJSON(fctx, c, &first)
	cancel()
	if err != nil {
		k.fail(ctx, invalid(ctx, "message", err.Error()), websocket.StatusPolicyViolation)
		return
	}
	var cmd *session.Command
	switch first.Type {
	case "start":
		spec, err := s.commandSpec(ctx, "message", first.Command, first.Shell, first.Env, first.Cwd, first.Limits)
		if err != nil {
			k.fail(ctx, err, websocket.StatusPolicyViolation)
			return
		}
		spec.MergeOutput = first.MergeOutput
		if first.PTY != nil {
			if first.PTY.Rows < 1 || first.PTY.Rows > 1000 || first.PTY.Cols < 1 || first.PTY.Cols > 1000 {
				k.fail(ctx, invalid(ctx, "message.pty", "rows and cols from 1 to 1000"), websocket.StatusPolicyViolation)
				return
			}
			spec.TTY = &runner.TTY{Rows: uint16(first.PTY.Rows), Cols: uint16(first.PTY.Cols)}
			if spec.Limits.WallTime == 0 {
				// A terminal is for a person: it lives as long as a
				// command may (command_max_wall_time), unless asked.
				spec.Limits.WallTime = max(s.cfg.Maxima.WallTime, s.cfg.CommandMaxWallTime)
				if c := keyCeiling(ctx).WallTime; c > 0 {
					spec.Limits.WallTime = min(spec.Limits.WallTime, c)
				}
			}
		}
		done, err := s.takeBox(ctx)
		if err != nil {
			k.fail(ctx, err, websocket.StatusTryAgainLater)
			return
		}
		// It lives on if the socket goes: attach to it again.
		spec.OpenStdin, spec.Background = true, true
		if cmd, err = ss.Start(ctx, spec); err != nil {
			done(0)
			k.fail(ctx, s.sessionError(ctx, err), websocket.StatusTryAgainLater)
			return
		}
		go func(cmd *session.Command) {
			<-cmd.Done()
			res, _ := cmd.Result()
			done(cpuOf(res))
		}(cmd)
	case "attach":
		if cmd, err = ss.Command(first.CommandID); err != nil {
			k.fail(ctx, s.sessionError(ctx, err), websocket.StatusPolicyViolation)
			return
		}
	default:
		k.fail(ctx, invalid(ctx, "message.type", "the first message is start or attach"), websocket.StatusPolicyViolation)
		return
	}
	if err := k.send(ctx, WSOut{Type: "started", CommandID: cmd.ID}); err != nil {
		return
	}
	// The client's messages, until it goes or the command's result is out.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer stop()
		for {
			var m WSIn
			if _, err := readJSON(rctx, c, &m); err != nil {
				if errors.Is(err, errBadMessage) && rctx.Err() == nil {
					k.warn(rctx, invalid(rctx, "message", err.Error()))
					continue
				}
				return
			}
			if err := s.control(rctx, cmd, m); err != nil {
				k.warn(rctx, err)
			}
		}
	}()
	s.follow(rctx, k, cmd)
}

// control applies one client message to a command.
func (s *Server) control(ctx context.Context, cmd *session.Command, m WSIn) error {
	switch m.Type {
	case "stdin":
		b, err := stdinBytes(m)
		if err != nil {
			return invalid(ctx, "message.data", err.Error())
		}
		if err := cmd.WriteStdin(ctx, b); err != nil {
			if errors.Is(err, session.ErrStdinClosed) || errors.Is(err, runner.ErrCommandEnded) {
				return problem(ctx, http.StatusConflict, "stdin is closed", "message", err.Error())
			}
			return err
		}
	case "close_stdin":
		_ = cmd.CloseStdin()
	case "resize":
		if m.Rows < 1 || m.Rows > 1000 || m.Cols < 1 || m.Cols > 1000 {
			return invalid(ctx, "message.rows", "rows and cols from 1 to 1000")
		}
		if err := cmd.Resize(uint16(m.Rows), uint16(m.Cols)); err != nil {
			return problem(ctx, http.StatusConflict, "cannot resize", "message", err.Error())
		}
	case "signal":
		sig, ok := signals[m.Signal]
		if !ok {
			return invalid(ctx, "message.signal", signalRule)
		}
		if err := cmd.Signal(sig); err != nil {
			return problem(ctx, http.StatusConflict, "cannot signal", "message", err.Error())
		}
	default:
		return invalid(ctx, "message.type", "stdin, close_stdin, resize or signal")
	}
	return nil
}

// follow sends a command's output from its start, then its result.
func (s *Server) follow(ctx context.Context, k *socket, cmd *session.Command) {
	pos := 0
	for {
		chunks, next, changed := cmd.Output(pos)
		pos = next
		for _, ch := range chunks {
			if err := k.sendData(ctx, ch.Stream, ch.Data); err != nil {
				return
			}
		}
		if len(chunks) > 0 {
			continue
		}
		select {
		case <-cmd.Done():
			if chunks, _, _ := cmd.Output(pos); len(chunks) > 0 {
				continue
			}
			res, _ := cmd.Result()
			r := result.From(*res)
			if k.send(ctx, WSOut{Type: "exit", CommandID: cmd.ID, Result: &r}) == nil {
				_ = k.c.Close(websocket.StatusNormalClosure, "")
			}
			return
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}
