package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/internal/boxtest"
)

// post sends a JSON body and decodes the answer into out (when not nil).
func post(t *testing.T, client *http.Client, url, body string, want int, out any) {
	t.Helper()
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %d %s (want %d)", url, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("POST %s: %v in %s", url, err, b)
		}
	}
}

// openSessions creates n sessions, each with two background sleepers (one
// of them started in a new session and process group of its own, trying to
// outlive the command that started it).
func openSessions(t *testing.T, client *http.Client, addr, marker string, n int) {
	t.Helper()
	for range n {
		var s struct{ ID string }
		post(t, client, "http://"+addr+"/v1/sessions", `{}`, http.StatusCreated, &s)
		for _, cmd := range []string{
			fmt.Sprintf(`{"command":["sleep",%q],"background":true,"limits":{"wall_time_ms":600000}}`, marker),
			fmt.Sprintf(`{"shell":"setsid sleep %s </dev/null >/dev/null 2>&1 & echo started","limits":{"wall_time_ms":5000}}`, marker),
		} {
			want := http.StatusAccepted
			if !strings.Contains(cmd, "background") {
				want = http.StatusOK
			}
			post(t, client, "http://"+addr+"/v1/sessions/"+s.ID+"/commands", cmd, want, nil)
		}
	}
}

// awaitSleepers waits up to 10 s for n sleepers with marker to run and
// returns how many run.
func awaitSleepers(marker string, n int) int {
	deadline := time.Now().Add(10 * time.Second)
	for countSleepers(marker) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return countSleepers(marker)
}

// kill -9 of runbox serve with live sessions leaves none of their
// processes behind, and the next start sweeps their cgroups.
func TestServeKilledWithSessions(t *testing.T) {
	needRoot(t)
	srv, addr, _ := startServe(t, "--max-boxes", "2")
	marker := fmt.Sprintf("301.%d", os.Getpid())
	client := &http.Client{Timeout: time.Minute}
	const sessions = 3
	openSessions(t, client, addr, marker, sessions)
	// The detached sleepers were killed with their command: one sleeper
	// per session is left, the background command (which may still be
	// on its way to exec when its 202 arrives).
	if n := awaitSleepers(marker, sessions); n != sessions {
		t.Fatalf("%d sleepers run; want %d (the background commands; a command's detached children die with it)", n, sessions)
	}
	pid := srv.Process.Pid
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	boxtest.WaitUntil(t, 30*time.Second, func() bool { return countSleepers(marker) == 0 && len(boxProcesses(pid)) == 0 })
	if len(runboxCgroups(t, pid)) == 0 {
		t.Fatal("the killed server left no cgroups: nothing for the next start to sweep")
	}
	srv2, _, exited := startServe(t, "--max-boxes", "2")
	if left := runboxCgroups(t, pid); len(left) != 0 {
		t.Fatalf("the next start left the dead server's cgroups: %v", left)
	}
	client.CloseIdleConnections()
	stopServe(t, srv2, exited)
}

// SIGTERM ends every session: their processes die and the server exits.
func TestServeStopEndsSessions(t *testing.T) {
	needRoot(t)
	srv, addr, exited := startServe(t, "--max-boxes", "2")
	marker := fmt.Sprintf("302.%d", os.Getpid())
	client := &http.Client{Timeout: time.Minute}
	openSessions(t, client, addr, marker, 2)
	if n := awaitSleepers(marker, 2); n != 2 {
		t.Fatalf("%d sleepers run; want 2", n)
	}
	pid := srv.Process.Pid
	client.CloseIdleConnections()
	stopServe(t, srv, exited)
	if n := countSleepers(marker); n != 0 {
		t.Fatalf("%d sleepers outlived the server", n)
	}
	if p := boxProcesses(pid); len(p) != 0 {
		t.Fatalf("box processes outlived the server: %v", p)
	}
	if left := runboxCgroups(t, pid); len(left) != 0 {
		t.Fatalf("a clean stop left cgroups: %v", left)
	}
}
