package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/job/sign"
)

const verifyRequest = `{"language":"python","files":[{"name":"main.py","content":"print(1)"}]}`

// verifyFixture writes a signed job, its request and a /v1/keys answer to
// a temporary directory.
type verifyFixture struct {
	dir, job, request, keys string
	jobJSON                 []byte
	pub                     ed25519.PublicKey
	keyID                   string
}

func newVerifyFixture(t *testing.T) verifyFixture {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	result := `{"language":"python","version":"3.12","cached":false,"compile":null,` +
		`"run":{"status":"ok","exit_code":0,"signal":null,"message":"","stdout":"1\n","stderr":"","stdout_truncated":false,` +
		`"stderr_truncated":false,"wall_time_ms":20,"cpu_time_ms":15,"memory_bytes":4096},"cases":[],` +
		`"files":[{"name":"out.txt","size":3,"content":"aGkK"}],"files_truncated":false}`
	digest, files, err := sign.ResultDigest([]byte(result))
	if err != nil {
		t.Fatal(err)
	}
	reqSum := sha256.Sum256([]byte(verifyRequest))
	at := time.Date(2026, 12, 3, 14, 0, 0, 123456789, time.UTC)
	st := sign.Statement{JobID: "job-1", Node: "n1", Status: "done", RequestSHA256: hex.EncodeToString(reqSum[:]),
		ResultSHA256: digest, Files: files, CreatedAt: at, StartedAt: at.Add(time.Second), FinishedAt: at.Add(2 * time.Second)}
	sig, err := sign.Sign(priv, st)
	if err != nil {
		t.Fatal(err)
	}
	job, err := json.Marshal(map[string]any{
		"id": st.JobID, "status": st.Status, "node": st.Node, "request_sha256": st.RequestSHA256,
		"created_at": st.CreatedAt, "started_at": st.StartedAt, "finished_at": st.FinishedAt,
		"result": json.RawMessage(result), "signature": sig, "url": "/v1/jobs/job-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := json.Marshal(map[string]any{"keys": []sign.PublicKey{sign.Public("n1", priv)}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := verifyFixture{dir: dir, job: filepath.Join(dir, "job.json"), request: filepath.Join(dir, "request.json"),
		keys: filepath.Join(dir, "keys.json"), jobJSON: job, pub: priv.Public().(ed25519.PublicKey), keyID: sig.KeyID}
	for name, data := range map[string][]byte{f.job: job, f.request: []byte(verifyRequest), f.keys: keys} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// write puts data in a file of the fixture's directory.
func (f verifyFixture) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func verify(t *testing.T, stdin []byte, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := realMain(append([]string{"verify"}, args...), bytes.NewReader(stdin), &out, &errb)
	return cliResult{code, out.String(), errb.String()}
}

func keysServer(t *testing.T, status int, body []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/keys" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestVerifyOK(t *testing.T) {
	f := newVerifyFixture(t)
	keys, _ := os.ReadFile(f.keys)
	key := base64.StdEncoding.EncodeToString(f.pub)
	for _, tc := range []struct {
		name  string
		args  []string
		stdin []byte
		node  string
	}{
		{"keys file", []string{"--keys", f.keys, f.job}, nil, "n1"},
		{"key", []string{"--key", key, f.job}, nil, "n1"},
		{"key among others", []string{"--key", base64.StdEncoding.EncodeToString(make([]byte, 32)), "--key", key, f.job}, nil, "n1"},
		{"request", []string{"--keys", f.keys, "--request", f.request, f.job}, nil, "n1"},
		{"stdin", []string{"--key", key, "-"}, f.jobJSON, "n1"},
		{"server", []string{"--server", keysServer(t, 200, keys), f.job}, nil, "n1"},
		{"server with a slash", []string{"--server", keysServer(t, 200, keys) + "/", f.job}, nil, "n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := verify(t, tc.stdin, tc.args...)
			want := "ok: job job-1 signed by " + f.keyID + " (node " + tc.node + ")\n"
			if r.code != 0 || r.stdout != want || r.stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", r.code, r.stdout, r.stderr, want)
			}
		})
	}
}

func TestVerifyTampered(t *testing.T) {
	f := newVerifyFixture(t)
	keys, _ := os.ReadFile(f.keys)
	tampered := f.write(t, "tampered.json", bytes.Replace(f.jobJSON, []byte(`"stdout":"1\n"`), []byte(`"stdout":"2\n"`), 1))
	for _, tc := range []struct {
		name string
		args []string
		want []string // the lines of stderr
	}{
		{"result", []string{"--keys", f.keys, tampered}, []string{"runbox verify: result: stdout, stderr, exit code, usage or another of its fields differs from what was signed"}},
		{"request", []string{"--keys", f.keys, "--request", f.write(t, "other.json", []byte("{}")), f.job}, []string{"runbox verify: request: the request file's sha256 is "}},
		{"two parts", []string{"--keys", f.keys, f.write(t, "two.json", bytes.Replace(bytes.Replace(f.jobJSON,
			[]byte(`"stdout":"1\n"`), []byte(`"stdout":"2\n"`), 1), []byte(`"node":"n1"`), []byte(`"node":"n9"`), 1))},
			[]string{`runbox verify: node: signed "n1", job says "n9"`, "runbox verify: result: "}},
		{"unknown key", []string{"--key", base64.StdEncoding.EncodeToString(make([]byte, 32)), f.job}, []string{`runbox verify: no key "` + f.keyID + `" among the keys given`}},
		{"server answers 500", []string{"--server", keysServer(t, 500, keys), f.job}, []string{"runbox verify: get keys: GET "}},
		{"server answers no keys", []string{"--server", keysServer(t, 200, []byte(`{}`)), f.job}, []string{"runbox verify: get keys: GET "}},
		{"unsigned", []string{"--keys", f.keys, f.write(t, "unsigned.json", []byte(`{"id":"job-1"}`))}, []string{"runbox verify: job: not signed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := verify(t, nil, tc.args...)
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if r.code != 1 || r.stdout != "" || len(lines) != len(tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %d lines", r.code, r.stdout, r.stderr, len(tc.want))
			}
			for i, want := range tc.want {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d: %q, want it to start %q", i, lines[i], want)
				}
			}
		})
	}
}

func TestVerifyUsageErrors(t *testing.T) {
	f := newVerifyFixture(t)
	missing := filepath.Join(f.dir, "missing.json")
	for name, args := range map[string][]string{
		"nothing":          {},
		"no job":           {"--keys", f.keys},
		"two jobs":         {"--keys", f.keys, f.job, f.job},
		"unknown flag":     {"--no-such-flag", f.job},
		"key not base64":   {"--key", "not base64!", f.job},
		"key of 31 bytes":  {"--key", base64.StdEncoding.EncodeToString(make([]byte, 31)), f.job},
		"no such job":      {"--keys", f.keys, missing},
		"no such keys":     {"--keys", missing, f.job},
		"keys not JSON":    {"--keys", f.write(t, "bad-keys.json", []byte("[")), f.job},
		"no such request":  {"--keys", f.keys, "--request", missing, f.job},
		"server no scheme": {"--server", "127.0.0.1:8080", f.job},
		"server ftp":       {"--server", "ftp://example.com", f.job},
	} {
		t.Run(name, func(t *testing.T) {
			r := verify(t, nil, args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d (stderr %q)", r.code, exitUsage, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "runbox verify: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("want one line on stderr, got %q", r.stderr)
			}
		})
	}
	if r := verify(t, nil, "-h"); r.code != 0 || !strings.Contains(r.stderr, "usage: runbox verify") {
		t.Fatalf("-h: exit %d, stderr %q", r.code, r.stderr)
	}
}
