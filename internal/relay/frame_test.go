package relay

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseFrame(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		kind    kind
		seq     uint64
		payload []byte
		err     error
	}{
		{name: "data", in: appendFrame(nil, kindData, 7, []byte("hello")), kind: kindData, seq: 7, payload: []byte("hello")},
		{name: "ack", in: appendFrame(nil, kindAck, 1<<40, nil), kind: kindAck, seq: 1 << 40},
		{name: "fin at zero", in: appendFrame(nil, kindFin, 0, nil), kind: kindFin},
		{name: "stop", in: appendFrame(nil, kindStop, 0, nil), kind: kindStop},
		{name: "reset", in: appendFrame(nil, kindReset, 0, nil), kind: kindReset},
		{name: "empty", in: nil, err: errShortFrame},
		{name: "kind only", in: []byte{'d'}, err: errShortFrame},
		{name: "one byte short", in: appendFrame(nil, kindAck, 1, nil)[:headerLen-1], err: errShortFrame},
		{name: "unknown kind", in: appendFrame(nil, 'x', 1, nil), err: errFrameKind},
		{name: "zero kind", in: make([]byte, headerLen), err: errFrameKind},
		{name: "empty data", in: appendFrame(nil, kindData, 1, nil), err: errFrameBody},
		{name: "data numbered zero", in: appendFrame(nil, kindData, 0, []byte("x")), err: errFrameBody},
		{name: "ack with payload", in: appendFrame(nil, kindAck, 1, []byte("x")), err: errFrameBody},
		{name: "fin with payload", in: appendFrame(nil, kindFin, 1, []byte("x")), err: errFrameBody},
		{name: "reset with payload", in: appendFrame(nil, kindReset, 0, []byte("why")), err: errFrameBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, seq, payload, err := parseFrame(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || k != tc.kind || seq != tc.seq || !bytes.Equal(payload, tc.payload) {
				t.Fatalf("= %q %d %q %v, want %q %d %q", k, seq, payload, err, tc.kind, tc.seq, tc.payload)
			}
		})
	}
}
