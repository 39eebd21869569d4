// Package clitest runs the runbox binaries in tests: a command with its exit
// code and output, and `runbox serve` until it listens.
package clitest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Result is what a command printed and how it exited.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs cmd to its end with stdin and returns its exit code and output;
// a command that could not be run at all fails the test.
func Run(t testing.TB, cmd *exec.Cmd, stdin string) Result {
	t.Helper()
	cmd.Stdin = bytes.NewReader([]byte(stdin))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return Result{code, out.String(), errb.String()}
}

// Serve starts cmd, a `runbox serve` whose stderr is not set, and waits
// (two minutes at most) for its "listening" log line. It returns the address
// from that line and a channel closed once the process has exited and been
// reaped. When the test ends a server still running gets SIGTERM, and
// SIGKILL 20 s later, by its pid.
func Serve(t testing.TB, cmd *exec.Cmd) (addr string, exited <-chan struct{}) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addrs := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				select {
				case addrs <- line.Addr: // the first one: the API's
				default:
				}
			}
		}
		// Keep reading so that the server never blocks on its log.
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	select {
	case a := <-addrs:
		return a, done
	case <-done:
		t.Fatal("runbox serve exited before listening")
	case <-time.After(2 * time.Minute):
		t.Fatal("runbox serve did not listen within 2 minutes")
	}
	return "", done
}
