package api

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/job"
	"github.com/runbox-dev/runbox/internal/relay"
	"github.com/runbox-dev/runbox/internal/session"
)

// twoNodes serves two APIs, nodes a and b, each with its own sessions,
// joined by a relay over one NATS server.
func twoNodes(t *testing.T) (urlA, urlB string, mA *session.Manager) {
	t.Helper()
	emb, err := job.StartEmbedded(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	node := func(name string) (string, *session.Manager) {
		cfg := testConfig()
		cfg.Node, cfg.MaxFilesBytes = name, 8<<20
		url, m, srv := sessionServerWith(t, cfg, session.Config{})
		nc, err := emb.Connect(name)
		if err != nil {
			t.Fatal(err)
		}
		rl, err := relay.New(context.Background(), nc, name, srv.Handler(), time.Minute, 1, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		srv.UseRelay(rl)
		// Sessions end first (releasing their records), then the relay.
		t.Cleanup(func() {
			rl.Close()
			nc.Close()
		})
		t.Cleanup(m.Close)
		return url, m
	}
	urlA, mA = node("a")
	urlB, _ = node("b")
	return urlA, urlB, mA
}

// A session made on one node is used through another: commands, files,
// an attached socket; deleted there, it is gone everywhere.
func TestSessionForwardedToItsNode(t *testing.T) {
	urlA, urlB, mA := twoNodes(t)
	id, _ := newSession(t, urlA, nil)
	if _, err := mA.Get(id); err != nil {
		t.Fatal("the session is not on node a")
	}
	res := command(t, urlB, id, map[string]any{"command": []string{"sh", "-c", "echo $((6*7)) > /box/n; cat /box/n"}})
	wantResult(t, res, "ok", "42\n")
	// A file of 5 MiB both ways, through b.
	blob := []byte(strings.Repeat("runbox-relay-", 5<<20/13))
	expect(t, call(t, "PUT", urlB+"/v1/sessions/"+id+"/files/box/blob", blob), http.StatusNoContent)
	got := call(t, "GET", urlA+"/v1/sessions/"+id+"/files/box/blob", nil)
	back := call(t, "GET", urlB+"/v1/sessions/"+id+"/files/box/blob", nil)
	if sha256.Sum256(got.raw) != sha256.Sum256(blob) || sha256.Sum256(back.raw) != sha256.Sum256(blob) {
		t.Fatalf("the file came back with %d and %d bytes, want %d", len(got.raw), len(back.raw), len(blob))
	}
	// An attached socket through b.
	w, _ := attach(t, mA, urlB, id, map[string]any{"type": "start", "command": []string{"cat"}})
	s := &screen{}
	w.send(t, map[string]any{"type": "stdin", "data": "through the relay\n"})
	w.until(t, s, shows("stdout", "through the relay\n"))
	w.send(t, map[string]any{"type": "close_stdin"})
	// Deleted through b: gone on a, and b answers 404 itself.
	expect(t, call(t, "DELETE", urlB+"/v1/sessions/"+id, nil), http.StatusNoContent)
	if _, err := mA.Get(id); err == nil {
		t.Fatal("the session still lives on a")
	}
	eventually(t, 10*time.Second, func() error {
		r := call(t, "GET", urlB+"/v1/sessions/"+id, nil)
		if r.code != http.StatusNotFound {
			return errStatus(r.code)
		}
		return nil
	})
	expectProblem(t, call(t, "GET", urlA+"/v1/sessions/"+id, nil), http.StatusNotFound, "path.id")
	// An id no node holds is a 404 from the node asked.
	expectProblem(t, call(t, "GET", urlB+"/v1/sessions/"+strings.Repeat("0", 32), nil), http.StatusNotFound, "path.id")
}

type errStatus int

func (e errStatus) Error() string { return http.StatusText(int(e)) }
