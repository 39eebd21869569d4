package sign

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// VerifyJob checks a job's JSON, as GET /v1/jobs/{id} serves it, against
// keys. It finds the signing key by its id, checks the signature over the
// statement's text, then compares each field of the statement with what
// the job says, recomputing the result's digest and each file's hash from
// the job's own result; with requestBody (non-nil) it also checks the
// request's SHA-256. It returns nil, or an error that lists every problem
// found, one a line, each naming the part ("job id: …", "file …: …",
// "signature: …").
//
// Fields are read by their exact names, and an object with a key twice is
// refused, so what is checked is what any JSON reader of the job sees.
func VerifyJob(job []byte, keys []PublicKey, requestBody []byte) error {
	v, err := decodeJSON(job)
	if err != nil {
		return fmt.Errorf("job: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return errors.New("job: not a JSON object")
	}
	block, ok := obj["signature"].(map[string]any)
	if !ok {
		return errors.New("job: not signed (no signature object)")
	}
	var sig Signature
	for _, f := range []struct {
		key string
		dst *string
	}{{"algorithm", &sig.Algorithm}, {"key_id", &sig.KeyID}, {"statement", &sig.Statement}, {"value", &sig.Value}} {
		if *f.dst, ok = block[f.key].(string); !ok {
			return fmt.Errorf("signature: %s is not a string", f.key)
		}
	}
	if sig.Algorithm != Algorithm {
		return fmt.Errorf("signature: algorithm %s, want %s", jsonText(sig.Algorithm), Algorithm)
	}
	pub, key, err := findKey(keys, sig.KeyID)
	if err != nil {
		return err
	}

	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	value, err := base64.StdEncoding.DecodeString(sig.Value)
	if err != nil || !ed25519.Verify(pub, []byte(sig.Statement), value) {
		add("signature: does not match the statement for key %s", sig.KeyID)
	}
	st, err := ParseStatement(sig.Statement)
	if err != nil {
		add("%v", err)
		return errors.New(strings.Join(problems, "\n"))
	}
	if st.KeyID != sig.KeyID {
		add("key_id: signed %q, the signature block says %q", st.KeyID, sig.KeyID)
	}
	if key.Node != "" && key.Node != "?" && key.Node != st.Node {
		add("node: signed %q, but key %s belongs to node %s", st.Node, sig.KeyID, jsonText(key.Node))
	}
	same := func(part, signed string, got any) {
		if s, ok := got.(string); !ok || s != signed {
			add("%s: signed %q, job says %s", part, signed, jsonText(got))
		}
	}
	same("job id", st.JobID, obj["id"])
	same("status", st.Status, obj["status"])
	same("node", st.Node, obj["node"])
	same("request_sha256", st.RequestSHA256, obj["request_sha256"])
	if requestBody != nil {
		if sum := sha256.Sum256(requestBody); hex.EncodeToString(sum[:]) != st.RequestSHA256 {
			add("request: the request file's sha256 is %x, signed %s", sum, st.RequestSHA256)
		}
	}
	checkResult(obj["result"], st, add)
	for _, f := range []struct {
		key    string
		signed time.Time
	}{{"created_at", st.CreatedAt}, {"started_at", st.StartedAt}, {"finished_at", st.FinishedAt}} {
		if got, ok := jobTime(obj[f.key]); !ok || !got.Equal(f.signed) {
			add("%s: signed %s, job says %s", f.key, timeText(f.signed), jsonText(obj[f.key]))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// findKey is the key of id among keys, checked to be an Ed25519 key whose
// own id is id: a key list that named one node's key with another's id
// would otherwise pass it off as that key.
func findKey(keys []PublicKey, id string) (ed25519.PublicKey, PublicKey, error) {
	for _, k := range keys {
		if k.KeyID != id {
			continue
		}
		pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize || (k.Algorithm != "" && k.Algorithm != Algorithm) {
			return nil, k, fmt.Errorf("key %s: not a base64 Ed25519 public key", id)
		}
		if own := KeyID(pub); own != id {
			return nil, k, fmt.Errorf("key %s: the public key given under this id is %s", id, own)
		}
		return pub, k, nil
	}
	return nil, PublicKey{}, fmt.Errorf("no key %s among the keys given", jsonText(id))
}

// checkResult compares the job's result with the signed digest and files.
// The digest covers the files' names and hashes too: when only files
// differ, putting the signed ones back tells whether anything else did.
func checkResult(result any, st Statement, add func(string, ...any)) {
	files, objs, err := hashFiles(result)
	if err != nil {
		add("%v", err)
		return
	}
	for i := range min(len(files), len(st.Files)) {
		signed, got := st.Files[i], files[i]
		if got.Name != signed.Name {
			add("files[%d].name: signed %s, job says %s", i, jsonText(signed.Name), jsonText(got.Name))
		}
		if got.SHA256 != signed.SHA256 {
			add("file %s: content differs from what was signed (sha256 %s, job's %s)", jsonText(signed.Name), signed.SHA256, got.SHA256)
		}
	}
	if len(files) != len(st.Files) {
		add("files: signed %d, job has %d", len(st.Files), len(files))
		return
	}
	for i, o := range objs {
		o["name"], o["content"] = st.Files[i].Name, st.Files[i].SHA256
	}
	if digest(result) != st.ResultSHA256 {
		add("result: stdout, stderr, exit code, usage or another of its fields differs from what was signed")
	}
}

// jobTime reads a time of the job: null or absent is the zero time.
func jobTime(v any) (time.Time, bool) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, true
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		return t, err == nil
	}
	return time.Time{}, false
}
