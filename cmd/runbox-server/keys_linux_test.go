package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// keyedPost posts a run to a server with a key (none when "").
func keyedPost(t *testing.T, addr, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/run", strings.NewReader(`{"command":["/bin/echo","hi"]}`))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// API keys as an operator makes them: runbox keys beside a running runbox
// serve on the same data directory; the server sees each change without a
// restart, and never writes a key into its log.
func TestKeysCommand(t *testing.T) {
	needRoot(t)
	data := t.TempDir()
	if r := runbox(t, "", "keys", "list", "--data-dir", data); r.code != 0 || strings.TrimSpace(r.stdout) != "NAME  CREATED  QUOTA" {
		t.Fatalf("list with no keys: %+v", r)
	}
	for _, bad := range [][]string{{"keys"}, {"keys", "create"}, {"keys", "create", "a b", "--data-dir", data}, {"keys", "make", "x"},
		{"keys", "create", "x", "--rps", "-1", "--data-dir", data}, {"keys", "create", "x", "--max-memory", "lots"}} {
		if r := runbox(t, "", bad...); r.code != exitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: %+v", bad, r)
		}
	}

	s, err := startJobServe(t, "serve", "--data-dir", data, "--compat", "snekbox=127.0.0.1:0,opensandbox")
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop(t)
	if code, body := keyedPost(t, s.addr, ""); code != http.StatusOK {
		t.Fatalf("no keys yet, anonymous on loopback: %d %s", code, body)
	}
	if !strings.Contains(s.lines(), "no API keys") {
		t.Errorf("the start does not say it serves anonymous requests:\n%s", s.lines())
	}

	r := runbox(t, "", "keys", "create", "ci", "--rps", "50", "--boxes", "2", "--max-wall-time", "5s", "--data-dir", data)
	key := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(key, "rbx_") {
		t.Fatalf("create: %+v", r)
	}
	if r := runbox(t, "", "keys", "create", "ci", "--data-dir", data); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("a second key of one name: %+v", r)
	}
	if r := runbox(t, "", "keys", "list", "--data-dir", data); !strings.Contains(r.stdout, "ci ") || !strings.Contains(r.stdout, "--rps 50 --boxes 2 --max-wall-time 5s") || strings.Contains(r.stdout, key) {
		t.Errorf("list: %+v", r)
	}
	eventually(t, 10*time.Second, func() error {
		if code, body := keyedPost(t, s.addr, ""); code != http.StatusUnauthorized {
			return fmt.Errorf("without a key after one was made: %d %s", code, body)
		}
		return nil
	})
	if code, body := keyedPost(t, s.addr, key); code != http.StatusOK || !strings.Contains(body, `"stdout":"hi\n"`) {
		t.Fatalf("with the key: %d %s", code, body)
	}
	// A compatibility API, under its prefix and on its own listener,
	// takes the same keys (and its in-process native calls pass as its
	// client's).
	own := compatAddr(t, s.log(), "snekbox")
	for _, base := range []string{"http://" + s.addr + "/snekbox", "http://" + own} {
		for _, k := range []string{"", key} {
			req, _ := http.NewRequest("POST", base+"/eval", strings.NewReader(`{"input": "print(6*7)"}`))
			req.Header.Set("Content-Type", "application/json")
			if k != "" {
				req.Header.Set("X-Api-Key", k)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := map[bool]int{true: 401, false: 200}[k == ""]; resp.StatusCode != want || k != "" && !strings.Contains(string(b), `"stdout":"42\n"`) {
				t.Errorf("%s/eval with key %v: %d %s", base, k != "", resp.StatusCode, b)
			}
		}
	}
	// A second key, so that revoking the first leaves the server with
	// keys (with none it serves anonymous requests on loopback again).
	r = runbox(t, "", "keys", "create", "other", "--data-dir", data)
	other := strings.TrimSpace(r.stdout)
	if r.code != 0 {
		t.Fatalf("create other: %+v", r)
	}
	// An adapter that keeps state of its own (OpenSandbox lists the
	// sessions it made) shows each key only its own.
	osb := func(key, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+s.addr+"/opensandbox"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	eventually(t, 10*time.Second, func() error {
		if code, body := osb(other, "GET", "/sessions", ""); code != http.StatusOK {
			return fmt.Errorf("the second key: %d %s", code, body)
		}
		return nil
	})
	code, body := osb(key, "POST", "/sessions", `{}`)
	var made struct {
		ID string `json:"session_id"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &made) != nil || made.ID == "" {
		t.Fatalf("opensandbox session: %d %s", code, body)
	}
	if code, body := osb(other, "GET", "/sessions", ""); code != http.StatusOK || strings.Contains(body, made.ID) {
		t.Errorf("another key lists it: %d %s", code, body)
	}
	if code, body := osb(other, "GET", "/sessions/"+made.ID, ""); code != http.StatusNotFound {
		t.Errorf("another key reads it: %d %s", code, body)
	}
	if code, body := osb(key, "GET", "/sessions", ""); code != http.StatusOK || !strings.Contains(body, made.ID) {
		t.Errorf("its key does not list it after another key's list: %d %s", code, body)
	}
	if code, body := osb(key, "DELETE", "/sessions/"+made.ID, ""); code != http.StatusNoContent {
		t.Errorf("delete: %d %s", code, body)
	}
	if r := runbox(t, "", "keys", "revoke", "ci", "--data-dir", data); r.code != 0 {
		t.Fatalf("revoke: %+v", r)
	}
	eventually(t, 10*time.Second, func() error {
		if code, body := keyedPost(t, s.addr, key); code != http.StatusUnauthorized {
			return fmt.Errorf("a revoked key: %d %s", code, body)
		}
		return nil
	})
	if r := runbox(t, "", "keys", "revoke", "ci", "--data-dir", data); r.code != 1 {
		t.Errorf("revoking twice: %+v", r)
	}
	s.stop(t)
	if log := s.log(); strings.Contains(log, key) || strings.Contains(log, key[4:]) {
		t.Error("the server's log holds the key")
	}
	if !bytes.Contains([]byte(s.log()), []byte(`"key":"ci"`)) {
		t.Error("the server's request log does not name the key")
	}
}

// Beyond loopback, no keys means no start, unless allow_anonymous.
func TestNoKeysBeyondLoopback(t *testing.T) {
	needRoot(t)
	data := t.TempDir()
	r := runbox(t, "", "serve", "--listen", "0.0.0.0:0", "--data-dir", data)
	if r.code == 0 || !strings.Contains(r.stderr, "no API keys") || !strings.Contains(r.stderr, "allow_anonymous") {
		t.Fatalf("serve on 0.0.0.0 without keys: %+v", r)
	}
}

// compatAddr is the address of a compatibility API's own listener, from
// serve's log.
func compatAddr(t *testing.T, log, name string) string {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		var line struct{ Msg, API, Listening string }
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "compat" && line.API == name && line.Listening != "" {
			return line.Listening
		}
	}
	t.Fatalf("no listener of %s in the log", name)
	return ""
}
