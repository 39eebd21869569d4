// Package sign owns the signatures of finished jobs: each node's Ed25519
// key, the statement a node signs about a job (Statement), and the check a
// client runs on a job it was served (VerifyJob). It knows nothing of HTTP
// or of how jobs are stored; it works on the job's JSON as served.
package sign

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Algorithm is the only signature algorithm: Ed25519 over the statement's
// text, with no pre-hashing.
const Algorithm = "ed25519"

// LoadOrCreateKey reads an Ed25519 private key (PEM "PRIVATE KEY", PKCS#8)
// from path, or creates one there (mode 0600) when it does not exist.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return parseKey(path, data)
}

func parseKey(path string, data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read key %s: no PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("read key %s: a %T, not an Ed25519 key", path, k)
	}
	return priv, nil
}

// createKey writes a new key to a temporary file in path's directory (0600
// from os.CreateTemp) and links it into place, so that path never holds
// half a key.
func createKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	// A link, unlike a rename, never replaces a key another process created
	// meanwhile: that key may already have signed jobs, so it is kept and
	// used instead of ours.
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read key %s: %w", path, err)
		}
		return parseKey(path, data)
	} else if err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	// Make the new name durable: a key lost in a crash after it signed jobs
	// would leave signatures that no published key verifies.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return priv, nil
}

// KeyID names a public key: "ed25519:" and the first 16 hex digits of the
// SHA-256 of its 32 bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return Algorithm + ":" + hex.EncodeToString(sum[:8])
}

// PublicKey is one entry of GET /v1/keys. Node is the node that holds the
// private key; "" or "?" when the key came without one (then VerifyJob
// cannot check that the signing node is the key's).
type PublicKey struct {
	KeyID     string `json:"key_id"`
	Node      string `json:"node"`
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key"` // base64 of the 32 bytes
}

// Public is node's entry for its key priv.
func Public(node string, priv ed25519.PrivateKey) PublicKey {
	pub := priv.Public().(ed25519.PublicKey)
	return PublicKey{KeyID: KeyID(pub), Node: node, Algorithm: Algorithm, PublicKey: base64.StdEncoding.EncodeToString(pub)}
}

// Signature is a job's signature block: the statement's exact text travels
// with its signature, so a verifier checks the bytes that were signed and
// then compares them with the job.
type Signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	Statement string `json:"statement"`
	Value     string `json:"value"` // base64
}

// Sign signs s with priv. It sets s.KeyID to priv's id, and refuses a
// statement Text refuses.
func Sign(priv ed25519.PrivateKey, s Statement) (Signature, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return Signature{}, fmt.Errorf("sign job %q: not an Ed25519 private key", s.JobID)
	}
	s.KeyID = KeyID(priv.Public().(ed25519.PublicKey))
	text, err := s.Text()
	if err != nil {
		return Signature{}, fmt.Errorf("sign job %q: %w", s.JobID, err)
	}
	value := ed25519.Sign(priv, []byte(text))
	return Signature{Algorithm: Algorithm, KeyID: s.KeyID, Statement: text, Value: base64.StdEncoding.EncodeToString(value)}, nil
}
