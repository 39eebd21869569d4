package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

// FuzzWSMessage decodes hostile client messages as an attach or run-stream
// socket does: a message is refused or decoded, never a panic, and the
// stdin it carries is exactly its data or its decoded data_base64.
func FuzzWSMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"stdin","data":"hi\n"}`, `{"type":"stdin","data_base64":"/w=="}`, `{"type":"start","command":["cat"],"pty":{"rows":24,"cols":80}}`,
		`{"type":"resize","rows":1,"cols":1000}`, `{"type":"signal","signal":"SIGINT"}`, `{"type":"stdin","data":"a","data_base64":"YQ=="}`,
		`{"type":"attach","command_id":"x"} {}`, `{"bogus":1}`, `[]`, `{"type":"stdin","data_base64":"%%%"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m WSIn
		if err := decodeMessage(b, &m); err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("an error that is not a bad message: %v", err)
			}
			return
		}
		if m.Type != "stdin" {
			return
		}
		data, err := stdinBytes(m)
		switch {
		case err != nil:
			if m.Data == nil && m.DataBase64 == "" {
				t.Fatalf("an empty stdin refused: %v", err)
			}
		case m.Data != nil:
			if string(data) != *m.Data {
				t.Fatalf("stdin %q from data %q", data, *m.Data)
			}
		default:
			want, _ := base64.StdEncoding.DecodeString(m.DataBase64)
			if !bytes.Equal(data, want) {
				t.Fatalf("stdin %q from data_base64 %q", data, m.DataBase64)
			}
		}
	})
}
