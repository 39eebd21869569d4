package jail

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"golang.org/x/sys/unix"
)

// A slot is a pair of host uids that belongs to one running box. Ownership
// is an abstract unix socket bound to a name derived from the uid: binding
// is atomic across every process on the host, and the kernel releases the
// name when the socket is closed or its owner dies, so a crashed runbox
// leaves no stale lock and no file behind.
type slot struct {
	rootID int // host id of the box's root (runbox-init)
	userID int // host id of the program
	fd     int
}

// maxSlotTries bounds the search for a free slot.
const maxSlotTries = 4096

var errNoSlot = errors.New("no free box uid slot")

func (j *Jail) acquireSlot() (*slot, error) {
	n := j.cfg.UIDSlots
	start := rand.IntN(n)
	for i := 0; i < n && i < maxSlotTries; i++ {
		k := (start + i) % n
		id := j.cfg.UIDBase + 2*k
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("uid slot: %w", err)
		}
		err = unix.Bind(fd, &unix.SockaddrUnix{Name: "@runbox/uid/" + strconv.Itoa(id)})
		if err == nil {
			return &slot{rootID: id, userID: id + 1, fd: fd}, nil
		}
		unix.Close(fd)
		if !errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("uid slot: %w", err)
		}
	}
	return nil, errNoSlot
}

func (s *slot) release() { unix.Close(s.fd) }
