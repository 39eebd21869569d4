// Package client is a Go client of runbox's HTTP API (`runbox serve`):
// one-shot runs, streamed runs over WebSocket, sessions (their commands,
// files and terminals), jobs (submit, wait, events, files, cancel) and the
// server's environments and limits. It depends on nothing of runbox's
// internals; its types mirror the API's JSON.
//
//	c, err := client.New("http://127.0.0.1:8080", client.WithToken(key))
//	if err != nil { return err }
//	res, err := c.Run(ctx, client.RunRequest{Language: "python",
//		Files: []client.File{{Name: "main.py", Content: "print(42)"}}})
//	if err == nil { fmt.Print(res.Run.Stdout) }
//
// A program that fails to compile or run is not an error: its Result
// says how it ended (Status, ExitCode, Signal). Errors are the server's
// refusals, as *Error (an RFC 9457 problem naming the fields and rules
// broken; match it with errors.As), or failures to reach the server.
// Every call takes a context; ending it cancels the call, and a run's box
// is killed with it.
package client
