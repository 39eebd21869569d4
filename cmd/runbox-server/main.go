// Command runbox-server is the whole of runbox: every command, the server
// included. Users run it through the front (cmd/runbox), which carries it
// (internal/serverbin) and replaces itself with it for every command but a
// local run or shell:
//
//	runbox run [flags] -- COMMAND [ARG...]
//	runbox shell [flags] [-- COMMAND [ARG...]]
//	runbox serve [--listen ADDR] [--config FILE]
//	runbox verify [--server URL] [--key KEY]... [--keys FILE] [--request FILE] JOB.json
//	runbox keys create NAME [quota flags] | list | revoke NAME
//	runbox version
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/runbox-dev/runbox/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes of runbox itself (internal/cli owns them).
const (
	exitUsage         = cli.ExitUsage
	exitTimeLimit     = cli.ExitTimeLimit
	exitInternalError = cli.ExitInternalError
)

// usageError is a mistake in the command line: one line, exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	nameSelf()
	os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, cli.UsageLine)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cli.Run(args[1:], stdin, stdout, stderr, onServer{})
	case "shell":
		return cli.Shell(args[1:], stdin, stdout, stderr, onServer{})
	case "serve":
		return cmdServe(args[1:], stderr)
	case "env":
		return cmdEnv(args[1:], stdout, stderr)
	case "verify":
		return cmdVerify(args[1:], stdin, stdout, stderr)
	case "keys":
		return cmdKeys(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "runbox", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, cli.Help)
		return 0
	default:
		fmt.Fprintf(stderr, "runbox: unknown command %q (runbox help lists them)\n", args[0])
		return exitUsage
	}
}
