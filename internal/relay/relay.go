// Package relay lets several runbox nodes that share a NATS cluster act as
// one: it records in a JetStream key-value bucket which node owns which
// session, and forwards a request for a session that reached the wrong node
// to the owner's HTTP handler, over NATS only (the nodes need not reach
// each other over HTTP).
//
// A forwarded request travels in a tunnel: a byte stream over core NATS
// with sequence numbers, acknowledgements, a bounded window and
// heartbeats (tunnel.go). The forwarding side is an httputil.ReverseProxy
// whose transport dials tunnels; the owner side hands each tunnel to an
// http.Server as one connection. Plain requests, long polls and WebSocket
// upgrades (hijacked on both sides) are thus all served by the ordinary
// net/http code. One tunnel carries one request (or one upgraded
// connection).
//
// Loops: a forwarded request carries ForwardedHeader, set again by the
// owner side from the tunnel it came through; Forward refuses such a
// request (508), and the caller checks Forwarded first to answer it
// locally.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runbox-dev/runbox/internal/job/jsapi"
)

// ForwardedHeader names the node that forwarded a request. Any value marks
// the request as forwarded; it is a loop guard, not a credential (a client
// may send it too, and only loses forwarding by doing so).
const ForwardedHeader = "X-Runbox-Forwarded"

const (
	ownersBucket  = "runbox-owners"
	subjectPrefix = "runbox.relay."
	// maxOpenBytes bounds an open request (a tunnel id, two node names
	// and an address).
	maxOpenBytes = 1 << 10
	// Replies to an open request.
	replyOK     = "ok"
	replyBusy   = "busy"
	replyClosed = "closed"
	replyBad    = "bad request"
)

// limits are the relay's bounds; tests lower them.
type limits struct {
	tunnels int // open tunnels per node, served and forwarded each
	window  int // unacknowledged chunks per direction of a tunnel
	chunk   int // bytes of a chunk
	// open bounds the owner's answer to an open request.
	open time.Duration
	// keepalive is the heartbeat period; a peer that owes something and
	// is silent for peerTimeout aborts the tunnel.
	keepalive   time.Duration
	peerTimeout time.Duration
	// headerTimeout bounds a tunnel's request headers, and an idle
	// keep-alive tunnel, on the owner side.
	headerTimeout time.Duration
	// writeStall bounds one write to the forwarding node's client.
	writeStall time.Duration
}

func defaultLimits() limits {
	return limits{tunnels: 256, window: 32, chunk: 32 << 10, open: 5 * time.Second, keepalive: 10 * time.Second,
		peerTimeout: 30 * time.Second, headerTimeout: 30 * time.Second, writeStall: 30 * time.Second}
}

// nodeRE is a node name, as internal/job accepts it: it is one token of
// the tunnels' subjects.
var nodeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// remoteRE is a client address as a peer reports it (host:port, IPv6 in
// brackets), shown to the owner's handler as RemoteAddr.
var remoteRE = regexp.MustCompile(`^[A-Za-z0-9.:\[\]%_-]{1,64}$`)

// Errors of an open, mapped to answers by Forward.
var (
	errBusy     = errors.New("relay: too many open tunnels")
	errClosed   = errors.New("relay: closed")
	errRefused  = errors.New("relay: the owner refused the tunnel")
	errNoOwner  = errors.New("relay: no such node")
	errLoop     = errors.New("relay: the request was forwarded already")
	errBadOwner = errors.New("relay: invalid node name")
)

// Relay forwards HTTP connections between nodes over NATS, and records
// which node owns which session.
type Relay struct {
	nc        *nats.Conn
	node      string
	log       *slog.Logger
	lim       limits
	owners    jetstream.KeyValue
	ownerTTL  time.Duration
	srv       *http.Server
	ln        *listener
	openSub   *nats.Subscription
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	// ctx is the relay's own lifetime, for its background work (claim
	// renewal); Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	claimMu sync.Mutex // serialises claim writes, so that a renewal never revives a released claim
	claims  map[string]bool

	mu        sync.Mutex
	tunnels   map[string]*tunnelConn
	served    int // tunnels opened by peers
	forwarded int // tunnels opened by Forward
	closed    bool
}

// openMsg asks a node to serve a tunnel.
type openMsg struct {
	ID     string `json:"id"`
	From   string `json:"from"`
	Remote string `json:"remote,omitempty"` // the client's address, as the forwarding node saw it
}

// New starts serving tunnels addressed to node (subject
// "runbox.relay.<node>.open", then "runbox.relay.t.<id>.in" and ".out"),
// handing each to h as one HTTP connection, and opens (creating it if
// needed) the bucket "runbox-owners", whose entries live ownerTTL (0:
// forever) in replicas copies.
//
// h is served by an http.Server with only a header timeout: h sets the
// read and write deadlines it wants (http.NewResponseController works on
// tunnels), as a direct connection's server would have. The request's
// RemoteAddr is the client's address as the forwarding node saw it, and
// it carries ForwardedHeader with the forwarding node's name.
func New(ctx context.Context, nc *nats.Conn, node string, h http.Handler, ownerTTL time.Duration, replicas int,
	log *slog.Logger) (*Relay, error) {
	return newRelay(ctx, nc, node, h, ownerTTL, replicas, log, defaultLimits())
}

func newRelay(ctx context.Context, nc *nats.Conn, node string, h http.Handler, ownerTTL time.Duration, replicas int,
	log *slog.Logger, lim limits) (*Relay, error) {
	if !nodeRE.MatchString(node) {
		return nil, fmt.Errorf("relay node %q: 1 to 64 letters, digits, '-' or '_'", node)
	}
	if ownerTTL < 0 {
		return nil, fmt.Errorf("relay owner ttl %s: negative", ownerTTL)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	// MaxValueSize bounds a whole message, headers (a delete marker's)
	// included.
	var owners jetstream.KeyValue
	err = jsapi.Retry(ctx, func(ctx context.Context) (err error) {
		owners, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ownersBucket,
			Description: "runbox: the node that owns each session", TTL: ownerTTL, History: 1,
			MaxValueSize: 1 << 10, Storage: jetstream.FileStorage, Replicas: replicas})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", ownersBucket, err)
	}
	// A chunk and its header must fit in one NATS message.
	lim.chunk = min(lim.chunk, int(nc.MaxPayload())-headerLen)
	r := &Relay{nc: nc, node: node, log: log, lim: lim, owners: owners, ownerTTL: ownerTTL,
		ln:     &listener{conns: make(chan net.Conn, lim.tunnels), stop: make(chan struct{}), addr: addr(node)},
		claims: map[string]bool{}, tunnels: map[string]*tunnelConn{}}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	r.srv = &http.Server{Handler: serveForwarded(h), ReadHeaderTimeout: lim.headerTimeout, IdleTimeout: lim.headerTimeout,
		ErrorLog: errLog, ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if t, ok := c.(*tunnelConn); ok {
				ctx = context.WithValue(ctx, fromKey{}, t.from)
			}
			return ctx
		}}
	r.transport = &http.Transport{DialContext: r.dialContext, DisableKeepAlives: true, DisableCompression: true,
		MaxResponseHeaderBytes: 1 << 20}
	r.proxy = &httputil.ReverseProxy{Rewrite: r.rewrite, Transport: r.transport, FlushInterval: -1,
		ModifyResponse: r.modifyResponse, ErrorHandler: r.proxyError, ErrorLog: errLog}
	if r.openSub, err = nc.Subscribe(subjectPrefix+node+".open", r.accept); err != nil {
		return nil, fmt.Errorf("subscribe to relay opens: %w", err)
	}
	// The subscription is live at the server when New returns: a peer may
	// forward at once.
	fctx, cancel := context.WithTimeout(ctx, lim.open) // nats wants a deadline
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		_ = r.openSub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to relay opens: %w", err)
	}
	// Background work outlives New's ctx, which bounds only the setup;
	// Close ends it.
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(3)
	go func() {
		defer r.wg.Done()
		if err := r.srv.Serve(r.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("relay server stopped", "err", err)
		}
	}()
	go r.keep()
	go r.renew()
	return r, nil
}

// Forwarded reports whether req came from another node. The caller checks
// it before Forward: a forwarded request is answered where it lands (a
// 404 when the session is not there), never forwarded again.
func Forwarded(req *http.Request) bool { return len(req.Header.Values(ForwardedHeader)) > 0 }

// keep beats the tunnels' hearts until Close.
func (r *Relay) keep() {
	defer r.wg.Done()
	t := time.NewTicker(r.lim.keepalive)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-t.C:
			for _, c := range r.open() {
				c.tick(now)
			}
		}
	}
}

// open returns the open tunnels.
func (r *Relay) open() []*tunnelConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*tunnelConn, 0, len(r.tunnels))
	for _, c := range r.tunnels {
		out = append(out, c)
	}
	return out
}

// Close stops accepting tunnels and aborts the open ones, served or
// forwarded. Handlers still running on served tunnels are not waited for:
// their reads and writes fail from now on.
func (r *Relay) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	_ = r.openSub.Unsubscribe()
	r.cancel()
	_ = r.srv.Close() // the listener, and the tunnels it has not handed to a Hijack
	for _, c := range r.open() {
		c.abort(errRelayClosed, true)
	}
	r.transport.CloseIdleConnections()
	r.wg.Wait()
}
