package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
	"github.com/runbox-dev/runbox/internal/runner"
)

// cmdEnv is `runbox env list`, `runbox env test [NAME...]`, `runbox env
// table` (the README's language table, in Markdown), and the image store's
// `runbox env pull [REF...]`, `runbox env images` and `runbox env prune
// [--all]`. The environments are the defaults, then the folders of
// --config's environments and --environments.
func cmdEnv(args []string, stdout, stderr io.Writer) int {
	verbs := map[string]bool{"list": true, "test": true, "table": true, "pull": true, "images": true, "prune": true}
	if len(args) == 0 || !verbs[args[0]] {
		fmt.Fprintln(stderr, envUsage)
		return exitUsage
	}
	verb := args[0]
	fset := flag.NewFlagSet("runbox env", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	where := map[string]*string{"config": fset.String("config", "", ""), "data-dir": fset.String("data-dir", "", ""),
		"environments": fset.String("environments", "", "")}
	initPath := fset.String("init", "", "runbox-init binary to use instead of the embedded one")
	all := fset.Bool("all", false, "prune: every image not in use, also those environments name")
	if err := fset.Parse(args[1:]); err != nil {
		fmt.Fprintln(stderr, "runbox env:", err)
		return exitUsage
	}
	if *all && verb != "prune" {
		fmt.Fprintf(stderr, "runbox env %s: --all is prune's\n", verb)
		return exitUsage
	}
	var sargs []string
	for f, v := range where {
		if *v != "" {
			sargs = append(sargs, "--"+f, *v)
		}
	}
	cfg, err := loadServeConfig(sargs, getenvEnv)
	if err != nil {
		fmt.Fprintln(stderr, "runbox env:", err)
		return exitUsage
	}
	sources := []fs.FS{env.Defaults()}
	for _, d := range cfg.Environments {
		sources = append(sources, os.DirFS(d))
	}
	reg, err := env.Load(sources...)
	if err != nil {
		fmt.Fprintln(stderr, "runbox env:", err)
		return exitUsage
	}
	switch verb {
	case "pull", "images", "prune":
		if verb != "pull" && fset.NArg() > 0 {
			fmt.Fprintf(stderr, "runbox env %s: unexpected argument %q\n", verb, fset.Arg(0))
			return exitUsage
		}
		return cmdImages(verb, fset.Args(), *all, cfg, reg, stdout, stderr)
	}
	var only []*env.Environment
	for _, name := range fset.Args() {
		e, err := reg.Lookup(name)
		if err != nil {
			fmt.Fprintln(stderr, "runbox env:", err)
			return exitUsage
		}
		only = append(only, e)
	}
	if len(only) == 0 {
		only = reg.List()
	}
	jcfg := jail.DefaultConfig()
	jcfg.InitPath = *initPath
	jcfg.Binds = append(jcfg.Binds, envBinds(reg, jcfg.Binds)...)
	j, err := jail.New(jcfg)
	if err != nil {
		fmt.Fprintln(stderr, "runbox env:", err)
		return exitInternalError
	}
	defer j.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := newProgress(stderr)
	// Only a test pulls an environment's missing image: a list or a table
	// says it is not pulled.
	images, err := imagesFor(cfg, reg, verb == "test", prog, nil)
	if err != nil {
		fmt.Fprintln(stderr, "runbox env:", err)
		return 1
	}
	reg.DetectEach(ctx, runner.VersionRunnerWith(j, images), prog.detecting)
	prog.done()

	if verb == "table" {
		writeTable(stdout, only)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if verb == "list" {
		fmt.Fprintln(tw, "NAME\tAVAILABLE\tCOMPILED\tALIASES\tVERSION")
		for _, e := range only {
			v := e.VersionText
			if !e.Available {
				v = "(" + e.Reason + ")"
			}
			fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t%s\n", e.Name, e.Available, e.Compiled(), strings.Join(e.Aliases, ","), v)
		}
		return 0
	}
	run := runner.New(j, reg, nil)
	run.Images = images
	failed := 0
	fmt.Fprintln(tw, "NAME\tRESULT\tDETAIL")
	for i, e := range only {
		prog.show("runbox: testing %s (%d/%d)…", e.Name, i+1, len(only))
		switch {
		case !e.Available:
			fmt.Fprintf(tw, "%s\tskip\t%s\n", e.Name, e.Reason)
		case len(e.Conformance) == 0:
			fmt.Fprintf(tw, "%s\tskip\tno conformance program\n", e.Name)
		default:
			resp, err := run.Run(ctx, runner.ConformanceRequest(e))
			detail := ""
			switch {
			case err != nil:
				detail = err.Error()
			case resp.Compile != nil && resp.Compile.Status != jail.StatusOK:
				detail = "compile: " + string(resp.Compile.Status) + " " + firstLine(resp.Compile.Stderr)
			case resp.Run == nil || string(resp.Run.Stdout) != "OK\n":
				detail = "run: " + string(resp.Run.Status) + " " + firstLine(resp.Run.Stdout) + firstLine(resp.Run.Stderr)
			}
			if detail != "" {
				failed++
				fmt.Fprintf(tw, "%s\tFAIL\t%s\n", e.Name, detail)
			} else {
				fmt.Fprintf(tw, "%s\tok\t%s\n", e.Name, e.VersionText)
			}
		}
	}
	prog.done()
	if failed > 0 {
		return 1
	}
	return 0
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// writeTable writes the environments as the README's Markdown table: name,
// aliases, the version found on this host, and the compile and run argv.
func writeTable(w io.Writer, envs []*env.Environment) {
	fmt.Fprintln(w, "| name | aliases | version here | compile | run |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	cell := func(argv []string) string {
		if len(argv) == 0 {
			return "—"
		}
		words := make([]string, len(argv))
		for i, a := range argv {
			words[i] = a
			if strings.Contains(a, "\n") || len(a) > 60 {
				words[i] = "'…'" // a script: the environment file has it
			}
		}
		return "`" + strings.ReplaceAll(strings.Join(words, " "), "|", "\\|") + "`"
	}
	for _, e := range envs {
		v := e.VersionText
		if !e.Available {
			v = "not on this host"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s |\n", e.Name, strings.Join(e.Aliases, ", "),
			strings.ReplaceAll(v, "|", "\\|"), cell(e.Compile), cell(e.Run))
	}
}

// envBinds are the environments' extra read-only host paths (mounts), for
// the jail, but those it has already. Every box sees them: the warm pool
// builds boxes before it knows their language. A path the host lacks is
// skipped.
func envBinds(reg *env.Registry, have []jail.Bind) []jail.Bind {
	seen := map[string]bool{}
	for _, b := range have {
		seen[b.Dst] = true
	}
	var out []jail.Bind
	for _, m := range reg.Mounts() {
		if !seen[m.Dst] {
			out = append(out, jail.Bind{Src: m.Src, Dst: m.Dst, Optional: true})
		}
	}
	return out
}

const envUsage = "usage: runbox env list|test|table [NAME...] | pull [REF...] | images | prune [--all]  [--config FILE] [--environments DIR] [--data-dir DIR]"

// getenvEnv is the environment runbox env reads: where the environments
// and the image store are, nothing of the server's other settings that
// could refuse the command.
func getenvEnv(name string) string {
	switch name {
	case "RUNBOX_DATA_DIR", "RUNBOX_ENVIRONMENTS":
		return os.Getenv(name)
	}
	return ""
}
