package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// readHeaderTimeout bounds a request's headers (read_timeout, when
// shorter, bounds them too).
const readHeaderTimeout = 10 * time.Second

// newHTTPServer is the http.Server of the API: every phase of a connection
// has a deadline, so a client that dribbles headers or a body, or that
// never reads its answer, holds its connection for a bounded time.
func (s *Server) newHTTPServer() *http.Server {
	return &http.Server{
		Handler: s.Handler(),
		// Headers and body together; the run route lifts the deadline once
		// its body is in, so that long runs still answer.
		ReadTimeout:       s.cfg.ReadTimeout,
		ReadHeaderTimeout: min(readHeaderTimeout, s.cfg.ReadTimeout),
		// Every answer; the run route sets its own, from the end of the run.
		WriteTimeout:   s.cfg.WriteTimeout,
		IdleTimeout:    s.cfg.IdleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		ConnState:      s.conns.track,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// maxHeaderBytes bounds a request's header block.
const maxHeaderBytes = 64 << 10

// Serve answers on ln until Shutdown, holding at most MaxConnections
// connections open.
func (s *Server) Serve(ln net.Listener) error {
	err := s.hs.Serve(&limitListener{Listener: ln, l: s.conns})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, and waits for the requests being served to end
// or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error { return s.hs.Shutdown(ctx) }

// connLimit holds at most max connections open. At the limit, a new
// connection closes the one that has been idle longest (a keep-alive
// connection between requests, or one that has not sent a byte yet): idle
// clients must not lock out working ones. When none is idle, Accept waits
// for a connection to close (each is bounded by the server's timeouts),
// and new clients wait in the kernel's backlog.
type connLimit struct {
	max     int
	metrics *Metrics

	mu     sync.Mutex
	cond   *sync.Cond // signalled when a connection closes or a listener does
	conns  map[*limitedConn]connInfo
	closed bool
}

type connInfo struct {
	idle  bool // new (nothing read yet) or between requests
	since time.Time
}

func newConnLimit(max int, m *Metrics) *connLimit {
	l := &connLimit{max: max, metrics: m, conns: map[*limitedConn]connInfo{}}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// track is the http.Server's ConnState hook.
func (l *connLimit) track(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, open := l.conns[lc]; !open {
		return
	}
	switch st {
	case http.StateNew, http.StateIdle:
		l.conns[lc] = connInfo{idle: true, since: time.Now()}
		l.cond.Broadcast() // an Accept waiting at the limit may take its place
	case http.StateActive, http.StateHijacked:
		l.conns[lc] = connInfo{}
	}
}

// admit waits until one more connection may be opened, closing the
// longest-idle one when that is what it takes.
func (l *connLimit) admit() error {
	l.mu.Lock()
	for {
		if l.closed {
			l.mu.Unlock()
			return net.ErrClosed
		}
		if len(l.conns) < l.max {
			l.mu.Unlock()
			return nil
		}
		var victim *limitedConn
		var oldest time.Time
		for c, info := range l.conns {
			if info.idle && (victim == nil || info.since.Before(oldest)) {
				victim, oldest = c, info.since
			}
		}
		if victim == nil {
			l.cond.Wait()
			continue
		}
		l.mu.Unlock()
		victim.Close() // removes it from conns
		l.mu.Lock()
	}
}

func (l *connLimit) add(c *limitedConn) {
	l.mu.Lock()
	l.conns[c] = connInfo{idle: true, since: time.Now()}
	n := len(l.conns)
	l.mu.Unlock()
	l.metrics.conns.Set(float64(n))
}

func (l *connLimit) remove(c *limitedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	n := len(l.conns)
	l.cond.Broadcast()
	l.mu.Unlock()
	l.metrics.conns.Set(float64(n))
}

func (l *connLimit) shut() {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// limitListener accepts connections within a connLimit.
type limitListener struct {
	net.Listener
	l    *connLimit
	once sync.Once
}

func (ln *limitListener) Accept() (net.Conn, error) {
	if err := ln.l.admit(); err != nil {
		return nil, err
	}
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: ln.l}
	ln.l.add(lc)
	return lc, nil
}

func (ln *limitListener) Close() error {
	ln.once.Do(ln.l.shut)
	return ln.Listener.Close()
}

type limitedConn struct {
	net.Conn
	l    *connLimit
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.remove(c) })
	return err
}
