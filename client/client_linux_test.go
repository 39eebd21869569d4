package client_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/client"
	"github.com/runbox-dev/runbox/internal/testwait"
)

func TestRun(t *testing.T) {
	c := testServer(t)
	ctx := testContext(t)
	res, err := c.Run(ctx, client.RunRequest{
		Language: "bash",
		Files:    []client.File{{Name: "main.sh", Content: `read x; echo "out $x"; echo err >&2; printf '\377'; exit 3`}},
		Stdin:    "hello\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Run
	if r == nil || r.Status != client.StatusRuntimeError || r.ExitCode != 3 || r.Stderr != "err\n" {
		t.Fatalf("run = %+v", r)
	}
	if got := r.StdoutBytes(); !bytes.Equal(got, []byte("out hello\n\xff")) {
		t.Errorf("stdout bytes %q", got)
	}
	if res.Language != "bash" || res.Compile != nil {
		t.Errorf("language %q, compile %+v", res.Language, res.Compile)
	}
}

func TestRunCompileError(t *testing.T) {
	c := testServer(t)
	available(t, c, "c")
	res, err := c.Run(testContext(t), client.RunRequest{
		Language: "c",
		Files:    []client.File{{Name: "main.c", Content: "int main( {"}},
	})
	if err != nil {
		t.Fatalf("a compile error is a result, not an error: %v", err)
	}
	if res.Compile == nil || res.Compile.Status == client.StatusOK || res.Compile.Stderr == "" {
		t.Fatalf("compile = %+v", res.Compile)
	}
	if res.Run != nil {
		t.Errorf("a failed compile ran: %+v", res.Run)
	}
}

func TestProblems(t *testing.T) {
	c := testServer(t)
	ctx := testContext(t)
	file := []client.File{{Name: "main.py", Content: "print(1)"}}
	for _, tc := range []struct {
		name     string
		req      client.RunRequest
		status   int
		location string
	}{
		{"unsafe file name", client.RunRequest{Language: "python", Files: []client.File{{Name: "../x.py", Content: "1"}}}, 422, "body.files[0].name"},
		{"limit above the maxima", client.RunRequest{Language: "python", Files: file, Limits: &client.Limits{WallTimeMS: 3_600_000}}, 422, "body.limits.wall_time_ms"},
		{"unknown language", client.RunRequest{Language: "intercal", Files: file}, 422, "body.language"},
		{"bad encoding", client.RunRequest{Language: "python", Files: []client.File{{Name: "main.py", Content: "!", Encoding: "base64"}}}, 422, "body.files[0].content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Run(ctx, tc.req)
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *client.Error", err, err)
			}
			if e.Status != tc.status || e.Field(tc.location) == nil || e.RequestID == "" {
				t.Fatalf("error %+v, want %d at %s", e, tc.status, tc.location)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.location+": ") || !strings.Contains(msg, e.Field(tc.location).Message) {
				t.Errorf("Error() = %q: names neither the field nor the rule", msg)
			}
		})
	}
	t.Run("no such session", func(t *testing.T) {
		_, err := c.Session(ctx, "0123456789abcdef0123456789abcdef")
		var e *client.Error
		if !errors.As(err, &e) || e.Status != http.StatusNotFound {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("stream refused", func(t *testing.T) {
		s, err := c.RunStream(ctx, client.RunRequest{Language: "python", Files: []client.File{{Name: "/etc/x", Content: "1"}}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.Wait(ctx, nil, nil)
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 422 || e.Field("body.files[0].name") == nil {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRunStream(t *testing.T) {
	c := testServer(t)
	ctx := testContext(t)
	s, err := c.RunStream(ctx, client.RunRequest{Command: []string{"/bin/sh", "-c", "echo ready; read x; echo got $x; echo e >&2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The program's first line arrives before it has its input: the
	// output is live.
	var stages []string
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == client.EventStage {
			stages = append(stages, ev.Stage)
			continue
		}
		if ev.Type != client.EventStdout || string(ev.Data) != "ready\n" {
			t.Fatalf("event %+v, want stdout ready", ev)
		}
		break
	}
	if err := s.Stdin(ctx, []byte("abc\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseStdin(ctx); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	last, err := s.Wait(ctx, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if last.Type != client.EventDone || last.Response == nil || last.Response.Run == nil {
		t.Fatalf("last event %+v", last)
	}
	if r := last.Response.Run; r.Status != client.StatusOK || r.Stdout != "ready\ngot abc\n" {
		t.Errorf("run = %+v", r)
	}
	if stdout.String() != "got abc\n" || stderr.String() != "e\n" || strings.Join(stages, ",") != "run" {
		t.Errorf("streamed stdout %q, stderr %q, stages %v", &stdout, &stderr, stages)
	}
	if _, err := s.Next(ctx); err == nil {
		t.Error("an event after done")
	}
}

func TestSession(t *testing.T) {
	c := testServer(t, client.WithToken("not-checked-yet"), client.WithHTTPClient(&http.Client{Timeout: time.Minute}))
	ctx := testContext(t)
	ss, err := c.CreateSession(ctx, client.SessionRequest{
		Env:   map[string]string{"GREETING": "hi"},
		Files: []client.File{{Name: "data.txt", Content: "first\n"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := ss.ID
	if ss.Cwd != "/box" || ss.Env["GREETING"] != "hi" {
		t.Errorf("session = %+v", ss)
	}

	// A command, with the session's files and environment.
	res, err := c.RunCommand(ctx, id, client.CommandRequest{Shell: `cat data.txt; echo "$GREETING" > made.txt`})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != client.StatusOK || res.Stdout != "first\n" {
		t.Fatalf("command = %+v", res)
	}

	// Files: a round trip of exact bytes, a listing, a delete.
	blob := []byte("bin\x00\xff\xfe\n")
	if err := c.PutFile(ctx, id, "/box/dir/blob.bin", blob, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetFile(ctx, id, "/box/dir/blob.bin")
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("GetFile = %q, %v", got, err)
	}
	if got, err := c.GetFile(ctx, id, "/box/made.txt"); err != nil || string(got) != "hi\n" {
		t.Fatalf("a command's file = %q, %v", got, err)
	}
	list, err := c.ListFiles(ctx, id, "/box/dir")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Entries) != 1 || list.Entries[0].Name != "blob.bin" || list.Entries[0].Size != int64(len(blob)) || list.Entries[0].Mode != "0600" {
		t.Errorf("listing = %+v", list)
	}
	if err := c.DeleteFile(ctx, id, "/box/dir/blob.bin"); err != nil {
		t.Fatal(err)
	}
	var e *client.Error
	if _, err := c.GetFile(ctx, id, "/box/dir/blob.bin"); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Errorf("deleted file: %v", err)
	}
	if err := c.PutFile(ctx, id, "/etc/passwd", blob, 0); err == nil {
		t.Error("a path outside /box and /tmp was sent")
	}

	// A command on a socket, its stdin fed from here, then attached again.
	s, err := c.Attach(ctx, id, client.StartRequest{Command: []string{"/bin/sh", "-c", "read x; echo got $x; echo oops >&2; exit 4"}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.Next(ctx)
	if err != nil || ev.Type != client.EventStarted || ev.CommandID == "" {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	cid := ev.CommandID
	if err := s.Stdin(ctx, []byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	last, err := s.Wait(ctx, &out, &errOut)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if last.Type != client.EventExit || last.Result.ExitCode != 4 || out.String() != "got ping\n" || errOut.String() != "oops\n" {
		t.Fatalf("exit %+v, stdout %q, stderr %q", last.Result, &out, &errOut)
	}
	s, err = c.AttachTo(ctx, id, cid)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if last, err = s.Wait(ctx, &out, nil); err != nil || last.Result.ExitCode != 4 || out.String() != "got ping\n" {
		t.Fatalf("attached again: %+v, %q, %v", last, &out, err)
	}
	s.Close()

	// A terminal.
	s, err = c.Attach(ctx, id, client.StartRequest{Shell: "stty size; test -t 0 && echo tty", PTY: &client.PTYSize{Rows: 30, Cols: 100}})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	last, err = s.Wait(ctx, &out, nil)
	s.Close()
	if err != nil || last.Result.Status != client.StatusOK || !strings.Contains(out.String(), "30 100") || !strings.Contains(out.String(), "tty") {
		t.Fatalf("terminal: %+v, %q, %v", last, &out, err)
	}

	// A background command, its description, the list, a signal.
	started, err := c.StartCommand(ctx, id, client.CommandRequest{Command: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	// A command that has not started yet cannot be signalled (409).
	eventually(t, 30*time.Second, func() error {
		return c.SignalCommand(ctx, id, started.CommandID, "SIGKILL")
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmd, err := c.Command(ctx, id, started.CommandID)
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Status == "done" {
			if cmd.Result == nil || cmd.Result.Signal == nil || *cmd.Result.Signal != "SIGKILL" {
				t.Errorf("killed command = %+v", cmd.Result)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed command did not end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmds, err := c.Commands(ctx, id)
	if err != nil || len(cmds) < 4 {
		t.Errorf("commands: %d, %v", len(cmds), err)
	}

	// A run in the session, then a change of its environment.
	run, err := c.RunInSession(ctx, id, client.RunRequest{Language: "bash", Files: []client.File{{Name: "main.sh", Content: "cat made.txt"}}})
	if err != nil || run.Run == nil || run.Run.Stdout != "hi\n" {
		t.Fatalf("run in session: %+v, %v", run, err)
	}
	if ss, err = c.UpdateSession(ctx, id, client.SessionUpdate{Env: map[string]string{"MORE": "1"}, UnsetEnv: []string{"GREETING"}}); err != nil || ss.Env["MORE"] != "1" || ss.Env["GREETING"] != "" {
		t.Fatalf("update: %+v, %v", ss, err)
	}
	all, err := c.Sessions(ctx)
	if err != nil || len(all) != 1 || all[0].ID != id {
		t.Fatalf("sessions: %+v, %v", all, err)
	}
	if err := c.DeleteSession(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Session(ctx, id); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Errorf("deleted session: %v", err)
	}
}

func TestJob(t *testing.T) {
	c := testServer(t)
	ctx := testContext(t)
	req := client.JobRequest{
		RunRequest: client.RunRequest{
			Command: []string{"/bin/sh", "-c", "echo working; echo result > out.txt"},
			Outputs: []string{"out.txt"},
		},
		IdempotencyKey: "client-test-1",
	}
	acc, err := c.SubmitJob(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Status != client.JobQueued || acc.Replayed {
		t.Fatalf("accepted = %+v", acc)
	}
	again, err := c.SubmitJob(ctx, req)
	if err != nil || again.ID != acc.ID || !again.Replayed {
		t.Fatalf("repeated submit: %+v, %v", again, err)
	}

	var output []byte
	var statuses []string
	err = c.JobEvents(ctx, acc.ID, func(ev client.JobEvent) error {
		switch ev.Type {
		case "status":
			statuses = append(statuses, ev.Status)
		case "output":
			output = append(output, ev.Data...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) == 0 || statuses[len(statuses)-1] != client.JobDone {
		t.Errorf("statuses %v", statuses)
	}

	j, err := c.WaitJob(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != client.JobDone || j.Result == nil || j.Result.Run == nil || j.Result.Run.Stdout != "working\n" || j.Signature == nil || len(j.RawResult) == 0 {
		t.Fatalf("job = %+v", j)
	}
	if len(output) > 0 && string(output) != "working\n" {
		t.Errorf("events' output %q", output)
	}
	if b, err := c.JobFile(ctx, acc.ID, "out.txt"); err != nil || string(b) != "result\n" {
		t.Errorf("job file %q, %v", b, err)
	}
	var e *client.Error
	if _, err := c.CancelJob(ctx, acc.ID); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Errorf("cancel of a done job: %v", err)
	}
	list, err := c.Jobs(ctx, client.JobListOptions{Status: client.JobDone, Limit: 10})
	if err != nil || len(list.Jobs) != 1 || list.Jobs[0].ID != acc.ID || list.Jobs[0].Result != nil {
		t.Errorf("list: %+v, %v", list, err)
	}
	keys, err := c.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0].KeyID != j.Signature.KeyID {
		t.Errorf("keys: %+v, %v", keys, err)
	}

	// A queued or running job is cancelled.
	long, err := c.SubmitJob(ctx, client.JobRequest{RunRequest: client.RunRequest{Command: []string{"sleep", "30"}}})
	if err != nil {
		t.Fatal(err)
	}
	if j, err = c.CancelJob(ctx, long.ID); err != nil || j.Status != client.JobCancelled {
		t.Fatalf("cancel: %+v, %v", j, err)
	}
	if j, err = c.PollJob(ctx, long.ID, time.Second); err != nil || j.Status != client.JobCancelled {
		t.Fatalf("poll: %+v, %v", j, err)
	}
}

func TestEnvironmentsAndInfo(t *testing.T) {
	c := testServer(t)
	ctx := testContext(t)
	envs, err := c.Environments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]client.Environment{}
	for _, e := range envs {
		names[e.Name] = e
	}
	if b, ok := names["bash"]; !ok || !b.Available || b.Compiled || b.Source == "" {
		t.Errorf("bash = %+v", b)
	}
	if c, ok := names["c"]; !ok || !c.Compiled {
		t.Errorf("c = %+v", c)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "test" || info.MaxBoxes != 2 || info.Maxima.WallTimeMS != 60_000 || info.Defaults.WallTimeMS == 0 || info.MaxFiles != 8 {
		t.Errorf("info = %+v", info)
	}
	if err := c.Health(ctx); err != nil {
		t.Error(err)
	}
}

// eventually polls until a condition holds (testwait.Eventually).
var eventually = testwait.Eventually
