// Package webhook delivers the result of an async job to the callback URL
// its user gave. It owns three things: the signing secret and the Standard
// Webhooks signature (https://www.standardwebhooks.com), the policy of
// which addresses a callback may reach, and the Sender whose HTTP client
// enforces that policy on the address it actually connects to. The URL is
// hostile input: Judge0's CVE-2024-29021 was an SSRF through its callbacks.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	secretPrefix   = "whsec_"
	minSecretBytes = 24 // the Standard Webhooks bounds
	maxSecretBytes = 64
	newSecretBytes = 32
)

// Secret is a webhook signing secret: "whsec_" + base64 (std encoding) of
// the raw key bytes, as Standard Webhooks writes it.
type Secret []byte

// ParseSecret reads a secret written as "whsec_" + base64 of 24 to 64 raw
// bytes. Its errors never echo the input: it is a secret.
func ParseSecret(s string) (Secret, error) {
	enc, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, errors.New("webhook secret must start with " + secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New("webhook secret must be standard base64 after " + secretPrefix)
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return nil, fmt.Errorf("webhook secret must be %d to %d bytes, got %d", minSecretBytes, maxSecretBytes, len(key))
	}
	return Secret(key), nil
}

// String writes the secret as ParseSecret reads it, whsec_...
func (s Secret) String() string { return secretPrefix + base64.StdEncoding.EncodeToString(s) }

// LogValue keeps the secret out of logs: slog prefers it to String.
func (s Secret) LogValue() slog.Value { return slog.StringValue(secretPrefix + "REDACTED") }

// GenerateSecret makes a secret of 32 random bytes.
func GenerateSecret() (Secret, error) {
	key := make([]byte, newSecretBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate webhook secret: %w", err)
	}
	return Secret(key), nil
}

// LoadOrCreateSecret reads the secret from path (file content is the whsec_
// string, trailing newline ok), or, when the file does not exist, generates
// one and writes it atomically (temp file in the same dir + rename), mode
// 0600. A file with mode bits for group/other is accepted but its content
// must parse.
func LoadOrCreateSecret(path string) (Secret, error) {
	if path == "" {
		return nil, errors.New("load webhook secret: empty path")
	}
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := ParseSecret(strings.TrimRight(string(b), "\r\n"))
		if err != nil {
			return nil, fmt.Errorf("load webhook secret %s: %w", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load webhook secret: %w", err)
	}
	s, err := GenerateSecret()
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(path, []byte(s.String()+"\n")); err != nil {
		return nil, fmt.Errorf("create webhook secret %s: %w", path, err)
	}
	return s, nil
}

// writeAtomic writes data to path so that no reader sees a partial file.
// CreateTemp opens with mode 0600, so the secret is never readable by others.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".whsec-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename durable, or a crash could bring back "no secret" and
	// the next start would sign with a key no receiver knows. Best effort.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Sign returns the webhook-signature header value
// "v1,<base64 HMAC-SHA256(secret, id + "." + unix seconds + "." + body)>".
func Sign(secret Secret, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(secret, id, ts.Unix(), body))
}

func mac(secret Secret, id string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, unix, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify is the receiver's check: headers webhook-id, webhook-timestamp,
// webhook-signature (space-separated list of "v1,sig" entries; any match
// passes; constant-time compare), timestamp within tolerance of now. Errors
// say which header or rule failed. The specification suggests a tolerance
// of 5 minutes.
func Verify(secret Secret, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id := h.Get("webhook-id")
	if id == "" {
		return errors.New("missing webhook-id header")
	}
	rawTS := h.Get("webhook-timestamp")
	if rawTS == "" {
		return errors.New("missing webhook-timestamp header")
	}
	unix, err := strconv.ParseInt(rawTS, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not unix seconds", rawTS)
	}
	// The timestamp is signed, so a bounded age stops replays of old deliveries.
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp is %s away from now, more than the tolerance of %s", d.Abs().Round(time.Second), tolerance)
	}
	sigs := strings.Fields(strings.Join(h.Values("webhook-signature"), " "))
	if len(sigs) == 0 {
		return errors.New("missing webhook-signature header")
	}
	want := mac(secret, id, unix, body)
	for _, entry := range sigs {
		version, enc, _ := strings.Cut(entry, ",")
		if version != "v1" {
			continue // other schemes (v1a, ...) are not ours to judge
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("webhook-signature: no v1 signature matches")
}
