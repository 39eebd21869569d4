package jail

import (
	"errors"
	"syscall"

	"github.com/runbox-dev/runbox/internal/jail/boxinit"
	"golang.org/x/sys/unix"
)

func signalName(sig int) string { return unix.SignalName(unix.Signal(sig)) }

// runHandle signals a run's program through its init (see
// boxinit.SignalKillProgram): the program's host pid is not known outside
// the box, init's pidfd is.
type runHandle struct{ b *box }

func (h runHandle) signal(sig syscall.Signal) error {
	switch sig {
	case syscall.SIGKILL:
		sig = boxinit.SignalKillProgram
	case syscall.SIGSTOP:
		sig = boxinit.SignalStopProgram
	}
	if h.b.pidfd < 0 {
		return ErrCommandEnded
	}
	return unix.PidfdSendSignal(h.b.pidfd, sig, nil, 0)
}

func (runHandle) resize(uint16, uint16) error { return errors.New("a run has no terminal") }
