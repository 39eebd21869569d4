package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The Standard Webhooks test vector, from the specification's libraries.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specUnix   = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustSecret(t testing.TB, s string) Secret {
	t.Helper()
	sec, err := ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// noOwn stands for a host with no interface address worth refusing, so
// that tests do not depend on the machine's.
func noOwn() ([]netip.Addr, error) { return nil, nil }

func policy(t testing.TB, allow ...string) *Policy {
	t.Helper()
	prefixes, err := ParseAllow(allow)
	if err != nil {
		t.Fatal(err)
	}
	return &Policy{Allow: prefixes, ownAddrs: noOwn}
}

func TestSignSpecVector(t *testing.T) {
	got := Sign(mustSecret(t, specSecret), specID, time.Unix(specUnix, 0), []byte(specBody))
	if got != specSig {
		t.Errorf("Sign = %s, want %s", got, specSig)
	}
}

func TestSignIndependent(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	ts := time.Date(2025, 1, 2, 3, 4, 5, 999, time.UTC) // sub-second part is not signed
	m := hmac.New(sha256.New, key)
	m.Write([]byte("job_1.1735787045.{}"))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if got := Sign(key, "job_1", ts, []byte("{}")); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := mustSecret(t, specSecret)
	now := time.Unix(specUnix, 0)
	good := func() http.Header {
		h := http.Header{}
		h.Set("webhook-id", specID)
		h.Set("webhook-timestamp", fmt.Sprint(specUnix))
		h.Set("webhook-signature", specSig)
		return h
	}
	other, _ := GenerateSecret()
	for _, tc := range []struct {
		name   string
		secret Secret
		edit   func(http.Header)
		body   string
		now    time.Time
		errHas string // "" means it must pass
	}{
		{name: "good"},
		{name: "within tolerance", now: now.Add(4 * time.Minute)},
		{name: "wrong secret", secret: other, errHas: "webhook-signature"},
		{name: "tampered body", body: `{"test": 2432232315}`, errHas: "webhook-signature"},
		{name: "other id", edit: func(h http.Header) { h.Set("webhook-id", "msg_other") }, errHas: "webhook-signature"},
		{name: "missing id", edit: func(h http.Header) { h.Del("webhook-id") }, errHas: "webhook-id"},
		{name: "missing timestamp", edit: func(h http.Header) { h.Del("webhook-timestamp") }, errHas: "webhook-timestamp"},
		{name: "missing signature", edit: func(h http.Header) { h.Del("webhook-signature") }, errHas: "missing webhook-signature"},
		{name: "timestamp not a number", edit: func(h http.Header) { h.Set("webhook-timestamp", "yesterday") }, errHas: "webhook-timestamp"},
		{name: "stale timestamp", now: now.Add(6 * time.Minute), errHas: "tolerance"},
		{name: "future timestamp", now: now.Add(-6 * time.Minute), errHas: "tolerance"},
		{name: "several, one good", edit: func(h http.Header) {
			h.Set("webhook-signature", "v1,AAAA v1a,"+specSig[3:]+" "+specSig+" v1,bm90IGl0")
		}},
		{name: "several, none good", edit: func(h http.Header) {
			h.Set("webhook-signature", "v1,AAAA v1a,"+specSig[3:]+" v2,"+specSig[3:])
		}, errHas: "no v1 signature matches"},
		{name: "not base64", edit: func(h http.Header) { h.Set("webhook-signature", "v1,!!!") }, errHas: "webhook-signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := good()
			if tc.edit != nil {
				tc.edit(h)
			}
			sec, body, at := secret, specBody, now
			if tc.secret != nil {
				sec = tc.secret
			}
			if tc.body != "" {
				body = tc.body
			}
			if !tc.now.IsZero() {
				at = tc.now
			}
			err := Verify(sec, h, []byte(body), 5*time.Minute, at)
			switch {
			case tc.errHas == "" && err != nil:
				t.Fatalf("Verify: %v", err)
			case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
				t.Fatalf("Verify = %v, want an error about %q", err, tc.errHas)
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, n)) }
	for _, tc := range []struct {
		in, errHas string
	}{
		{in: specSecret},
		{in: "whsec_" + b64(24)},
		{in: "whsec_" + b64(64)},
		{in: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", errHas: "start with whsec_"},
		{in: "whsec_not*base64", errHas: "base64"},
		{in: "whsec_" + b64(23), errHas: "24 to 64 bytes, got 23"},
		{in: "whsec_" + b64(65), errHas: "24 to 64 bytes, got 65"},
		{in: "whsec_", errHas: "got 0"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			s, err := ParseSecret(tc.in)
			if tc.errHas == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.String() != tc.in {
					t.Errorf("String = %s, want %s", s, tc.in)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("ParseSecret = %v, want an error about %q", err, tc.errHas)
			}
			if enc := strings.TrimPrefix(tc.in, "whsec_"); len(enc) > 8 && strings.Contains(err.Error(), enc) {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
}

func TestSecretNotLogged(t *testing.T) {
	s := mustSecret(t, specSecret)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "secret", s)
	if strings.Contains(buf.String(), "MfKQ9r8G") {
		t.Errorf("log line shows the secret: %s", buf.String())
	}
}

func TestGenerateSecret(t *testing.T) {
	a, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateSecret()
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Fatalf("GenerateSecret gave %d bytes, equal twice: %v", len(a), bytes.Equal(a, b))
	}
	if _, err := ParseSecret(a.String()); err != nil {
		t.Errorf("a generated secret does not parse: %v", err)
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "webhook.secret")

	first, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	second, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("the second call gave another secret")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left %d files in the directory, want 1", len(entries))
	}

	t.Run("written by hand", func(t *testing.T) {
		p := filepath.Join(dir, "hand")
		if err := os.WriteFile(p, []byte(specSecret+"\r\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := LoadOrCreateSecret(p)
		if err != nil || s.String() != specSecret {
			t.Fatalf("LoadOrCreateSecret = %v, %v; want the spec secret", s, err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		p := filepath.Join(dir, "garbage")
		if err := os.WriteFile(p, []byte("hunter2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateSecret(p); err == nil || !strings.Contains(err.Error(), "whsec_") {
			t.Fatalf("LoadOrCreateSecret = %v, want a parse error", err)
		}
	})
	t.Run("no directory", func(t *testing.T) {
		if _, err := LoadOrCreateSecret(filepath.Join(dir, "absent", "s")); err == nil {
			t.Fatal("created a secret in a directory that does not exist")
		}
	})
}

func TestParseAllow(t *testing.T) {
	got, err := ParseAllow([]string{"127.0.0.0/8", " 10.0.0.5 ", "::1", "fd00::7/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.0/8", "10.0.0.5/32", "::1/128", "fd00::/8"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParseAllow = %v, want %v", got, want)
	}
	for _, bad := range []string{"nope", "10.0.0.0/33", "", "fe80::1%eth0"} {
		_, err := ParseAllow([]string{"10.0.0.0/8", bad})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("ParseAllow(%q) = %v, want an error naming it", bad, err)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	own := func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::7")}, nil
	}
	refusedCases := []struct{ addr, why string }{
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"10.0.0.5", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.255", "CGNAT"},
		{"169.254.169.254", "link-local"}, // the cloud metadata service
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"192.0.0.8", "IETF"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"240.0.0.1", "reserved"},
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"ff02::1", "multicast"},
		{"ff05::2", "multicast"},
		{"::ffff:127.0.0.1", "embeds 127.0.0.1, a loopback"},
		{"::ffff:10.0.0.1", "embeds 10.0.0.1, a private"},
		{"64:ff9b::7f00:1", "embeds 127.0.0.1, a loopback"},
		{"64:ff9b::a9fe:a9fe", "embeds 169.254.169.254, a link-local"},
		{"2002:7f00:1::1", "embeds 127.0.0.1, a loopback"},
		{"2002:c0a8:101::", "embeds 192.168.1.1, a private"},
		{"::127.0.0.1", "IPv4-compatible"},
		{"64:ff9b:1::1", "NAT64"},
		{"2001::1", "Teredo"},
		{"fec0::1", "site-local"},
		{"203.0.113.7", "address of this host"},
		{"::ffff:203.0.113.7", "address of this host"},
		{"2001:db8::7", "address of this host"},
	}
	for _, tc := range refusedCases {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			p := &Policy{ownAddrs: own}
			err := p.CheckAddr(a)
			if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "callback_allow") {
				t.Fatalf("CheckAddr = %v, want a refusal saying %q and how to allow it", err, tc.why)
			}
			p = &Policy{Allow: []netip.Prefix{netip.PrefixFrom(a.WithZone(""), a.BitLen())}, ownAddrs: own}
			if err := p.CheckAddr(a); err != nil {
				t.Fatalf("allowed, CheckAddr = %v", err)
			}
		})
	}
	for _, s := range []string{"1.1.1.1", "8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::101:101",
		"2002:101:101::1", "172.32.0.1", "100.128.0.1", "198.20.0.1", "203.0.113.8", "2001:4860:4860::8888"} {
		t.Run(s, func(t *testing.T) {
			if err := (&Policy{ownAddrs: own}).CheckAddr(netip.MustParseAddr(s)); err != nil {
				t.Fatalf("CheckAddr(%s) = %v, want it accepted", s, err)
			}
		})
	}
	t.Run("allow judges the embedded IPv4", func(t *testing.T) {
		p := policy(t, "127.0.0.0/8")
		for _, s := range []string{"127.0.0.1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"} {
			if err := p.CheckAddr(netip.MustParseAddr(s)); err != nil {
				t.Errorf("CheckAddr(%s) = %v", s, err)
			}
		}
		if err := p.CheckAddr(netip.MustParseAddr("::1")); err == nil {
			t.Error("allowing 127.0.0.0/8 let ::1 through")
		}
	})
	t.Run("own address only through the lookup", func(t *testing.T) {
		if err := policy(t).CheckAddr(netip.MustParseAddr("203.0.113.7")); err != nil {
			t.Fatalf("CheckAddr = %v with no own addresses", err)
		}
	})
	t.Run("nil policy", func(t *testing.T) {
		var p *Policy
		if err := p.CheckAddr(netip.MustParseAddr("10.0.0.1")); err == nil {
			t.Error("a nil Policy accepted 10.0.0.1")
		}
		if err := p.CheckURL("http://[::1]/"); err == nil {
			t.Error("a nil Policy accepted http://[::1]/")
		}
	})
	t.Run("not an address", func(t *testing.T) {
		if err := policy(t).CheckAddr(netip.Addr{}); err == nil {
			t.Fatal("the zero Addr was accepted")
		}
	})
	t.Run("lookup fails closed", func(t *testing.T) {
		p := &Policy{ownAddrs: func() ([]netip.Addr, error) { return nil, errors.New("no netlink") }}
		if err := p.CheckAddr(netip.MustParseAddr("1.1.1.1")); err == nil || !strings.Contains(err.Error(), "no netlink") {
			t.Fatalf("CheckAddr = %v, want the lookup's error", err)
		}
	})
	t.Run("lookup cached", func(t *testing.T) {
		var calls atomic.Int32
		p := &Policy{ownAddrs: func() ([]netip.Addr, error) { calls.Add(1); return own() }}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { p.CheckAddr(netip.MustParseAddr("1.1.1.1")) })
		}
		wg.Wait()
		if n := calls.Load(); n != 1 {
			t.Fatalf("looked up %d times, want 1", n)
		}
		p.mu.Lock()
		p.ownTime = time.Now().Add(-ownAddrsTTL - time.Second)
		p.mu.Unlock()
		p.CheckAddr(netip.MustParseAddr("1.1.1.1"))
		if n := calls.Load(); n != 2 {
			t.Fatalf("looked up %d times after the TTL, want 2", n)
		}
	})
	t.Run("real interfaces", func(t *testing.T) {
		// Whatever this host has, loopback is among its addresses.
		p := &Policy{}
		if err := p.CheckAddr(netip.MustParseAddr("1.1.1.1")); err != nil {
			t.Fatalf("CheckAddr with the real lookup = %v", err)
		}
		if len(p.own) == 0 {
			t.Error("net.InterfaceAddrs gave no address")
		}
	})
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url, rule string // rule "" means accepted
	}{
		{url: "https://example.com/x"},
		{url: "http://example.com:8080/hook?a=b&c=%20"},
		{url: "HTTPS://Example.COM/x"},
		{url: "http://example.com./"},
		{url: "http://1.1.1.1/"},
		{url: "http://[2606:4700::1111]:443/"},
		{url: "http://localhost/"}, // a name: judged after DNS, at dial time
		{url: "http://api.v2.example/"},
		{url: "ftp://example.com/x", rule: "http or https"},
		{url: "mailto:hook@example.com", rule: "http or https"},
		{url: "example.com/x", rule: "http or https"},
		{url: "//example.com/x", rule: "http or https"},
		{url: "", rule: "http or https"},
		{url: "http:///x", rule: "host"},
		{url: "http://:80/x", rule: "host"},
		{url: "http:example.com", rule: "host"},
		{url: "https://user:pw@example.com/", rule: "userinfo"},
		{url: "https://user@example.com/", rule: "userinfo"},
		{url: "http://example.com:0/", rule: "1-65535"},
		{url: "http://example.com:65536/", rule: "1-65535"},
		{url: "http://example.com:/", rule: "1-65535"},
		{url: "http://example.com:http/", rule: "does not parse"},
		{url: "http://10.0.0.5/x", rule: "private"},
		{url: "http://[::1]:8080/", rule: "loopback"},
		{url: "http://[::ffff:169.254.169.254]/", rule: "link-local"},
		{url: "http://[fe80::1%25eth0]/", rule: "link-local"},
		{url: "http://127.1/", rule: "standard form"},
		{url: "http://2130706433/", rule: "standard form"},
		{url: "http://0x7f000001/", rule: "standard form"},
		{url: "https://example.com/x#frag", rule: "fragment"},
		{url: "https://example.com/x#", rule: "fragment"},
		{url: "https://example.com/\x7f", rule: "does not parse"},
		{url: "https://example.com/" + strings.Repeat("a", 2048), rule: "2048"},
	} {
		name := tc.url
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			err := policy(t).CheckURL(tc.url)
			switch {
			case tc.rule == "" && err != nil:
				t.Fatalf("CheckURL = %v, want it accepted", err)
			case tc.rule != "" && (err == nil || !strings.Contains(err.Error(), tc.rule)):
				t.Fatalf("CheckURL = %v, want an error stating %q", err, tc.rule)
			}
		})
	}
	if err := policy(t, "10.0.0.0/8").CheckURL("http://10.0.0.5/x"); err != nil {
		t.Errorf("allowed private literal: CheckURL = %v", err)
	}
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://example.com/x", "http://10.0.0.5/", "http://[::1]:80/", "ftp://x/",
		"http://u@h/", "http://h:0/", "http://h/#f", "http:opaque", "http://127.1/", "http://[fe80::1%25eth0]/",
		"HTTP://H/", "http://h:/", "http://%41/", "http://[::ffff:1.2.3.4]/", "//h/", ""} {
		f.Add(s)
	}
	p := &Policy{ownAddrs: noOwn}
	f.Fuzz(func(t *testing.T, raw string) {
		if p.CheckURL(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", raw, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("accepted %q with scheme %q", raw, u.Scheme)
		}
		if u.Hostname() == "" || u.User != nil || u.Fragment != "" {
			t.Fatalf("accepted %q: host %q, user %v, fragment %q", raw, u.Hostname(), u.User, u.Fragment)
		}
	})
}

// receiver is a callback endpoint on 127.0.0.1 that counts what reaches it.
type receiver struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	last *http.Request
	body []byte
}

func newReceiver(t *testing.T, answer http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		var buf bytes.Buffer
		buf.ReadFrom(req.Body)
		r.mu.Lock()
		r.last, r.body = req, buf.Bytes()
		r.mu.Unlock()
		if answer != nil {
			answer(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func TestSend(t *testing.T) {
	secret, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	body := []byte(`{"id":"job_1","status":"done"}`)
	loopback := policy(t, "127.0.0.0/8", "::1")

	t.Run("refused at dial without allow", func(t *testing.T) {
		r := newReceiver(t, nil)
		a := NewSender(secret, policy(t), 5*time.Second).Send(ctx, "POST", r.URL+"/hook", nil, "job_1", body)
		if a.OK() || a.Status != 0 || !strings.Contains(a.Error, "loopback address; allow it with callback_allow") {
			t.Fatalf("attempt %+v, want a loopback refusal", a)
		}
		if n := r.hits.Load(); n != 0 {
			t.Fatalf("%d requests reached the server", n)
		}
	})

	t.Run("host name checked after DNS", func(t *testing.T) {
		r := newReceiver(t, nil)
		u, _ := url.Parse(r.URL)
		a := NewSender(secret, policy(t), 5*time.Second).Send(ctx, "POST", "http://localhost:"+u.Port()+"/", nil, "job_1", body)
		if a.OK() || !strings.Contains(a.Error, "loopback") {
			t.Fatalf("attempt %+v, want a loopback refusal", a)
		}
		if n := r.hits.Load(); n != 0 {
			t.Fatalf("%d requests reached the server", n)
		}
	})

	for _, method := range []string{"POST", "PUT"} {
		t.Run("delivered "+method, func(t *testing.T) {
			r := newReceiver(t, nil)
			headers := map[string]string{
				"X-Trace":           "abc",
				"Authorization":     "Bearer t0ken",
				"content-type":      "text/plain",
				"Webhook-Id":        "forged",
				"webhook-signature": "v1,forged",
				"User-Agent":        "evil",
				"Host":              "evil.example",
				"X-Bad":             "a\r\nInjected: yes",
			}
			a := NewSender(secret, loopback, 5*time.Second).Send(ctx, method, r.URL+"/hook?x=1", headers, "job_1", body)
			if !a.OK() || a.Status != 200 || a.Error != "" {
				t.Fatalf("attempt %+v, want delivered", a)
			}
			if a.At.IsZero() || a.DurationMS < 0 {
				t.Errorf("attempt %+v lacks its time", a)
			}
			r.mu.Lock()
			req, got := r.last, r.body
			r.mu.Unlock()
			if err := Verify(secret, req.Header, got, 5*time.Minute, time.Now()); err != nil {
				t.Errorf("receiver's Verify: %v", err)
			}
			if req.Method != method || req.URL.RequestURI() != "/hook?x=1" || !bytes.Equal(got, body) {
				t.Errorf("got %s %s %q", req.Method, req.URL.RequestURI(), got)
			}
			for name, want := range map[string]string{
				"X-Trace": "abc", "Authorization": "Bearer t0ken", "Content-Type": "application/json",
				"Webhook-Id": "job_1", "User-Agent": "runbox-webhook", "Injected": "", "X-Bad": "",
			} {
				if v := req.Header.Get(name); v != want {
					t.Errorf("header %s = %q, want %q", name, v, want)
				}
			}
			if len(req.Header.Values("Webhook-Signature")) != 1 || req.Host != strings.TrimPrefix(r.URL, "http://") {
				t.Errorf("signature %q, host %q", req.Header.Values("Webhook-Signature"), req.Host)
			}
		})
	}

	t.Run("other method", func(t *testing.T) {
		r := newReceiver(t, nil)
		a := NewSender(secret, loopback, 5*time.Second).Send(ctx, "GET", r.URL, nil, "job_1", body)
		if a.OK() || !strings.Contains(a.Error, "POST or PUT") || r.hits.Load() != 0 {
			t.Fatalf("attempt %+v, %d hits", a, r.hits.Load())
		}
	})

	t.Run("no proxy", func(t *testing.T) {
		// An environment proxy would make the connection for us, to an
		// address the policy never sees.
		tr := NewSender(secret, loopback, time.Second).client.Transport.(*http.Transport)
		if tr.Proxy != nil || tr.DialContext == nil {
			t.Fatal("the transport may use a proxy or the default dialer")
		}
	})

	t.Run("bad URL", func(t *testing.T) {
		a := NewSender(secret, loopback, 5*time.Second).Send(ctx, "POST", "ftp://127.0.0.1/", nil, "job_1", body)
		if a.OK() || !strings.Contains(a.Error, "http or https") {
			t.Fatalf("attempt %+v", a)
		}
	})

	t.Run("redirect not followed", func(t *testing.T) {
		target := newReceiver(t, nil)
		r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
			http.Redirect(w, req, target.URL+"/elsewhere", http.StatusFound)
		})
		a := NewSender(secret, loopback, 5*time.Second).Send(ctx, "POST", r.URL, nil, "job_1", body)
		if a.OK() || a.Status != http.StatusFound || a.Error != "redirect not followed" {
			t.Fatalf("attempt %+v, want an unfollowed 302", a)
		}
		if r.hits.Load() != 1 || target.hits.Load() != 0 {
			t.Fatalf("hits: first %d, target %d; want 1, 0", r.hits.Load(), target.hits.Load())
		}
	})

	t.Run("server error", func(t *testing.T) {
		r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		})
		a := NewSender(secret, loopback, 5*time.Second).Send(ctx, "POST", r.URL, nil, "job_1", body)
		if a.OK() || a.Status != 500 || !strings.Contains(a.Error, "500") {
			t.Fatalf("attempt %+v, want a failed 500", a)
		}
	})

	t.Run("large answer", func(t *testing.T) {
		r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Write(bytes.Repeat([]byte("x"), 4<<20))
		})
		a := NewSender(secret, loopback, 5*time.Second).Send(ctx, "POST", r.URL, nil, "job_1", body)
		if !a.OK() {
			t.Fatalf("attempt %+v", a)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		r := newReceiver(t, func(_ http.ResponseWriter, req *http.Request) {
			select {
			case <-release:
			case <-req.Context().Done():
			}
		})
		t.Cleanup(func() { close(release) }) // runs before the server's Close
		a := NewSender(secret, loopback, 300*time.Millisecond).Send(ctx, "POST", r.URL, nil, "job_1", body)
		if a.OK() || !strings.Contains(a.Error, "timeout") {
			t.Fatalf("attempt %+v, want a timeout", a)
		}
		if a.DurationMS > 5000 {
			t.Errorf("took %d ms with a 300 ms timeout", a.DurationMS)
		}
	})

	t.Run("canceled by the caller", func(t *testing.T) {
		r := newReceiver(t, nil)
		c, cancel := context.WithCancel(ctx)
		cancel()
		a := NewSender(secret, loopback, 5*time.Second).Send(c, "POST", r.URL, nil, "job_1", body)
		if a.OK() || a.Error == "" || strings.Contains(a.Error, "timeout") {
			t.Fatalf("attempt %+v, want a cancellation", a)
		}
	})
}

func TestValidHeaders(t *testing.T) {
	many := map[string]string{}
	for i := range 17 {
		many[fmt.Sprintf("X-H%d", i)] = "v"
	}
	for _, tc := range []struct {
		name string
		h    map[string]string
		rule string // "" means valid
	}{
		{name: "none"},
		{name: "ordinary", h: map[string]string{"Authorization": "Bearer x", "X-Trace": "a\tb", "x-api-key": strings.Repeat("k", 1024)}},
		{name: "too many", h: many, rule: "at most 16"},
		{name: "space in name", h: map[string]string{"X Trace": "v"}, rule: "token"},
		{name: "colon in name", h: map[string]string{"X-A:": "v"}, rule: "token"},
		{name: "empty name", h: map[string]string{"": "v"}, rule: "token"},
		{name: "long name", h: map[string]string{strings.Repeat("X", 65): "v"}, rule: "longer than 64"},
		{name: "long value", h: map[string]string{"X-A": strings.Repeat("v", 1025)}, rule: "longer than 1024"},
		{name: "CRLF", h: map[string]string{"X-A": "v\r\nInjected: 1"}, rule: "CR, LF"},
		{name: "LF", h: map[string]string{"X-A": "v\nx"}, rule: "CR, LF"},
		{name: "NUL", h: map[string]string{"X-A": "v\x00"}, rule: "NUL"},
		{name: "Host", h: map[string]string{"Host": "x"}, rule: "reserved"},
		{name: "content-length", h: map[string]string{"content-length": "1"}, rule: "reserved"},
		{name: "Content-Type", h: map[string]string{"Content-Type": "text/plain"}, rule: "reserved"},
		{name: "Transfer-Encoding", h: map[string]string{"Transfer-Encoding": "chunked"}, rule: "reserved"},
		{name: "Connection", h: map[string]string{"CONNECTION": "close"}, rule: "reserved"},
		{name: "webhook-id", h: map[string]string{"webhook-id": "x"}, rule: "reserved"},
		{name: "Webhook-Signature", h: map[string]string{"Webhook-Signature": "v1,x"}, rule: "reserved"},
		{name: "twice", h: map[string]string{"X-A": "1", "x-a": "2"}, rule: "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidHeaders(tc.h)
			switch {
			case tc.rule == "" && err != nil:
				t.Fatalf("ValidHeaders = %v, want valid", err)
			case tc.rule != "" && (err == nil || !strings.Contains(err.Error(), tc.rule)):
				t.Fatalf("ValidHeaders = %v, want an error stating %q", err, tc.rule)
			}
			for name := range tc.h {
				if tc.rule != "" && len(tc.h) == 1 && name != "" && len(name) <= 64 && !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name header %q", err, name)
				}
			}
		})
	}
}
