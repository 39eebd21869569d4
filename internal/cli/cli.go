// Package cli owns `runbox run` and `runbox shell` on this host: their
// flags, usage errors, exit codes and help. Both binaries use it: the front
// runbox, which runs them without loading a package of the server, and
// runbox-server, which adds --server (a Remote) and every other command.
package cli

import (
	"io"
	"os"
)

// Exit codes of runbox itself. A program's own exit code passes through
// unchanged (or 128+signal); these mark what runbox decided.
const (
	ExitUsage         = 2
	ExitOutputLimit   = 120
	ExitMemoryLimit   = 121
	ExitTimeLimit     = 124
	ExitInternalError = 125
	ExitCannotExecute = 127
)

// Remote runs a parsed command on the runbox serve named by --server (or
// RUNBOX_SERVER). Run and Shell call it, and only it, once the flags name
// a server; what it returns is runbox's exit code.
type Remote interface {
	Run(o *RunOptions, stdout, stderr io.Writer) int
	Shell(o *ShellOptions, stdin io.Reader, stdout, stderr io.Writer, tty *os.File) int
}

// UsageLine is what runbox without arguments prints (and exits 2).
const UsageLine = "usage: runbox run [flags] -- COMMAND [ARG...] (runbox help for more)"

// Help is what runbox help prints.
const Help = `runbox runs untrusted code in a Linux sandbox.

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
