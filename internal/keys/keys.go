// Package keys owns API keys: their records (a name, the SHA-256 of the
// secret, a quota), where they are kept (a file in the data directory, or
// a NATS KV bucket that every node of a cluster watches), and the keyring
// a server checks requests against, with each key's quota state.
//
// A secret is 32 random bytes; only its SHA-256 is stored, so a copy of
// the store lets nobody in. The secret is shown once, when it is made.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Prefix starts every secret, so that one found in a log or a repository
// is recognisable (secret scanners key on such prefixes).
const Prefix = "rbx_"

// maxName bounds a key's name.
const maxName = 64

// Sentinels.
var (
	ErrExists   = errors.New("a key of that name exists")
	ErrNotFound = errors.New("no key of that name")
)

// Key is one key's record as stored: never the secret itself.
type Key struct {
	Name    string    `json:"name"`
	Hash    string    `json:"sha256"` // hex SHA-256 of the secret
	Created time.Time `json:"created"`
	Quota   Quota     `json:"quota"`
}

// Quota is what one key may use. A zero field is no bound of the key's
// own (the server's bounds hold for every key).
type Quota struct {
	// RequestsPerSecond and Burst: a token bucket over every request the
	// key makes.
	RequestsPerSecond float64 `json:"requests_per_second,omitempty"`
	Burst             int     `json:"burst,omitempty"`
	// Boxes: programs running at once (runs, cases, session commands).
	Boxes int `json:"boxes,omitempty"`
	// CPUSecondsPerMinute: CPU time of the key's programs, refilled
	// continuously at this rate per minute, up to one minute's worth.
	CPUSecondsPerMinute float64 `json:"cpu_seconds_per_minute,omitempty"`
	// Sessions: sessions alive at once.
	Sessions int `json:"sessions,omitempty"`
	// Maxima: the highest limits a request of the key may ask; each is
	// capped by the server's own maxima.
	Maxima Maxima `json:"maxima,omitempty"`
}

// Maxima are the per-key ceilings of a request's limits (zero: the
// server's).
type Maxima struct {
	WallTime  time.Duration `json:"wall_time,omitempty"`
	CPUTime   time.Duration `json:"cpu_time,omitempty"`
	Memory    int64         `json:"memory,omitempty"`
	Processes int           `json:"processes,omitempty"`
}

// Check reports a quota that makes no sense.
func (q Quota) Check() error {
	switch {
	case q.RequestsPerSecond < 0 || q.Burst < 0 || q.Boxes < 0 || q.CPUSecondsPerMinute < 0 || q.Sessions < 0:
		return errors.New("quota values must not be negative")
	case q.Maxima.WallTime < 0 || q.Maxima.CPUTime < 0 || q.Maxima.Memory < 0 || q.Maxima.Processes < 0:
		return errors.New("maxima must not be negative")
	case q.Burst > 0 && q.RequestsPerSecond == 0:
		return errors.New("a burst needs requests_per_second")
	}
	return nil
}

// CheckName reports a name that cannot be a key's: 1–64 of a-z A-Z 0-9
// . _ - (it appears in logs, metrics labels and file names).
func CheckName(name string) error {
	if name == "" || len(name) > maxName {
		return fmt.Errorf("a key's name is 1 to %d characters", maxName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("a key's name has only letters, digits, '.', '_' and '-'; %q has %q", name, c)
		}
	}
	return nil
}

// New makes a key named name with quota q, and returns it with its secret
// (to be shown once).
func New(name string, q Quota) (Key, string, error) {
	if err := CheckName(name); err != nil {
		return Key{}, "", err
	}
	if err := q.Check(); err != nil {
		return Key{}, "", err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Key{}, "", err
	}
	secret := Prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return Key{Name: name, Hash: Hash(secret), Created: time.Now().UTC().Truncate(time.Second), Quota: q}, secret, nil
}

// Hash is the stored form of a secret. A secret has 256 random bits, so
// a plain SHA-256 is enough: there is nothing to guess.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Store keeps keys.
type Store interface {
	// List returns every key.
	List() ([]Key, error)
	// Add stores k; ErrExists when its name is taken.
	Add(k Key) error
	// Remove deletes the key named name; ErrNotFound when there is none.
	Remove(name string) error
}
