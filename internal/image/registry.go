package image

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// remoteOptions are the options of every registry request of a pull.
func (s *Store) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithTransport(s.transport),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
		remote.WithUserAgent("runbox"),
	}
}

// parseRef parses an image reference, marking its registry insecure (plain
// HTTP allowed) when it is loopback or listed in Config.Insecure.
func (s *Store) parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %s: %w", quote(ref), err)
	}
	if s.plainHTTP(r.Context().RegistryStr()) {
		r, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("image reference %s: %w", quote(ref), err)
		}
	}
	return r, nil
}

// plainHTTP reports whether registry host (host or host:port) may be
// spoken to over plain HTTP.
func (s *Store) plainHTTP(host string) bool {
	host = strings.ToLower(host)
	if s.insecure[host] {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if s.insecure[h] || h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// httpGuard refuses plain-HTTP requests to hosts that allow does not
// allow. go-containerregistry itself speaks HTTP to RFC 1918 addresses and
// follows redirects anywhere: a registry must not be able to move a pull,
// its credentials or its blobs onto plain HTTP.
type httpGuard struct {
	allow func(host string) bool
	next  http.RoundTripper
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allow(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("plain HTTP to %s refused: neither loopback nor listed as insecure", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}
