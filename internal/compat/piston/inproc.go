package piston

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// InProcess opens native run streams by serving h, the native API's
// handler, over an in-memory connection: no socket, no address, and no
// second execution path — the native streaming run (validation, the
// memory budget, the queue, the runner) does everything, exactly as for
// a client of /v1/run/stream.
//
// compat.Native calls the native API through a recorder, which cannot be
// hijacked, so it cannot carry a WebSocket. Here each stream gets a
// net.Pipe: one end is handed to an http.Server (serving h) by a listener
// that accepts it once; the other is the only connection an http.Client
// may dial, and websocket.Dial upgrades it. When the stream is closed the
// server is closed too. h should be the native API's whole handler (with
// request ids and request logs), not its mux.
//
// readLimit bounds one message from the native side. The last one ("done")
// carries the run's output again as JSON: give it the native
// max_response times 6 (a NUL byte is written as \u0000) and some room.
func InProcess(h http.Handler, readLimit int64) Stream {
	return func(ctx context.Context, header http.Header, body []byte) (StreamConn, error) {
		server, client := net.Pipe()
		ln := newOneShot(server)
		srv := &http.Server{
			Handler: h,
			// The native handler takes the connection over at once (it
			// is a WebSocket upgrade); these only bound a handshake that
			// never comes.
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
			// The native request is the adapter's client's: it carries
			// its context (who called, already authenticated; its end).
			BaseContext: func(net.Listener) context.Context { return ctx },
		}
		go func() { _ = srv.Serve(ln) }()
		var dialed sync.Once
		hc := &http.Client{Transport: &http.Transport{
			DialContext: func(context.Context, string, string) (net.Conn, error) {
				var c net.Conn
				dialed.Do(func() { c = client })
				if c == nil {
					return nil, errors.New("the in-process connection was used already")
				}
				return c, nil
			},
		}}
		done := func() {
			_ = srv.Close()
			_ = client.Close()
		}
		return dialStream(ctx, hc, "ws://runbox.in-process/v1/run/stream", header, body, readLimit, done)
	}
}

// oneShot is a listener that accepts one connection, then nothing until
// it is closed.
type oneShot struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newOneShot(c net.Conn) *oneShot {
	l := &oneShot{conns: make(chan net.Conn, 1), closed: make(chan struct{})}
	l.conns <- c
	return l
}

func (l *oneShot) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *oneShot) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneShot) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "in-process" }
