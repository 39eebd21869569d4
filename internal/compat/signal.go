package compat

import (
	"slices"
	"strconv"
	"strings"
)

// SignalNumber is the number of a signal the native API names (Linux's
// numbering, as on x86 and arm64); the native API names one it has no
// name for "signal N". An unknown name is 0.
func SignalNumber(name string) int {
	if n, ok := strings.CutPrefix(name, "signal "); ok {
		v, _ := strconv.Atoi(n)
		return v
	}
	return slices.Index(strings.Fields(signalNames), name) + 1
}

// signalNames are Linux's signal names, from 1.
const signalNames = "SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGUSR1 SIGSEGV SIGUSR2 " +
	"SIGPIPE SIGALRM SIGTERM SIGSTKFLT SIGCHLD SIGCONT SIGSTOP SIGTSTP SIGTTIN SIGTTOU SIGURG SIGXCPU SIGXFSZ " +
	"SIGVTALRM SIGPROF SIGWINCH SIGIO SIGPWR SIGSYS"
