package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A frame is one NATS message of a tunnel: a kind byte, a big-endian
// sequence number, and (for data only) the payload.
const headerLen = 9

type kind byte

const (
	// kindData carries chunk seq (1, 2, …) of one direction.
	kindData kind = 'd'
	// kindAck says the sender has consumed the chunks up to seq; it is
	// also the heartbeat, repeated while the tunnel lives.
	kindAck kind = 'a'
	// kindFin ends the sender's direction after chunk seq (half-close).
	kindFin kind = 'f'
	// kindStop says the sender reads no more: writes to it fail.
	kindStop kind = 's'
	// kindReset aborts the tunnel, both directions, at once.
	kindReset kind = 'r'
)

var (
	errShortFrame = errors.New("frame shorter than its header")
	errFrameKind  = errors.New("unknown frame kind")
	errFrameBody  = errors.New("frame payload does not fit its kind")
)

// appendFrame appends a frame to dst.
func appendFrame(dst []byte, k kind, seq uint64, payload []byte) []byte {
	dst = append(dst, byte(k))
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return append(dst, payload...)
}

// parseFrame splits a frame. It checks the shape only; whether seq fits
// the tunnel's state is the tunnel's business. The payload aliases b.
func parseFrame(b []byte) (k kind, seq uint64, payload []byte, err error) {
	if len(b) < headerLen {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes", errShortFrame, len(b))
	}
	k, seq, payload = kind(b[0]), binary.BigEndian.Uint64(b[1:headerLen]), b[headerLen:]
	switch k {
	case kindData:
		if len(payload) == 0 || seq == 0 {
			return 0, 0, nil, fmt.Errorf("%w: data chunk %d of %d bytes", errFrameBody, seq, len(payload))
		}
	case kindAck, kindFin, kindStop, kindReset:
		if len(payload) != 0 {
			return 0, 0, nil, fmt.Errorf("%w: %q with %d bytes", errFrameBody, k, len(payload))
		}
	default:
		return 0, 0, nil, fmt.Errorf("%w: %#x", errFrameKind, b[0])
	}
	return k, seq, payload, nil
}
