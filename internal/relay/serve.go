package relay

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/nats-io/nats.go"
)

// Tunnel ends (both sides'), open requests (the owner's side) and the
// listener that hands served tunnels to the http.Server.

type fromKey struct{}

// serveForwarded marks every request that came through a tunnel, whatever
// the peer sent, so that the owner never forwards it again.
func serveForwarded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		from, _ := req.Context().Value(fromKey{}).(string)
		req.Header.Set(ForwardedHeader, from)
		h.ServeHTTP(w, req)
	})
}

// accept serves an open request from a forwarding node.
func (r *Relay) accept(m *nats.Msg) {
	var o openMsg
	if len(m.Data) > maxOpenBytes || json.Unmarshal(m.Data, &o) != nil || !validID(o.ID) || !nodeRE.MatchString(o.From) {
		r.log.Warn("relay open refused", "reason", "malformed", "bytes", len(m.Data))
		_ = m.Respond([]byte(replyBad))
		return
	}
	remote := o.Remote
	if !remoteRE.MatchString(remote) {
		remote = o.From
	}
	c, err := r.openTunnel(o.ID, true, o.From, addr(remote))
	if err != nil {
		reply := replyBad
		switch {
		case errors.Is(err, errBusy):
			reply = replyBusy
			r.log.Warn("relay open refused", "reason", "busy", "from", o.From, "tunnels", r.lim.tunnels)
		case errors.Is(err, errClosed):
			reply = replyClosed
		default:
			r.log.Warn("relay open refused", "from", o.From, "err", err)
		}
		_ = m.Respond([]byte(reply))
		return
	}
	// The channel holds as many conns as tunnels may be open: it never
	// blocks.
	select {
	case r.ln.conns <- c:
	default:
		c.abort(errBusy, true)
		_ = m.Respond([]byte(replyBusy))
		return
	}
	// Replied after the subscription: the peer's first chunk follows the
	// reply, and NATS delivers in order what one connection sends.
	_ = m.Respond([]byte(replyOK))
}

// openTunnel makes one end of tunnel id and subscribes it: the owner's end
// (served) reads ".in" and writes ".out", the forwarding end the reverse.
func (r *Relay) openTunnel(id string, served bool, from string, remote net.Addr) (*tunnelConn, error) {
	in, out := subjectPrefix+"t."+id+".in", subjectPrefix+"t."+id+".out"
	if !served {
		in, out = out, in
	}
	c := newTunnelConn(id, r.lim, addr(r.node), remote)
	c.from = from
	c.send = func(b []byte) error { return r.nc.Publish(out, b) }
	r.mu.Lock()
	n := &r.forwarded
	if served {
		n = &r.served
	}
	switch {
	case r.closed:
		r.mu.Unlock()
		return nil, errClosed
	case *n >= r.lim.tunnels:
		r.mu.Unlock()
		return nil, errBusy
	case r.tunnels[id] != nil:
		r.mu.Unlock()
		return nil, fmt.Errorf("relay tunnel %s: already open", id)
	}
	r.tunnels[id] = c
	*n++
	r.mu.Unlock()

	var (
		subMu sync.Mutex
		sub   *nats.Subscription
		ended bool
	)
	c.done = func() {
		r.mu.Lock()
		delete(r.tunnels, id)
		*n--
		r.mu.Unlock()
		if err := c.failure(); err != nil {
			r.log.Info("relay tunnel aborted", "tunnel", id, "served", served, "peer", remote.String(), "err", err)
		}
		subMu.Lock()
		ended = true
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		subMu.Unlock()
	}
	s, err := r.nc.Subscribe(in, func(m *nats.Msg) { c.receive(m.Data) })
	if err == nil {
		// Room for a full window and its acks and heartbeats: a peer that
		// keeps to the window is never dropped as a slow consumer.
		err = s.SetPendingLimits(4*r.lim.window, 2*r.lim.window*(r.lim.chunk+headerLen))
	}
	if err != nil {
		if s != nil {
			_ = s.Unsubscribe()
		}
		c.abort(fmt.Errorf("subscribe relay tunnel %s: %w", id, err), false)
		return nil, fmt.Errorf("subscribe relay tunnel %s: %w", id, err)
	}
	subMu.Lock()
	sub = s
	if ended { // ended by a frame before sub was set
		_ = s.Unsubscribe()
	}
	subMu.Unlock()
	return c, nil
}

// validID is a tunnel id: 128 bits in hex.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// newID returns 128 random bits in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// listener hands served tunnels to the http.Server.
type listener struct {
	conns    chan net.Conn
	stop     chan struct{}
	stopOnce sync.Once
	addr     net.Addr
}

var _ net.Listener = (*listener)(nil)

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.stop:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	return nil
}

func (l *listener) Addr() net.Addr { return l.addr }
