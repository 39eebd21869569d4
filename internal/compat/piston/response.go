package piston

import (
	"fmt"
	"strconv"
)

// nativeResult is a step's result in the native API (internal/result).
type nativeResult struct {
	Status          string  `json:"status"`
	ExitCode        int     `json:"exit_code"`
	Signal          *string `json:"signal"`
	Message         string  `json:"message"`
	Stdout          string  `json:"stdout"`
	Stderr          string  `json:"stderr"`
	StdoutTruncated bool    `json:"stdout_truncated"`
	StderrTruncated bool    `json:"stderr_truncated"`
	WallTimeMS      int64   `json:"wall_time_ms"`
	CPUTimeMS       int64   `json:"cpu_time_ms"`
	MemoryBytes     int64   `json:"memory_bytes"`
}

// nativeResponse is the native /v1/run answer, as far as Piston needs it.
type nativeResponse struct {
	Language string        `json:"language"`
	Version  string        `json:"version"`
	Compile  *nativeResult `json:"compile"`
	Run      *nativeResult `json:"run"`
}

// Result is Piston's execute answer.
type Result struct {
	Language string `json:"language"`
	Version  string `json:"version"`
	Run      *Stage `json:"run"`
	Compile  *Stage `json:"compile,omitempty"`
}

// Stage is one step of Piston's answer (job.js safe_call).
type Stage struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Output is stdout then stderr. Piston interleaves the two as they
	// were written; runbox keeps them apart and does not record their
	// order, so a program that writes to both reads differently here.
	Output   string  `json:"output"`
	Code     *int    `json:"code"`
	Signal   *string `json:"signal"`
	Message  *string `json:"message"`
	Status   *string `json:"status"`
	CPUTime  int64   `json:"cpu_time"`
	WallTime int64   `json:"wall_time"`
	Memory   int64   `json:"memory"`
}

// toResult makes the native answer Piston's. When the compile failed
// there is no run, and Piston copies the compile into run.
func toResult(r *nativeResponse) *Result {
	out := &Result{Language: r.Language, Version: semver(r.Version)}
	if r.Compile != nil {
		out.Compile = toStage(r.Compile)
	}
	switch {
	case r.Run != nil:
		out.Run = toStage(r.Run)
	case out.Compile != nil:
		c := *out.Compile
		out.Run = &c
	default:
		// Not reached: the native API answers a run or a compile.
		out.Run = toStage(&nativeResult{Status: "internal_error", Message: "runbox returned no result"})
	}
	return out
}

// toStage maps a native result to Piston's stage. Piston's status is
// isolate's (RE, SG, TO, XX) or its own (OL, EL), null when the program
// exited 0; code is null unless the program exited; a program killed for
// time or output shows SIGKILL, as Piston reports it. The message is
// Piston's words where they follow from the result (isolate's "Exited
// with error status 3", "Caught fatal signal 11", Piston's "stdout length
// exceeded"), and runbox's where runbox knows more (which time limit,
// the memory limit; Piston would say "Time limit exceeded" or "Caught
// fatal signal 9").
func toStage(r *nativeResult) *Stage {
	s := &Stage{Stdout: r.Stdout, Stderr: r.Stderr, Output: r.Stdout + r.Stderr,
		CPUTime: r.CPUTimeMS, WallTime: r.WallTimeMS, Memory: r.MemoryBytes}
	code := r.ExitCode
	status, msg := "", r.Message
	switch r.Status {
	case "ok":
		s.Code, msg = &code, ""
	case "runtime_error":
		s.Code, status = &code, "RE"
		msg = fmt.Sprintf("Exited with error status %d", code)
	case "signaled":
		status, s.Signal = "SG", r.Signal
		if r.Signal != nil {
			msg = "Caught fatal signal " + signalNumber(*r.Signal)
		}
	case "memory_limit":
		// isolate reports a cgroup OOM kill as a fatal SIGKILL.
		status, s.Signal = "SG", ptr("SIGKILL")
	case "time_limit":
		status, s.Signal = "TO", ptr("SIGKILL")
	case "output_limit":
		status, s.Signal, msg = "OL", ptr("SIGKILL"), "stdout length exceeded"
		if r.StderrTruncated && !r.StdoutTruncated {
			status, msg = "EL", "stderr length exceeded"
		}
		if !r.StdoutTruncated && !r.StderrTruncated {
			msg = r.Message // a compiled program too large for the run box
		}
	default:
		status = "XX"
	}
	if status != "" {
		s.Status = &status
	}
	if msg != "" {
		s.Message = &msg
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// signals are the names Piston knows (globals.js), by number.
var signals = func() map[string]int {
	names := []string{"", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
		"SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN",
		"SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS"}
	m := map[string]int{}
	for n, name := range names[1:] {
		m[name] = n + 1
	}
	m["SIGRTMIN"], m["SIGRTMAX"] = 34, 64
	for i := 1; i <= 15; i++ {
		m["SIGRTMIN+"+strconv.Itoa(i)] = 34 + i
	}
	for i := 1; i <= 14; i++ {
		m["SIGRTMAX-"+strconv.Itoa(i)] = 64 - i
	}
	return m
}()

// signalNumber is a signal's number as text, or its name when Piston does
// not know it.
func signalNumber(name string) string {
	if n, ok := signals[name]; ok {
		return strconv.Itoa(n)
	}
	return name
}
