package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Why a tunnel ended other than by its user's Close.
var (
	errProtocol    = errors.New("relay tunnel: protocol violation by the peer")
	errPeerReset   = errors.New("relay tunnel: reset by the peer")
	errPeerSilent  = errors.New("relay tunnel: the peer went silent")
	errPeerStopped = errors.New("relay tunnel: the peer reads no more")
	errWriteClosed = errors.New("relay tunnel: write after CloseWrite")
	errRelayClosed = errors.New("relay tunnel: the relay is closed")
	errUnopened    = errors.New("relay tunnel: the owner did not open it")
)

// tunnelConn is one end of a tunnel, a net.Conn over core NATS. Each
// direction is a sequence of chunks; the receiver acknowledges the chunks
// it has consumed and the sender keeps at most window chunks unacknowledged,
// so a tunnel buffers at most window chunks per direction and a slow reader
// slows the writer down, as TCP would. Core NATS may drop a message (a slow
// consumer, a reconnect) but never reorders one publisher's messages on one
// subject: a gap in the sequence, or a peer that is silent while it owes
// something, aborts the tunnel instead of corrupting it.
type tunnelConn struct {
	id            string
	local, remote net.Addr
	from          string // the forwarding node (owner side), for ForwardedHeader
	window        int
	chunk         int
	peerTimeout   time.Duration

	// send publishes a frame to the peer; the frame's bytes may be reused
	// once it returns.
	send func([]byte) error
	// done is called once, when the tunnel ends (cleanly or not), to
	// unsubscribe and forget it.
	done func()

	wmu  sync.Mutex // one writer at a time, so chunks leave in order
	wbuf []byte     // the frame being sent; under wmu

	mu      sync.Mutex
	wake    chan struct{} // closed and replaced on every change of state
	buf     [][]byte      // received chunks not yet read; buf[0][off:] is next
	off     int
	recvSeq uint64 // last chunk received
	readSeq uint64 // chunks wholly read
	ackSeq  uint64 // last readSeq acknowledged to the peer
	finGot  bool   // the peer ended its direction
	sentSeq uint64 // last chunk sent
	peerAck uint64 // chunks the peer has consumed
	finSent bool
	stopped bool      // the peer reads no more
	heard   time.Time // last frame from the peer
	err     error     // aborted or closed: Read and Write fail with it
	closed  bool
	ended   bool // done has been called
	rdl     time.Time
	wdl     time.Time
}

var (
	_ net.Conn                        = (*tunnelConn)(nil)
	_ interface{ CloseWrite() error } = (*tunnelConn)(nil)
)

func newTunnelConn(id string, lim limits, local, remote net.Addr) *tunnelConn {
	return &tunnelConn{id: id, local: local, remote: remote, window: lim.window, chunk: lim.chunk,
		peerTimeout: lim.peerTimeout, wake: make(chan struct{}), heard: time.Now(), done: func() {}}
}

// broadcast wakes every waiter; c.mu is held.
func (c *tunnelConn) broadcast() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// wait blocks until wake is closed or deadline passes.
func wait(wake <-chan struct{}, deadline time.Time) {
	if deadline.IsZero() {
		<-wake
		return
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-wake:
	case <-t.C:
	}
}

func expired(deadline time.Time) bool { return !deadline.IsZero() && !time.Now().Before(deadline) }

// Read reads what the peer wrote; io.EOF once it ended its direction.
func (c *tunnelConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	for {
		switch {
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return 0, err
		case expired(c.rdl):
			// As a TCP conn does, even with data buffered: net/http's
			// abortPendingRead relies on it.
			c.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		case len(c.buf) > 0:
		case c.finGot:
			c.mu.Unlock()
			return 0, io.EOF
		case len(p) == 0:
			c.mu.Unlock()
			return 0, nil
		default:
			wake, dl := c.wake, c.rdl
			c.mu.Unlock()
			wait(wake, dl)
			c.mu.Lock()
			continue
		}
		break
	}
	n := 0
	for n < len(p) && len(c.buf) > 0 {
		k := copy(p[n:], c.buf[0][c.off:])
		n += k
		c.off += k
		if c.off == len(c.buf[0]) {
			c.buf[0] = nil
			c.buf, c.off = c.buf[1:], 0
			c.readSeq++
		}
	}
	// A peer that has ended its direction waits for no acknowledgement.
	var ack []byte
	if c.readSeq > c.ackSeq && !c.finGot {
		c.ackSeq = c.readSeq
		ack = appendFrame(nil, kindAck, c.readSeq, nil)
	}
	c.mu.Unlock()
	if ack != nil {
		c.emit(ack)
	}
	return n, nil
}

// Write sends p in chunks, waiting while window chunks are unacknowledged.
func (c *tunnelConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := 0
	for len(p) > 0 {
		seq, err := c.reserve()
		if err != nil {
			return n, err
		}
		k := min(len(p), c.chunk)
		// NATS copies the frame into its write buffer: wbuf is reused.
		c.wbuf = appendFrame(c.wbuf[:0], kindData, seq, p[:k])
		if err := c.send(c.wbuf); err != nil {
			// The chunk's number is spent: the peer would see a gap.
			c.abort(fmt.Errorf("relay tunnel: send: %w", err), false)
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// reserve waits for room in the window and numbers the next chunk.
func (c *tunnelConn) reserve() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case c.err != nil:
			return 0, c.err
		case c.finSent:
			return 0, errWriteClosed
		case c.stopped:
			return 0, errPeerStopped
		case expired(c.wdl):
			return 0, os.ErrDeadlineExceeded
		case c.sentSeq-c.peerAck < uint64(c.window):
			c.sentSeq++
			return c.sentSeq, nil
		}
		wake, dl := c.wake, c.wdl
		c.mu.Unlock()
		wait(wake, dl)
		c.mu.Lock()
	}
}

// CloseWrite ends this direction: the peer reads io.EOF after the data
// sent so far. net/http's server calls it before closing a connection.
func (c *tunnelConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.err != nil || c.finSent {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.finSent = true
	seq, done := c.sentSeq, c.finGot
	c.mu.Unlock()
	if err := c.send(appendFrame(nil, kindFin, seq, nil)); err != nil {
		c.abort(fmt.Errorf("relay tunnel: send: %w", err), false)
		return err
	}
	if done {
		c.end()
	}
	return nil
}

// Close ends both directions: the peer reads io.EOF after what was sent,
// and its writes fail from now on. Data in flight is delivered, not
// discarded: there is no lingering because nothing is retransmitted.
func (c *tunnelConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	live := c.err == nil
	if live {
		c.err = net.ErrClosed
	}
	c.buf = nil
	c.broadcast()
	c.mu.Unlock()
	if live {
		// A writer woken by the broadcast returns; fin must follow its
		// last chunk.
		c.wmu.Lock()
		c.mu.Lock()
		fin, stop, seq := !c.finSent, !c.finGot, c.sentSeq
		c.finSent = true
		c.mu.Unlock()
		if fin {
			c.emit(appendFrame(nil, kindFin, seq, nil))
		}
		if stop {
			c.emit(appendFrame(nil, kindStop, 0, nil))
		}
		c.wmu.Unlock()
	}
	c.end()
	return nil
}

// emit sends a control frame; failing to is fatal to the tunnel.
func (c *tunnelConn) emit(frame []byte) {
	if err := c.send(frame); err != nil {
		c.abort(fmt.Errorf("relay tunnel: send: %w", err), false)
	}
}

// abort ends the tunnel now, discarding what is buffered; with reset, it
// tells the peer to do the same.
func (c *tunnelConn) abort(err error, reset bool) {
	c.mu.Lock()
	if c.err != nil || c.ended {
		c.mu.Unlock()
		return
	}
	c.err, c.buf = err, nil
	c.broadcast()
	c.mu.Unlock()
	if reset {
		_ = c.send(appendFrame(nil, kindReset, 0, nil))
	}
	c.end()
}

// failure is why the tunnel was aborted, if it was.
func (c *tunnelConn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(c.err, net.ErrClosed) || errors.Is(c.err, errRelayClosed) || errors.Is(c.err, errUnopened) {
		return nil
	}
	return c.err
}

// end calls done once.
func (c *tunnelConn) end() {
	c.mu.Lock()
	ended := c.ended
	c.ended = true
	c.mu.Unlock()
	if !ended {
		c.done()
	}
}

// receive takes one frame from the peer, in the peer's order.
func (c *tunnelConn) receive(b []byte) {
	k, seq, payload, err := parseFrame(b)
	if err != nil {
		c.abort(fmt.Errorf("%w: %w", errProtocol, err), true)
		return
	}
	c.mu.Lock()
	if c.err != nil || c.ended {
		// Closed, aborted, or both directions over: what is still in
		// flight is moot (and must not abort a tunnel whose data is
		// still being read).
		c.mu.Unlock()
		return
	}
	c.heard = time.Now()
	var bad string
	switch k {
	case kindData:
		switch {
		case c.finGot:
			bad = fmt.Sprintf("chunk %d after the end", seq)
		case seq != c.recvSeq+1:
			bad = fmt.Sprintf("chunk %d after chunk %d", seq, c.recvSeq)
		case c.recvSeq-c.readSeq >= uint64(c.window):
			bad = fmt.Sprintf("chunk %d beyond the window of %d", seq, c.window)
		default:
			c.recvSeq = seq
			c.buf = append(c.buf, payload)
		}
	case kindAck:
		// Acks may overtake each other (a read's and a heartbeat's): keep
		// the highest.
		if seq > c.sentSeq {
			bad = fmt.Sprintf("ack of chunk %d, only %d sent", seq, c.sentSeq)
		} else {
			c.peerAck = max(c.peerAck, seq)
		}
	case kindFin:
		if c.finGot || seq != c.recvSeq {
			bad = fmt.Sprintf("end after chunk %d, %d received", seq, c.recvSeq)
		}
		c.finGot = true
	case kindStop:
		c.stopped = true
	case kindReset:
		c.mu.Unlock()
		c.abort(errPeerReset, false)
		return
	}
	done := bad == "" && c.finGot && c.finSent
	c.broadcast()
	c.mu.Unlock()
	switch {
	case bad != "":
		c.abort(fmt.Errorf("%w: %s", errProtocol, bad), true)
	case done:
		c.end()
	}
}

// tick is the heartbeat: it acknowledges again what was read (so that the
// peer hears from this end even when nothing moves) and aborts the tunnel
// when the peer, which owes data, an end or an ack, has been silent for
// peerTimeout. An idle tunnel is fine as long as both ends are alive.
func (c *tunnelConn) tick(now time.Time) {
	c.mu.Lock()
	if c.err != nil || c.ended {
		c.mu.Unlock()
		return
	}
	owed := !c.finGot || c.sentSeq > c.peerAck && !c.stopped
	silent := owed && now.Sub(c.heard) > c.peerTimeout
	seq := c.readSeq
	c.mu.Unlock()
	if silent {
		c.abort(fmt.Errorf("%w for %s", errPeerSilent, c.peerTimeout), true)
		return
	}
	c.emit(appendFrame(nil, kindAck, seq, nil))
}

func (c *tunnelConn) LocalAddr() net.Addr  { return c.local }
func (c *tunnelConn) RemoteAddr() net.Addr { return c.remote }

func (c *tunnelConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.broadcast()
	c.mu.Unlock()
	return nil
}

func (c *tunnelConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.broadcast()
	c.mu.Unlock()
	return nil
}

func (c *tunnelConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.broadcast()
	c.mu.Unlock()
	return nil
}

// addr is a tunnel end's address: the node, or the client the forwarding
// node saw.
type addr string

func (a addr) Network() string { return "relay" }
func (a addr) String() string  { return string(a) }
