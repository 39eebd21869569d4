package codebox

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// pyFloat is repr(f) in Python, as Codebox prints a timeout: the shortest
// digits that read back as f, in positional notation when the decimal
// exponent is in [-4, 16), with ".0" when f is integral.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

// signalNumber is the number of a signal the native API names (Linux's
// numbering, as on x86 and arm64); the native API names one it has no
// name for "signal N".
func signalNumber(name string) int {
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
