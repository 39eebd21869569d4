package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// Stream is a WebSocket of the server: a run stream (RunStream) or a
// session's command (Attach, AttachTo). Read its events with Next (or Wait)
// from one goroutine; Stdin, CloseStdin, Resize and Signal may be called
// from others meanwhile.
type Stream struct {
	c *websocket.Conn
	// mu serialises writes: one message at a time on the socket.
	mu sync.Mutex
	// last is the last error event, returned when the socket then closes.
	last *Error
}

// Event is one message of the server on a Stream.
type Event struct {
	Type      string       // EventStarted, EventStdout, …
	CommandID string       // started, exit
	Data      []byte       // stdout, stderr: the bytes, exactly
	Stage     string       // stage: "compile", "run" or "case"
	Index     int          // stage "case": the case's index
	Result    *Result      // exit: the command's result
	Response  *RunResponse // done: the run's answer
	Err       *Error       // error: what went wrong
}

// Event types.
const (
	EventStarted = "started" // a session's command started (Attach)
	EventStdout  = "stdout"
	EventStderr  = "stderr"
	EventStage   = "stage" // a run stream's next box
	EventExit    = "exit"  // a session's command ended (the last event)
	EventDone    = "done"  // a run ended (the last event)
	EventError   = "error" // a refusal; the socket may go on, or close
)

// StartRequest starts a command on a session's socket.
type StartRequest struct {
	Command []string          `json:"command,omitempty"`
	Shell   string            `json:"shell,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	Limits  *CommandLimits    `json:"limits,omitempty"`
	// PTY, when set, makes the command's stdin, stdout and stderr a
	// pseudo-terminal of this size.
	PTY *PTYSize `json:"pty,omitempty"`
}

// PTYSize is a terminal's size, 1 to 1000 each.
type PTYSize struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}

// RunStream runs a program with its output arriving as it is written, and
// stdin sent as the program runs: GET /v1/run/stream. The events are
// stage, stdout and stderr, and last done with the answer.
func (c *Client) RunStream(ctx context.Context, req RunRequest) (*Stream, error) {
	s, err := c.dial(ctx, "/v1/run/stream")
	if err != nil {
		return nil, err
	}
	if err := s.send(ctx, req); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Attach starts a command in a session over a WebSocket: GET
// /v1/sessions/{id}/attach. The events are started, stdout and stderr,
// and last exit with the result. The command runs in the background: it
// goes on if the socket closes (attach to it again with AttachTo).
func (c *Client) Attach(ctx context.Context, id string, req StartRequest) (*Stream, error) {
	msg := struct {
		Type string `json:"type"`
		StartRequest
	}{"start", req}
	return c.attach(ctx, id, msg)
}

// AttachTo follows a running or recent command of a session: its output
// from the start, then as it comes, then its result.
func (c *Client) AttachTo(ctx context.Context, id, commandID string) (*Stream, error) {
	msg := struct {
		Type      string `json:"type"`
		CommandID string `json:"command_id"`
	}{"attach", commandID}
	return c.attach(ctx, id, msg)
}

func (c *Client) attach(ctx context.Context, id string, first any) (*Stream, error) {
	s, err := c.dial(ctx, pathOf("sessions", id, "attach"))
	if err != nil {
		return nil, err
	}
	if err := s.send(ctx, first); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dial opens a socket on path. A refused upgrade is an *Error.
func (c *Client) dial(ctx context.Context, path string) (*Stream, error) {
	u := c.endpoint(path, nil)
	u = "ws" + strings.TrimPrefix(u, "http") // http→ws, https→wss
	h := http.Header{}
	c.header(h)
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.hc, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			// The library has kept the first KiB of the body: the problem.
			return nil, readError(resp)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	conn.SetReadLimit(maxMessageBytes)
	return &Stream{c: conn}, nil
}

func (s *Stream) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.c.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send message: %w", err)
	}
	return nil
}

// Stdin sends b to the program's standard input (split into messages the
// server takes).
func (s *Stream) Stdin(ctx context.Context, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), stdinChunkBytes)
		chunk := b[:n]
		var err error
		if utf8.Valid(chunk) {
			str := string(chunk)
			err = s.send(ctx, struct {
				Type string  `json:"type"`
				Data *string `json:"data"`
			}{"stdin", &str})
		} else {
			err = s.send(ctx, struct {
				Type       string `json:"type"`
				DataBase64 string `json:"data_base64"`
			}{"stdin", base64.StdEncoding.EncodeToString(chunk)})
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// stdinChunkBytes bounds the data of one stdin message (a session's socket
// takes messages up to 1 MiB, base64 and JSON included).
const stdinChunkBytes = 256 << 10

// CloseStdin ends the program's standard input.
func (s *Stream) CloseStdin(ctx context.Context) error {
	return s.send(ctx, struct {
		Type string `json:"type"`
	}{"close_stdin"})
}

// Resize changes the size of a command's terminal (a session's socket).
func (s *Stream) Resize(ctx context.Context, rows, cols int) error {
	return s.send(ctx, struct {
		Type string `json:"type"`
		Rows int    `json:"rows"`
		Cols int    `json:"cols"`
	}{"resize", rows, cols})
}

// Signal sends a signal ("SIGINT", …) to the command (a session's socket).
func (s *Stream) Signal(ctx context.Context, signal string) error {
	return s.send(ctx, struct {
		Type   string `json:"type"`
		Signal string `json:"signal"`
	}{"signal", signal})
}

// Next returns the next event. After the last one (exit or done) and the
// server's normal close it returns io.EOF; a socket closed after an error
// event returns that *Error.
func (s *Stream) Next(ctx context.Context) (*Event, error) {
	typ, b, err := s.c.Read(ctx)
	if err != nil {
		if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
			return nil, io.EOF
		}
		if s.last != nil && websocket.CloseStatus(err) != -1 {
			return nil, s.last
		}
		return nil, fmt.Errorf("read message: %w", err)
	}
	if typ != websocket.MessageText {
		return nil, errors.New("read message: not JSON text")
	}
	var m struct {
		Type       string       `json:"type"`
		CommandID  string       `json:"command_id"`
		Data       *string      `json:"data"`
		DataBase64 string       `json:"data_base64"`
		Stage      string       `json:"stage"`
		Index      *int         `json:"index"`
		Result     *Result      `json:"result"`
		Response   *RunResponse `json:"response"`
		Error      *Error       `json:"error"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	ev := &Event{Type: m.Type, CommandID: m.CommandID, Stage: m.Stage, Result: m.Result, Response: m.Response, Err: m.Error}
	if m.Index != nil {
		ev.Index = *m.Index
	}
	switch {
	case m.DataBase64 != "":
		if ev.Data, err = base64.StdEncoding.DecodeString(m.DataBase64); err != nil {
			return nil, fmt.Errorf("decode message: data_base64: %w", err)
		}
	case m.Data != nil:
		ev.Data = []byte(*m.Data)
	}
	if ev.Err != nil {
		s.last = ev.Err
	}
	return ev, nil
}

// Wait reads events until the last one, writing stdout and stderr as they
// come (either may be nil), and returns that last event (exit or done).
// A stream that ends otherwise is an error: the server's *Error when it
// sent one.
func (s *Stream) Wait(ctx context.Context, stdout, stderr io.Writer) (*Event, error) {
	for {
		ev, err := s.Next(ctx)
		if err == io.EOF {
			if s.last != nil {
				return nil, s.last
			}
			return nil, errors.New("stream closed before its end")
		}
		if err != nil {
			return nil, err
		}
		var w io.Writer
		switch ev.Type {
		case EventStdout:
			w = stdout
		case EventStderr:
			w = stderr
		case EventExit, EventDone:
			return ev, nil
		}
		if w != nil {
			if _, err := w.Write(ev.Data); err != nil {
				return nil, fmt.Errorf("write output: %w", err)
			}
		}
	}
}

// Close closes the socket. A session's command started on it goes on.
func (s *Stream) Close() error {
	return s.c.CloseNow()
}
