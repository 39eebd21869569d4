// Command runbox runs untrusted code in a Linux sandbox.
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
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes of runbox itself. A program's own exit code passes through
// unchanged (or 128+signal); these mark what runbox decided.
const (
	exitUsage         = 2
	exitOutputLimit   = 120
	exitMemoryLimit   = 121
	exitTimeLimit     = 124
	exitInternalError = 125
	exitCannotExecute = 127
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: runbox run [flags] -- COMMAND [ARG...] (runbox help for more)")
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdin, stdout, stderr)
	case "shell":
		return cmdShell(args[1:], stdin, stdout, stderr)
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
		fmt.Fprint(stdout, helpText)
		return 0
	default:
		fmt.Fprintf(stderr, "runbox: unknown command %q (runbox help lists them)\n", args[0])
		return exitUsage
	}
}

const helpText = `runbox runs untrusted code in a Linux sandbox.

Commands:
  runbox run [flags] -- COMMAND [ARG...]   run one command in a fresh box
  runbox shell [flags] [-- COMMAND [ARG...]]
                                           an interactive shell (or COMMAND) in a fresh box,
                                           on a terminal of its own when stdin is one
  runbox serve [--listen ADDR] [--config FILE] [--max-boxes N] [--environments DIR]
                                           serve the HTTP API
  runbox env list|test [NAME...]           list the languages, or run their conformance programs
  runbox verify [--server URL] [--key KEY]... [--keys FILE] [--request FILE] JOB.json
                                           check a saved job's signature and that it says what was signed
  runbox keys create NAME [--rps N] [--burst N] [--boxes N] [--cpu-per-minute S] [--sessions N]
                  [--max-wall-time D] [--max-cpu-time D] [--max-memory SIZE] [--max-processes N]
  runbox keys list | revoke NAME           API keys (in --data-dir, or the cluster's --nats)
  runbox version                           print the version

With --server URL (or RUNBOX_SERVER), runbox run and runbox shell run on that
runbox serve instead of this host (its key in RUNBOX_KEY).

Run "runbox run -h" and "runbox shell -h" for their flags. runbox shell takes
runbox run's limit flags, with interactive defaults (--wall-time 1h,
--cpu-time 15m, --output 64MiB of terminal output), and --language NAME to add
that language environment's variables.
`
