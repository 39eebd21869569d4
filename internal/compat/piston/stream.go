package piston

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/runbox-dev/runbox/internal/compat"
)

// Stream opens a native streaming run (GET /v1/run/stream) whose first
// message is body, a /v1/run body; header adds request headers (the
// X-Request-Id that ties the native log line to the Piston one). The
// connect route needs one: InProcess makes it.
type Stream func(ctx context.Context, header http.Header, body []byte) (StreamConn, error)

// StreamConn is an open native run stream: the little the connect route
// needs of it. (The native run stream has no message for a signal, so
// neither has this; see connect.go.)
type StreamConn interface {
	// Next returns the next message of the native API. After "done" or a
	// fatal "error" the native side closes and Next returns an error.
	Next(ctx context.Context) (Event, error)
	// Stdin writes to the program's standard input. It blocks while the
	// native side does not read: that is the back-pressure of stdin.
	Stdin(ctx context.Context, p []byte) error
	// Signal sends the program running now a signal, by name (SIGINT).
	Signal(ctx context.Context, name string) error
	// Close ends the stream; a run still going is cancelled.
	Close() error
}

// Event is one message of the native run stream (WSOut in the native
// API): "stage" (Stage is compile or run), "stdout" and "stderr" (Data),
// "done" (Response, the /v1/run answer) or "error" (Error).
type Event struct {
	Type     string
	Stage    string
	Data     []byte
	Response json.RawMessage
	Error    *compat.Problem
}

// wsStream is a StreamConn over a native run stream's WebSocket.
type wsStream struct {
	c    *websocket.Conn
	done func() // releases what carries the socket, after it is closed
}

var _ StreamConn = (*wsStream)(nil)

// dialStream opens a native run stream at url with client, sends body and
// bounds each native message to readLimit bytes. done, when set, is
// called once the stream is closed.
func dialStream(ctx context.Context, client *http.Client, url string, header http.Header, body []byte, readLimit int64, done func()) (StreamConn, error) {
	if done == nil {
		done = func() {}
	}
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client, HTTPHeader: header})
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		done()
		return nil, fmt.Errorf("open the native run stream: %w", err)
	}
	c.SetReadLimit(readLimit)
	s := &wsStream{c: c, done: done}
	if err := c.Write(ctx, websocket.MessageText, body); err != nil {
		s.Close()
		return nil, fmt.Errorf("send the run to the native run stream: %w", err)
	}
	return s, nil
}

// wsOut is the part of the native API's WSOut that a run stream sends.
type wsOut struct {
	Type       string          `json:"type"`
	Data       *string         `json:"data"`
	DataBase64 string          `json:"data_base64"`
	Stage      string          `json:"stage"`
	Response   json.RawMessage `json:"response"`
	Error      *compat.Problem `json:"error"`
}

func (s *wsStream) Next(ctx context.Context) (Event, error) {
	_, b, err := s.c.Read(ctx)
	if err != nil {
		return Event{}, err
	}
	var m wsOut
	if err := json.Unmarshal(b, &m); err != nil {
		return Event{}, fmt.Errorf("decode a native run stream message: %w", err)
	}
	ev := Event{Type: m.Type, Stage: m.Stage, Response: m.Response, Error: m.Error}
	switch {
	case m.Data != nil:
		ev.Data = []byte(*m.Data)
	case m.DataBase64 != "":
		if ev.Data, err = base64.StdEncoding.DecodeString(m.DataBase64); err != nil {
			return Event{}, fmt.Errorf("decode a native run stream message: %w", err)
		}
	}
	return ev, nil
}

func (s *wsStream) Signal(ctx context.Context, name string) error {
	b, err := json.Marshal(map[string]string{"type": "signal", "signal": name})
	if err != nil {
		return err
	}
	return s.c.Write(ctx, websocket.MessageText, b)
}

func (s *wsStream) Stdin(ctx context.Context, p []byte) error {
	m := map[string]string{"type": "stdin"}
	if utf8.Valid(p) {
		m["data"] = string(p)
	} else {
		m["data_base64"] = base64.StdEncoding.EncodeToString(p)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.c.Write(ctx, websocket.MessageText, b)
}

func (s *wsStream) Close() error {
	err := s.c.CloseNow()
	s.done()
	return err
}
