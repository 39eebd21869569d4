package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testKey is a fixed key, so that failures repeat.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

const (
	testRequest = `{"language":"python","files":[{"name":"main.py","content":"print('hello')"}]}`
	// testResult is spelled unlike encoding/json would: spaces, unsorted keys.
	testResult = `{ "language": "python", "version": "3.12", "cached": false, "compile": null,
	  "run": {"status": "ok", "exit_code": 3, "signal": null, "message": "", "stdout": "hello\n", "stderr": "",
	          "stdout_truncated": false, "stderr_truncated": false, "wall_time_ms": 12, "cpu_time_ms": 8, "memory_bytes": 1048576},
	  "cases": [],
	  "files": [{"name": "out.txt", "size": 3, "content": "aGkK"}, {"name": "a\nb\"c", "size": 0, "content": null}],
	  "files_truncated": false }`
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func testStatement(t *testing.T, result string) Statement {
	t.Helper()
	digest, files, err := ResultDigest([]byte(result))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 3, 14, 0, 0, 123456789, time.UTC)
	return Statement{
		JobID: "job-1", Node: "n1", Status: "done", RequestSHA256: sha(testRequest), ResultSHA256: digest, Files: files,
		CreatedAt: at, StartedAt: at.Add(time.Second), FinishedAt: at.Add(5 * time.Second),
	}
}

// signedJob is a job as GET /v1/jobs/{id} serves it, signed with priv.
func signedJob(t *testing.T, priv ed25519.PrivateKey, result string) map[string]any {
	t.Helper()
	st := testStatement(t, result)
	sig, err := Sign(priv, st)
	if err != nil {
		t.Fatal(err)
	}
	job := map[string]any{
		"id": st.JobID, "status": st.Status, "node": st.Node, "request_sha256": st.RequestSHA256,
		"created_at": st.CreatedAt.Format(time.RFC3339Nano), "started_at": st.StartedAt.Format(time.RFC3339Nano),
		"finished_at": st.FinishedAt.Format(time.RFC3339Nano), "signature": sig, "url": "/v1/jobs/job-1",
		"webhook": map[string]any{"attempts": 2},
	}
	if result != "" {
		job["result"] = json.RawMessage(result)
	}
	return roundTrip(t, job)
}

// roundTrip re-decodes v as the tests edit jobs: maps, numbers as text.
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keysOf(privs ...ed25519.PrivateKey) []PublicKey {
	var keys []PublicKey
	for _, p := range privs {
		keys = append(keys, Public("n1", p))
	}
	return keys
}

// flip changes the byte i of s (from the end when negative) to another
// of the same kind, so a hex digit stays a digit and base64 stays base64.
func flip(s string, i int) string {
	if i < 0 {
		i += len(s)
	}
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else if b[i] >= '0' && b[i] <= '9' {
		b[i] = '0' + (b[i]-'0'+1)%10
	} else {
		b[i] ^= 1
	}
	return string(b)
}

func TestSignKeyCreateAndLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	created, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	loaded, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created.Equal(loaded) {
		t.Fatal("loaded key differs from the created one")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key (no temporary file left)", len(entries))
	}
	pem, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(pem), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("key file is not a PEM PRIVATE KEY:\n%s", pem)
	}

	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("a file that is not a key loaded")
	}
	if _, err := LoadOrCreateKey(filepath.Join(dir, "no", "such", "dir", "k")); err == nil {
		t.Fatal("created a key in a directory that does not exist")
	}
}

// Processes starting together on a new node end up with one key: a key
// that already signed is never replaced.
func TestSignKeyCreateRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	keys := make([]ed25519.PrivateKey, 8)
	errs := make(chan error, len(keys))
	for i := range keys {
		go func() {
			var err error
			keys[i], err = LoadOrCreateKey(path)
			errs <- err
		}()
	}
	for range keys {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys[1:] {
		if !k.Equal(keys[0]) {
			t.Fatal("two callers got different keys")
		}
	}
}

func TestSignKeyID(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	if got, want := KeyID(pub), "ed25519:"+hex.EncodeToString(sum[:])[:16]; got != want {
		t.Fatalf("KeyID = %q, want %q", got, want)
	}
	if p := Public("n1", testKey(1)); p.KeyID != KeyID(pub) || p.Node != "n1" || p.Algorithm != "ed25519" {
		t.Fatalf("Public = %+v", p)
	}
}

func TestSignResultDigest(t *testing.T) {
	want, files, err := ResultDigest([]byte(testResult))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, []FileHash{{"out.txt", sha("hi\n")}, {"a\nb\"c", sha("")}}) {
		t.Fatalf("files %q", files)
	}
	// The same JSON spelled otherwise: compact and sorted, and indented.
	var v any
	if err := json.Unmarshal([]byte(testResult), &v); err != nil {
		t.Fatal(err)
	}
	compact, _ := json.Marshal(v)
	indented, _ := json.MarshalIndent(v, "\t", "    ")
	for _, same := range [][]byte{compact, indented} {
		if got, _, err := ResultDigest(same); err != nil || got != want {
			t.Errorf("digest of a re-encoding: %s, %v; want %s\n%s", got, err, want, same)
		}
	}

	for name, changed := range map[string]string{
		"stdout byte":    strings.Replace(testResult, `"hello\n"`, `"hellp\n"`, 1),
		"exit code":      strings.Replace(testResult, `"exit_code": 3`, `"exit_code": 4`, 1),
		"usage":          strings.Replace(testResult, `"wall_time_ms": 12`, `"wall_time_ms": 13`, 1),
		"number's text":  strings.Replace(testResult, `"wall_time_ms": 12`, `"wall_time_ms": 12.0`, 1),
		"file content":   strings.Replace(testResult, `"aGkK"`, `"aGkJ"`, 1),
		"file name":      strings.Replace(testResult, `"out.txt"`, `"out.txu"`, 1),
		"compile absent": strings.Replace(testResult, `"compile": null,`, ``, 1),
	} {
		t.Run(name, func(t *testing.T) {
			got, _, err := ResultDigest([]byte(changed))
			if err != nil {
				t.Fatal(err)
			}
			if got == want {
				t.Fatal("digest did not change")
			}
		})
	}

	null := sha("null")
	for _, in := range []string{"", "null", " null\n"} {
		if got, files, err := ResultDigest([]byte(in)); err != nil || got != null || files != nil {
			t.Errorf("ResultDigest(%q) = %s, %v, %v; want the digest of null", in, got, files, err)
		}
	}
	for name, bad := range map[string]string{
		"duplicate key":      `{"run": {"stdout": "a", "stdout": "b"}}`,
		"not an object":      `[1]`,
		"files not a list":   `{"files": {}}`,
		"file without name":  `{"files": [{"content": ""}]}`,
		"invalid base64":     `{"files": [{"name": "a", "content": "%%%"}]}`,
		"non-zero pad bits":  `{"files": [{"name": "a", "content": "aGl="}]}`,
		"trailing data":      `{} {}`,
		"nested too deep":    strings.Repeat("[", 100) + strings.Repeat("]", 100),
		"syntax error":       `{"a" 1}`,
		"content not string": `{"files": [{"name": "a", "content": 5}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := ResultDigest([]byte(bad)); err == nil {
				t.Fatalf("accepted %s", bad)
			}
		})
	}
}

func TestVerifyJob(t *testing.T) {
	priv := testKey(1)
	keys := keysOf(testKey(2), priv)
	job := signedJob(t, priv, testResult)
	if err := VerifyJob(encode(t, job), keys, []byte(testRequest)); err != nil {
		t.Fatalf("signed job: %v", err)
	}
	if err := VerifyJob(encode(t, job), keys, nil); err != nil {
		t.Fatalf("signed job, no request: %v", err)
	}
	for _, result := range []string{"", "null"} {
		cancelled := signedJob(t, priv, result)
		if err := VerifyJob(encode(t, cancelled), keys, nil); err != nil {
			t.Fatalf("job with result %q: %v", result, err)
		}
	}

	res := func(job map[string]any) map[string]any { return job["result"].(map[string]any) }
	run := func(job map[string]any) map[string]any { return res(job)["run"].(map[string]any) }
	file0 := func(job map[string]any) map[string]any { return res(job)["files"].([]any)[0].(map[string]any) }
	sig := func(job map[string]any) map[string]any { return job["signature"].(map[string]any) }
	for _, tc := range []struct {
		name     string
		edit     func(job map[string]any)
		want     []string // each must be a line of the error
		sigValid bool     // the signature itself still holds
	}{
		{"id", func(j map[string]any) { j["id"] = flip(j["id"].(string), -1) }, []string{`job id: signed "job-1", job says "job-2"`}, true},
		{"status", func(j map[string]any) { j["status"] = flip(j["status"].(string), 0) }, []string{`status: signed "done", job says "eone"`}, true},
		{"node", func(j map[string]any) { j["node"] = flip(j["node"].(string), -1) }, []string{`node: signed "n1", job says "n2"`}, true},
		{"created_at", func(j map[string]any) { j["created_at"] = flip(j["created_at"].(string), -2) }, []string{"created_at: signed 2026-12-03T14:00:00.123456789Z, "}, true},
		{"started_at", func(j map[string]any) { j["started_at"] = flip(j["started_at"].(string), 3) }, []string{"started_at: "}, true},
		{"finished_at", func(j map[string]any) { j["finished_at"] = flip(j["finished_at"].(string), -2) }, []string{"finished_at: "}, true},
		{"request_sha256", func(j map[string]any) { j["request_sha256"] = flip(j["request_sha256"].(string), 0) }, []string{"request_sha256: "}, true},
		{"run stdout", func(j map[string]any) { run(j)["stdout"] = flip(run(j)["stdout"].(string), 0) }, []string{"result: "}, true},
		{"run exit_code", func(j map[string]any) { run(j)["exit_code"] = json.Number("4") }, []string{"result: "}, true},
		{"usage", func(j map[string]any) { run(j)["memory_bytes"] = json.Number("1048577") }, []string{"result: "}, true},
		{"file content", func(j map[string]any) { file0(j)["content"] = flip(file0(j)["content"].(string), -1) },
			[]string{`file "out.txt": content differs from what was signed (sha256 ` + sha("hi\n") + ", job's " + sha("hi\t") + ")"}, true},
		{"file name", func(j map[string]any) { file0(j)["name"] = flip(file0(j)["name"].(string), 0) }, []string{`files[0].name: signed "out.txt", job says "nut.txt"`}, true},
		{"signature value", func(j map[string]any) { sig(j)["value"] = flip(sig(j)["value"].(string), 0) },
			[]string{"signature: does not match the statement for key " + KeyID(priv.Public().(ed25519.PublicKey))}, false},
		{"statement text", func(j map[string]any) {
			sig(j)["statement"] = strings.Replace(sig(j)["statement"].(string), "node: n1", "node: n2", 1)
		}, []string{"signature: does not match the statement for key ", `node: signed "n2", but key `, `node: signed "n2", job says "n1"`}, false},
		{"key_id", func(j map[string]any) { sig(j)["key_id"] = flip(sig(j)["key_id"].(string), -1) }, []string{"no key "}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := signedJob(t, priv, testResult)
			tc.edit(j)
			err := VerifyJob(encode(t, j), keys, nil)
			if err == nil {
				t.Fatal("VerifyJob passed")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, want := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, want)
				}
				if !found {
					t.Errorf("no line starting %q in:\n%v", want, err)
				}
			}
			if tc.sigValid && (len(lines) != 1 || strings.Contains(err.Error(), "signature")) {
				t.Errorf("want only the one mismatch, got:\n%v", err)
			}
		})
	}
}

func TestVerifyJobRefuses(t *testing.T) {
	priv := testKey(1)
	job := encode(t, signedJob(t, priv, testResult))
	wrongKey := Public("n1", testKey(2))
	for _, tc := range []struct {
		name    string
		job     []byte
		keys    []PublicKey
		request []byte
		want    string
	}{
		{"no keys", job, nil, nil, "no key "},
		{"another key", job, []PublicKey{wrongKey}, nil, "no key "},
		{"another key under the right id", job, []PublicKey{{KeyID: KeyID(priv.Public().(ed25519.PublicKey)), Node: "n1", Algorithm: "ed25519", PublicKey: wrongKey.PublicKey}}, nil, "the public key given under this id is"},
		{"key of another node", job, []PublicKey{Public("n7", priv)}, nil, `node: signed "n1", but key `},
		{"wrong request", job, keysOf(priv), []byte(testRequest + " "), "request: the request file's sha256 is "},
		{"empty request", job, keysOf(priv), []byte{}, "request: "},
		{"unsigned", []byte(`{"id":"job-1","status":"done"}`), keysOf(priv), nil, "job: not signed"},
		{"not JSON", []byte(`{"id":`), keysOf(priv), nil, "job: "},
		{"duplicate id", bytes.Replace(job, []byte(`"id": "job-1",`), []byte(`"id": "job-1", "id": "evil",`), 1), keysOf(priv), nil, `job: key "id" appears twice`},
		{"id of another type", bytes.Replace(job, []byte(`"id": "job-1",`), []byte(`"id": ["job-1"],`), 1), keysOf(priv), nil, `job id: signed "job-1", job says ["job-1"]`},
		{"result removed", bytes.Replace(job, []byte(`"result": {`), []byte(`"result": null, "x": {`), 1), keysOf(priv), nil, "files: signed 2, job has 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyJob(tc.job, tc.keys, tc.request)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
