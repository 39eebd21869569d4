package compat_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/runbox-dev/runbox/internal/compat"
	"github.com/runbox-dev/runbox/internal/compat/compattest"
)

func TestMain(m *testing.M) { compattest.Main(m) }

// An adapter calls the native API in process: a run's answer, and a bad
// request's problem with its field.
func TestNativeCall(t *testing.T) {
	url := compattest.Server(t, compattest.Config(), "/echo", func(n *compat.Native) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var out struct {
				Run struct {
					Stdout string `json:"stdout"`
				} `json:"run"`
			}
			body := map[string]any{"command": []string{"echo", r.URL.Query().Get("say")}}
			if r.URL.Path == "/bad" {
				body = map[string]any{}
			}
			_, err := n.Call(r.Context(), "POST", "/v1/run", nil, body, &out)
			var p *compat.Problem
			if errors.As(err, &p) {
				w.WriteHeader(599)
				_ = json.NewEncoder(w).Encode(map[string]any{"status": p.Status, "error": p.Error()})
				return
			}
			if err != nil {
				t.Error(err)
			}
			_, _ = io.WriteString(w, out.Run.Stdout)
		})
	})
	resp, err := http.Get(url + "/echo/run?say=hi")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hi\n" {
		t.Fatalf("answer %q", b)
	}
	resp, err = http.Get(url + "/echo/bad")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 599 || !strings.Contains(string(b), `"status":422`) || !strings.Contains(string(b), "body.language") {
		t.Fatalf("bad request: %d %s", resp.StatusCode, b)
	}
}
