package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	maxURLBytes = 2048
	// ownAddrsTTL bounds how often the host's interfaces are listed; an
	// address added since is caught within this delay.
	ownAddrsTTL = 30 * time.Second
)

// refused lists the ranges a callback may not reach unless allowed. Order
// matters only for the reason given: the first match names it. Addresses
// that embed an IPv4 one (mapped, NAT64, 6to4) are judged by it instead.
var refused = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified (this-network) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (CGNAT) address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol-assignment address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address (deprecated)"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("2001::/32"), "a Teredo address"},
	{netip.MustParsePrefix("fc00::/7"), "a private (unique local) address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: IPv4 in the last 4 bytes
	sixToFour = netip.MustParsePrefix("2002::/16")    // RFC 3056: IPv4 in bytes 2 to 5
)

// Policy decides which addresses a callback may reach. The zero Policy
// refuses every address that is not public. A Policy must not be copied
// after first use.
type Policy struct {
	Allow []netip.Prefix // operator-allowed ranges, override every refusal

	// ownAddrs lists this host's addresses; nil means the interfaces'.
	// Tests replace it.
	ownAddrs func() ([]netip.Addr, error)

	mu      sync.Mutex
	own     map[netip.Addr]bool
	ownTime time.Time
}

// ParseAllow reads the operator's allow list: CIDRs or single IPs. The
// error names the bad entry; the caller names the setting.
func ParseAllow(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, entry := range list {
		s := strings.TrimSpace(entry)
		if strings.Contains(s, "%") {
			return nil, fmt.Errorf("%q: a zone is not allowed", entry)
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", entry)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// refusedError is a refusal by the policy. Send finds it inside a dial
// error to report the reason, not the dialer's wrapping.
type refusedError struct {
	addr, judged netip.Addr // judged differs when addr embeds an IPv4 address
	what         string
}

func (e *refusedError) Error() string {
	if e.judged != e.addr {
		return fmt.Sprintf("refused: %s embeds %s, %s; allow it with callback_allow", e.addr, e.judged, e.what)
	}
	return fmt.Sprintf("refused: %s is %s; allow it with callback_allow", e.addr, e.what)
}

// CheckAddr refuses, unless inside an Allow prefix: unspecified, loopback,
// link-local, private, CGNAT, multicast, broadcast and other special-purpose
// ranges (see refused), and every address of this host's interfaces. An
// IPv4-mapped IPv6 address is judged as its IPv4 address, as are NAT64
// (64:ff9b::/96) and 6to4 (2002::/16) addresses by the IPv4 they embed:
// each reaches that IPv4 host. Documentation ranges are not refused. A nil
// Policy is the zero Policy, without the cache.
func (p *Policy) CheckAddr(a netip.Addr) error {
	if p == nil {
		p = &Policy{}
	}
	if !a.IsValid() {
		return errors.New("refused: not an IP address")
	}
	a = a.WithZone("")
	judged := embeddedIPv4(a)
	if p.allowed(a) || p.allowed(judged) {
		return nil
	}
	for _, r := range refused {
		if r.prefix.Contains(judged) {
			return &refusedError{addr: a, judged: judged, what: r.what}
		}
	}
	// A public address of this host reaches its own services just as
	// loopback does.
	own, err := p.ownSet()
	if err != nil {
		return err
	}
	if own[a] || own[judged] {
		return &refusedError{addr: a, judged: judged, what: "an address of this host"}
	}
	return nil
}

func (p *Policy) allowed(a netip.Addr) bool {
	for _, pre := range p.Allow {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// embeddedIPv4 returns the IPv4 address that a reaches, or a itself.
func embeddedIPv4(a netip.Addr) netip.Addr {
	if a.Is4In6() {
		return a.Unmap()
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16]))
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6]))
	}
	return a
}

// ownSet returns this host's addresses, listed at most once per ownAddrsTTL.
// A failed listing is not cached and refuses the address: better no
// delivery than one to ourselves.
func (p *Policy) ownSet() (map[netip.Addr]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.own != nil && time.Since(p.ownTime) < ownAddrsTTL {
		return p.own, nil
	}
	list := p.ownAddrs
	if list == nil {
		list = interfaceAddrs
	}
	addrs, err := list()
	if err != nil {
		return nil, fmt.Errorf("refused: cannot list this host's addresses: %w", err)
	}
	own := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		own[a.WithZone("").Unmap()] = true
	}
	p.own, p.ownTime = own, time.Now()
	return own, nil
}

func interfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip)
			}
		}
	}
	return out, nil
}

// CheckURL is the submit-time check of a callback URL (a 4xx for the user):
// absolute http or https URL, at most 2048 bytes, a host, no userinfo, port
// 1-65535 if given, no fragment. A host that is an IP literal is checked
// with CheckAddr; a host name is accepted here and checked again, after DNS,
// at dial time. The error message states the rule.
func (p *Policy) CheckURL(raw string) error {
	host, err := checkURLForm(raw)
	if err != nil {
		return err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return p.CheckAddr(a)
	}
	return nil
}

// checkURLForm checks all of CheckURL's rules but the address, and returns
// the host. Send uses it alone: the dialer judges the address.
func checkURLForm(raw string) (host string, err error) {
	if len(raw) > maxURLBytes {
		return "", fmt.Errorf("callback URL is longer than %d bytes", maxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("callback URL does not parse: %w", inner(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("callback URL must be an absolute http or https URL")
	}
	if u.User != nil {
		return "", errors.New("callback URL must not carry userinfo (user:password@)")
	}
	if strings.Contains(raw, "#") {
		return "", errors.New("callback URL must not have a fragment")
	}
	host = u.Hostname()
	if u.Opaque != "" || host == "" {
		return "", errors.New("callback URL must name a host")
	}
	if port := u.Port(); port != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", errors.New("callback URL port must be 1-65535")
		}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host, nil
	}
	// Browsers and some resolvers read a name ending in a number as an
	// IPv4 address in another form (127.1, 0x7f000001, 2130706433); no real
	// name does (WHATWG URL, "ends in a number"). Such a host would still be
	// caught at dial time; refusing it here gives a clear answer.
	if endsInNumber(host) {
		return "", errors.New("callback URL host must be a name or an IP address in standard form")
	}
	return host, nil
}

func endsInNumber(host string) bool {
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := labels[len(labels)-1]
	if h, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}
