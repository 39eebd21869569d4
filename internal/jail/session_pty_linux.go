package jail

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/cgroup"
)

// A command's terminal (CommandSpec.TTY) is a fresh pseudo-terminal of the
// host's devpts, opened by the supervisor. The box gets only the slave's
// descriptor, three times, as the command's stdio: the box has no
// /dev/pts and no /dev/ptmx, so it can neither open another terminal nor
// reach this one by a name, and the seccomp filter refuses TIOCSTI (typing
// into a terminal, CVE-2016-7545, CVE-2017-5226), TIOCLINUX and TIOCSETD
// (line disciplines, CVE-2017-2636, CVE-2023-6546). The supervisor keeps
// the master: it reads the output, types the input, and sets the size.

// openPTY opens a fresh pseudo-terminal of the given size: its master,
// non-blocking so that the runtime's poller reads and writes it (with
// deadlines), and its slave.
func openPTY(size TTY) (master, slave *os.File, err error) {
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: "/dev/ptmx", Err: err}
	}
	fail := func(op string, err error) (*os.File, *os.File, error) {
		unix.Close(m)
		return nil, nil, fmt.Errorf("pseudo-terminal: %s: %w", op, err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlock", err)
	}
	if err := unix.IoctlSetWinsize(m, unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols}); err != nil {
		return fail("set size", err)
	}
	// The slave is opened from the master (TIOCGPTPEER, Linux 4.13),
	// never by its name: /dev/pts/N is a path lookup, which may reach
	// another devpts instance or another node than the master's own (the
	// reason the kernel added the ioctl, for container runtimes).
	s, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		return fail("open slave", errno)
	}
	return os.NewFile(uintptr(m), "/dev/ptmx"), os.NewFile(s, "pty-slave"), nil
}

// newCmdPTY makes a command's stdio a fresh terminal: ours is the master
// (stdin and stdout alike, no stderr), theirs the slave as 0, 1 and 2.
func newCmdPTY(size TTY) (*cmdPipes, error) {
	master, slave, err := openPTY(size)
	if err != nil {
		return nil, err
	}
	return &cmdPipes{stdin: master, stdout: master, theirs: []*os.File{slave, slave, slave}, tty: true}, nil
}

// setWinsize sets a terminal's size through its master.
func setWinsize(master *os.File, rows, cols uint16) error {
	rc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set terminal size: %w", serr)
	}
	return nil
}

// feedTTY types stdin into the terminal, then the terminal's end-of-file
// character (VEOF, ^D by default): the program reading it sees the end of
// its input, and the terminal stays up for its output (closing the master
// would hang it up). A last line without a newline takes two: the first
// ends the line, the second is the end of file.
func feedTTY(master *os.File, stdin io.Reader) {
	w := &lastByteWriter{w: master}
	if stdin != nil {
		// A read error ends the input as its end does.
		_, _ = io.Copy(w, stdin)
		if w.err != nil {
			return // the terminal is gone, or the command ended
		}
	}
	eof := byte(4)
	if rc, err := master.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS); err == nil {
				eof = t.Cc[unix.VEOF]
			}
		})
	}
	if eof == 0 { // _POSIX_VDISABLE: the program turned it off
		return
	}
	b := []byte{eof}
	if w.n > 0 && w.last != '\n' {
		b = append(b, eof)
	}
	_, _ = master.Write(b)
}

// lastByteWriter remembers the last byte written, and a write error.
type lastByteWriter struct {
	w    io.Writer
	n    int64
	last byte
	err  error
}

func (l *lastByteWriter) Write(b []byte) (int, error) {
	n, err := l.w.Write(b)
	if n > 0 {
		l.n += int64(n)
		l.last = b[n-1]
	}
	if err != nil {
		l.err = err
	}
	return n, err
}

// startNote learns that a command has started: its first stage writes one
// byte on the pipe just before it executes the command (see
// boxinit.SessionRequest.Notify); end of file without it means the stage
// died first.
type startNote struct {
	r, w     *os.File
	started  chan struct{} // one value once the byte has come
	done     chan struct{} // closed once the reader has ended
	finished bool
}

func newStartNote() (*startNote, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	n := &startNote{r: r, w: w, started: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(n.done)
		var b [1]byte
		if k, _ := r.Read(b[:]); k == 1 {
			n.started <- struct{}{}
		}
	}()
	return n, nil
}

// ready is a channel that receives once the command has started; nil (it
// never does) without a note.
func (n *startNote) ready() <-chan struct{} {
	if n == nil {
		return nil
	}
	return n.started
}

// closeTheirs closes the write end once the stage holds it.
func (n *startNote) closeTheirs() {
	if n != nil && n.w != nil {
		n.w.Close()
		n.w = nil
	}
}

// finish waits, a bounded time, for the reader's end once the command's
// process is gone (its write end with it), and reports whether the
// command started without ready having said so. Only its first call does.
func (n *startNote) finish() bool {
	if n.finished {
		return false
	}
	n.finished = true
	n.closeTheirs()
	_ = n.r.SetReadDeadline(time.Now().Add(drainGrace))
	<-n.done
	n.r.Close()
	select {
	case <-n.started:
		return true
	default:
		return false
	}
}

// sessionCommand is a running session command as its Control sees it.
type sessionCommand struct {
	pidfd  int
	group  *cgroup.Group
	master *os.File // nil without a terminal
}

func (c *sessionCommand) signal(sig syscall.Signal) error {
	if sig == unix.SIGKILL {
		// The whole command, as a limit kills it: SIGKILL to its process
		// alone would leave what it started to the end of Exec.
		return c.group.Kill()
	}
	if err := unix.PidfdSendSignal(c.pidfd, sig, nil, 0); err != nil {
		if err == unix.ESRCH {
			return ErrCommandEnded
		}
		return fmt.Errorf("signal command: %w", err)
	}
	return nil
}

func (c *sessionCommand) resize(rows, cols uint16) error {
	if c.master == nil {
		return ErrNoTTY
	}
	return setWinsize(c.master, rows, cols)
}

var _ commandHandle = (*sessionCommand)(nil)
