package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	defaultTimeout       = 10 * time.Second
	maxResponseBytes     = 64 << 10 // read and discarded, so the connection ends cleanly
	maxResponseHeaderLen = 16 << 10
	maxHeaders           = 16
	maxHeaderNameBytes   = 64
	maxHeaderValueBytes  = 1024
	userAgent            = "runbox-webhook"
)

// reserved are the header names a user may not set: the framing and
// hop-by-hop ones belong to the connection, the others to the signature.
// Names starting with "webhook-" are reserved too. Keys are lower case.
var reserved = map[string]bool{
	"host": true, "content-length": true, "content-type": true, "transfer-encoding": true,
	"connection": true, "proxy-connection": true, "keep-alive": true, "te": true,
	"trailer": true, "upgrade": true, "user-agent": true,
}

// Sender delivers signed webhooks.
type Sender struct {
	secret  Secret
	timeout time.Duration
	client  *http.Client
}

// NewSender returns a Sender that signs with secret and connects only where
// p allows (a nil p is the zero Policy). Each attempt is bounded by timeout
// (10 s if not positive).
func NewSender(secret Secret, p *Policy, timeout time.Duration) *Sender {
	if p == nil {
		p = &Policy{}
	}
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	dialer := &net.Dialer{
		// Control runs after DNS, on the address about to be connected to.
		// Checking it here, not the name, is what closes DNS rebinding: a
		// name that resolved to a public address at submit time and to
		// 127.0.0.1 now is judged by 127.0.0.1.
		Control: func(network, address string, _ syscall.RawConn) error {
			if network != "tcp4" && network != "tcp6" {
				return fmt.Errorf("refused: network %s", network)
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("refused: address %q: %w", address, err)
			}
			return p.CheckAddr(ap.Addr())
		},
	}
	tr := &http.Transport{
		Proxy:                  nil, // an environment proxy would connect for us, past the check
		DialContext:            dialer.DialContext,
		MaxResponseHeaderBytes: maxResponseHeaderLen,
		DisableKeepAlives:      true,
		DisableCompression:     true, // the body is discarded; no reason to inflate it
	}
	return &Sender{
		secret:  secret,
		timeout: timeout,
		client: &http.Client{
			Transport: tr,
			// A redirect would lead the client to a URL nobody checked;
			// the 3xx is the answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Attempt records one delivery attempt.
type Attempt struct {
	At         time.Time `json:"at"`
	Status     int       `json:"status,omitempty"` // the HTTP status, 0 if none came
	Error      string    `json:"error,omitempty"`  // why it failed (refused address, timeout, non-2xx, redirect not followed)
	DurationMS int64     `json:"duration_ms"`
}

// OK reports whether the receiver answered 2xx.
func (a Attempt) OK() bool { return a.Status >= 200 && a.Status < 300 }

// Send makes one attempt: method (POST or PUT), rawURL, extra headers
// (user-given; those ValidHeaders would refuse are ignored), webhook-id =
// id, webhook-timestamp = now, webhook-signature = Sign(...), Content-Type:
// application/json, User-Agent "runbox-webhook". A failure is reported in
// the Attempt, never as an error: it is the receiver's, not ours.
func (s *Sender) Send(ctx context.Context, method, rawURL string, headers map[string]string, id string, body []byte) (a Attempt) {
	start := time.Now()
	a.At = start
	defer func() { a.DurationMS = time.Since(start).Milliseconds() }()

	if method != http.MethodPost && method != http.MethodPut {
		a.Error = fmt.Sprintf("method %q: must be POST or PUT", method)
		return a
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// Checked at submit time too; again here because a stored job may not
	// have come through the API. The address is left to the dialer, which
	// judges the one it connects to.
	if _, err := checkURLForm(rawURL); err != nil {
		a.Error = err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
	if err != nil {
		a.Error = "bad callback URL: " + inner(err).Error()
		return a
	}
	for name, value := range headers {
		if checkHeader(name, value) == nil {
			req.Header.Set(name, value)
		}
	}
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(start.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(s.secret, id, start, body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)

	resp, err := s.client.Do(req)
	if err != nil {
		a.Error = s.describe(ctx, err)
		return a
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	a.Status = resp.StatusCode
	switch {
	case a.OK():
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		a.Error = "redirect not followed"
	default:
		a.Error = "callback answered " + resp.Status
	}
	return a
}

// describe says why no answer came, in words meant for the job's owner.
func (s *Sender) describe(ctx context.Context, err error) string {
	var r *refusedError
	if errors.As(err, &r) {
		return r.Error()
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("timeout: no answer within %s", s.timeout)
	}
	return inner(err).Error()
}

// inner drops a *url.Error's "Post <url>:" prefix.
func inner(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}

// ValidHeaders checks user-given callback headers at submit time: at most
// 16, name a valid token of at most 64 bytes, value of at most 1024 bytes
// without control characters (CR, LF, NUL and the others Go's client would
// refuse to send; tab is fine), not a reserved name (case-insensitive), not
// given twice in different case. The error names the header and the rule.
func ValidHeaders(h map[string]string) error {
	if len(h) > maxHeaders {
		return fmt.Errorf("at most %d callback headers, got %d", maxHeaders, len(h))
	}
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(h)) {
		if err := checkHeader(name, h[name]); err != nil {
			return err
		}
		lower := strings.ToLower(name)
		if seen[lower] {
			return fmt.Errorf("callback header %q is given twice (names are case-insensitive)", name)
		}
		seen[lower] = true
	}
	return nil
}

func checkHeader(name, value string) error {
	switch {
	case len(name) > maxHeaderNameBytes:
		return fmt.Errorf("callback header %q...: name is longer than %d bytes", name[:maxHeaderNameBytes], maxHeaderNameBytes)
	case !isToken(name):
		return fmt.Errorf("callback header %q: name must be an HTTP token", name)
	case reserved[strings.ToLower(name)] || strings.HasPrefix(strings.ToLower(name), "webhook-"):
		return fmt.Errorf("callback header %q is reserved", name)
	case len(value) > maxHeaderValueBytes:
		return fmt.Errorf("callback header %q: value is longer than %d bytes", name, maxHeaderValueBytes)
	case strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
		return fmt.Errorf("callback header %q: value must not contain CR, LF, NUL or other control characters", name)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
