// Command runbox is the file users install: a front that runs `runbox run`
// and `runbox shell` on this host itself, and carries runbox-server (the
// whole of runbox, cmd/runbox-server) for everything else. A local run so
// pays for none of the server's packages (HTTP, metrics, OpenAPI, NATS):
// Go initialises every package a binary links before main, used or not.
//
//	runbox run [flags] -- COMMAND [ARG...]
//	runbox shell [flags] [-- COMMAND [ARG...]]
//	runbox version | help
//	runbox serve | env | verify | keys ...   (runbox-server)
//
// Every other command, and run or shell with --server or RUNBOX_SERVER,
// replaces this process with runbox-server, same pid and arguments (see
// internal/serverbin).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/runbox-dev/runbox/internal/cli"
	"github.com/runbox-dev/runbox/internal/serverbin"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, cli.UsageLine)
		return cli.ExitUsage
	}
	d := delegate{stderr: stderr}
	switch args[0] {
	case "run":
		return cli.Run(args[1:], stdin, stdout, stderr, d)
	case "shell":
		return cli.Shell(args[1:], stdin, stdout, stderr, d)
	case "version", "--version":
		fmt.Fprintln(stdout, "runbox", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, cli.Help)
		return 0
	default:
		// runbox-server answers unknown commands too, as it always has.
		return d.exec()
	}
}

// delegate is run and shell with --server (or RUNBOX_SERVER): the flags
// parsed by the same code as runbox-server's, so that whether a server is
// named is decided exactly as runbox-server decides it, and the command
// then given to runbox-server whole (it parses it again).
type delegate struct{ stderr io.Writer }

var _ cli.Remote = delegate{}

func (d delegate) Run(*cli.RunOptions, io.Writer, io.Writer) int { return d.exec() }

func (d delegate) Shell(*cli.ShellOptions, io.Reader, io.Writer, io.Writer, *os.File) int {
	return d.exec()
}

// exec replaces this process with runbox-server, given os.Args and the
// environment as they are; it returns only when that fails.
func (d delegate) exec() int {
	err := serverbin.Exec(os.Args, os.Environ())
	if errors.Is(err, serverbin.ErrNotBuilt) {
		fmt.Fprintln(d.stderr, "runbox:", err)
	} else {
		fmt.Fprintln(d.stderr, "runbox: start runbox-server:", err)
	}
	return cli.ExitInternalError
}
