package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/runbox-dev/runbox/internal/jail"
	"github.com/runbox-dev/runbox/internal/result"
)

// RunOptions is a parsed `runbox run` command line.
type RunOptions struct {
	Box  BoxFlags
	Spec jail.Spec
	JSON bool
	// stdin is --stdin, opened into Spec.Stdin by Run.
	stdin string
}

func parseRun(args []string, stderr io.Writer) (*RunOptions, error) {
	o := &RunOptions{Box: BoxFlags{Limits: jail.Defaults}}
	fset := flag.NewFlagSet("runbox run", flag.ContinueOnError)
	o.Box.register(fset, "wall-clock time limit", "CPU time limit of the whole box",
		"bytes of stdout and of stderr kept; more kills the box")
	fset.BoolVar(&o.JSON, "json", false, "print one JSON object with the result")
	fset.StringVar(&o.stdin, "stdin", "", "file to use as the program's stdin (default: runbox's stdin)")
	if err := o.Box.parse(fset, args, "runbox run [flags] -- COMMAND [ARG...]", stderr); err != nil {
		return nil, err
	}
	o.Spec = jail.Spec{Argv: fset.Args(), Env: o.Box.Env, Limits: o.Box.Limits}
	if len(o.Spec.Argv) == 0 {
		return nil, usageError{"no command given (runbox run [flags] -- COMMAND [ARG...])"}
	}
	return o, nil
}

// Run is `runbox run` (args follow "run"): one command in a fresh box on
// this host, or on remote once the flags name a server. It returns runbox's
// exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer, remote Remote) int {
	o, err := parseRun(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "runbox run:", err)
		return ExitUsage
	}
	o.Spec.Stdin = stdin
	if o.stdin != "" {
		f, err := os.Open(o.stdin)
		if err != nil {
			fmt.Fprintln(stderr, "runbox run: --stdin:", err)
			return ExitUsage
		}
		defer f.Close()
		o.Spec.Stdin = f
	}
	if o.Box.Server != "" {
		return remote.Run(o, stdout, stderr)
	}
	if o.Spec.Files, err = o.Box.Workspace(); err != nil {
		fmt.Fprintln(stderr, "runbox run:", err)
		return ExitUsage
	}

	if !o.JSON {
		// Output passes through as the program writes it.
		o.Spec.StdoutTee, o.Spec.StderrTee = stdout, stderr
	}
	cfg := jail.DefaultConfig()
	cfg.InitPath = o.Box.InitPath
	j, err := jail.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "runbox run:", err)
		return ExitInternalError
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	res, runErr := j.Run(ctx, o.Spec)
	stop()
	if err := j.Close(); err != nil {
		fmt.Fprintln(stderr, "runbox run: clean up:", err)
	}

	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(result.From(res)); err != nil {
			return ExitInternalError
		}
		if runErr != nil {
			return ExitInternalError
		}
		return 0
	}
	return ExitCode(res, stderr)
}

// ExitCode is runbox's exit code for a program's result (see the exit
// codes in cli.go), with a one-line message on stderr for what runbox
// decided.
func ExitCode(res jail.Result, stderr io.Writer) int {
	switch res.Status {
	case jail.StatusOK, jail.StatusRuntimeError:
		if res.ExitCode == ExitCannotExecute && res.Message != "" {
			fmt.Fprintln(stderr, "runbox:", res.Message)
		}
		return res.ExitCode
	case jail.StatusSignaled:
		return 128 + res.Signal
	case jail.StatusTimeLimit:
		fmt.Fprintln(stderr, "runbox:", res.Message)
		return ExitTimeLimit
	case jail.StatusMemoryLimit:
		fmt.Fprintln(stderr, "runbox:", res.Message)
		return ExitMemoryLimit
	case jail.StatusOutputLimit:
		fmt.Fprintln(stderr, "runbox:", res.Message)
		return ExitOutputLimit
	default:
		fmt.Fprintln(stderr, "runbox:", res.Message)
		return ExitInternalError
	}
}
