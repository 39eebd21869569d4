package boxinit

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The supervisor sends Config and RunConfig, and init a session command's
// first stage its ShimCommand, in a compact binary form: every box decodes
// two of them, every session command one, each in a new process, where
// encoding/json's reflection (its type analysis) starts from nothing. Integers are varints, strings and byte strings carry their length,
// lists their count; a message starts with a tag naming its type and ends
// with its last field. Nothing else reads these bytes, so there is no
// versioning: the supervisor and its embedded init are built together.
const (
	tagConfig    = 'C'
	tagRunConfig = 'R'
	tagShim      = 'S'
)

// MarshalBinary encodes c for init.
func (c *Config) MarshalBinary() ([]byte, error) {
	w := wireWriter{b: []byte{tagConfig}}
	w.str(c.Hostname)
	w.int(int64(c.UID))
	w.int(int64(c.GID))
	w.uint(uint64(len(c.Binds)))
	for _, b := range c.Binds {
		w.str(b.Src)
		w.str(b.Dst)
		w.bool(b.Optional)
	}
	w.uint(uint64(len(c.Generated)))
	for _, g := range c.Generated {
		w.str(g.Path)
		w.str(g.Data)
		w.uint(uint64(g.Mode))
	}
	w.strs(c.Devices)
	return w.b, nil
}

// UnmarshalBinary decodes what MarshalBinary made, refusing anything else.
func (c *Config) UnmarshalBinary(b []byte) error {
	r := wireReader{b: b}
	r.tag(tagConfig)
	c.Hostname = r.str()
	c.UID = r.int()
	c.GID = r.int()
	c.Binds = make([]Bind, r.count(3))
	for i := range c.Binds {
		c.Binds[i] = Bind{Src: r.str(), Dst: r.str(), Optional: r.bool()}
	}
	c.Generated = make([]GenFile, r.count(3))
	for i := range c.Generated {
		c.Generated[i] = GenFile{Path: r.str(), Data: r.str(), Mode: uint32(r.uintMax(1<<32 - 1))}
	}
	c.Devices = r.strs()
	return r.end()
}

// MarshalBinary encodes rc for init.
func (rc *RunConfig) MarshalBinary() ([]byte, error) {
	w := wireWriter{b: []byte{tagRunConfig}}
	w.strs(rc.Argv)
	w.strs(rc.Env)
	w.strs(rc.Dir)
	for _, t := range []TmpfsSize{rc.Workspace, rc.Tmp, rc.Shm} {
		w.int(t.Bytes)
		w.int(t.Inodes)
	}
	w.rlimits(rc.Rlimits)
	w.bytes(rc.Seccomp)
	w.bool(rc.Collect != nil)
	if c := rc.Collect; c != nil {
		w.strs(c.Patterns)
		w.int(int64(c.MaxFiles))
		w.int(c.MaxBytes)
		w.int(int64(c.MaxDepth))
		w.int(c.MaxNanos)
	}
	w.bool(rc.Session)
	w.bool(rc.MergeOutput)
	return w.b, nil
}

// UnmarshalBinary decodes what MarshalBinary made, refusing anything else.
func (rc *RunConfig) UnmarshalBinary(b []byte) error {
	r := wireReader{b: b}
	r.tag(tagRunConfig)
	rc.Argv = r.strs()
	rc.Env = r.strs()
	rc.Dir = r.strs()
	for _, t := range []*TmpfsSize{&rc.Workspace, &rc.Tmp, &rc.Shm} {
		t.Bytes = r.int64()
		t.Inodes = r.int64()
	}
	rc.Rlimits = r.rlimits()
	rc.Seccomp = r.bytes()
	rc.Collect = nil
	if r.bool() {
		rc.Collect = &Collect{Patterns: r.strs(), MaxFiles: r.int(), MaxBytes: r.int64(), MaxDepth: r.int(), MaxNanos: r.int64()}
	}
	rc.Session = r.bool()
	rc.MergeOutput = r.bool()
	return r.end()
}

// MarshalBinary encodes c for a session command's first stage, a fresh
// process for every command, which would pay for encoding/json's type
// analysis on each command's way to its exec.
func (c *ShimCommand) MarshalBinary() ([]byte, error) {
	w := wireWriter{b: []byte{tagShim}}
	w.str(c.Path)
	w.strs(c.Argv)
	w.strs(c.Env)
	w.strs(c.Dir)
	w.rlimits(c.Rlimits)
	w.bool(c.TTY)
	w.bool(c.Notify)
	return w.b, nil
}

// UnmarshalBinary decodes what MarshalBinary made, refusing anything else.
func (c *ShimCommand) UnmarshalBinary(b []byte) error {
	r := wireReader{b: b}
	r.tag(tagShim)
	c.Path = r.str()
	c.Argv = r.strs()
	c.Env = r.strs()
	c.Dir = r.strs()
	c.Rlimits = r.rlimits()
	c.TTY = r.bool()
	c.Notify = r.bool()
	return r.end()
}

func (w *wireWriter) rlimits(ls []Rlimit) {
	w.uint(uint64(len(ls)))
	for _, l := range ls {
		w.int(int64(l.Resource))
		w.uint(l.Cur)
		w.uint(l.Max)
	}
}

func (r *wireReader) rlimits() []Rlimit {
	ls := make([]Rlimit, r.count(3))
	for i := range ls {
		ls[i] = Rlimit{Resource: r.int(), Cur: r.uint(), Max: r.uint()}
	}
	return ls
}

type wireWriter struct{ b []byte }

func (w *wireWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *wireWriter) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *wireWriter) bytes(v []byte) {
	w.uint(uint64(len(v)))
	w.b = append(w.b, v...)
}
func (w *wireWriter) str(v string) {
	w.uint(uint64(len(v)))
	w.b = append(w.b, v...)
}
func (w *wireWriter) strs(v []string) {
	w.uint(uint64(len(v)))
	for _, s := range v {
		w.str(s)
	}
}
func (w *wireWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// wireReader decodes a message; its first error sticks, and every later
// read returns a zero value. A length or count is checked against the
// bytes left before anything is allocated for it (each element takes at
// least one byte), so a message never makes init allocate more than its
// own size over again.
type wireReader struct {
	b   []byte
	err error
}

var errWire = errors.New("malformed config message")

func (r *wireReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errWire, what)
	}
}

func (r *wireReader) tag(want byte) {
	if len(r.b) == 0 || r.b[0] != want {
		r.fail(fmt.Sprintf("not a %q message", want))
		return
	}
	r.b = r.b[1:]
}

func (r *wireReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	// A last byte of 0 after others is a longer form of a smaller number:
	// each value has one encoding.
	if n <= 0 || n > 1 && r.b[n-1] == 0 {
		r.fail("bad or truncated number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) uintMax(most uint64) uint64 {
	v := r.uint()
	if v > most {
		r.fail("number out of range")
		return 0
	}
	return v
}

func (r *wireReader) int64() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	// A last byte of 0 after others is a longer form of a smaller number:
	// each value has one encoding.
	if n <= 0 || n > 1 && r.b[n-1] == 0 {
		r.fail("bad or truncated number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) int() int {
	v := r.int64()
	if int64(int(v)) != v {
		r.fail("number out of range")
		return 0
	}
	return int(v)
}

// count reads a length or an element count of elements that take at least
// least bytes each: at most what the bytes left can hold.
func (r *wireReader) count(least int) int {
	n := r.uint()
	if n > uint64(len(r.b)/least) {
		r.fail("length beyond the message")
		return 0
	}
	return int(n)
}

func (r *wireReader) bytes() []byte {
	n := r.count(1)
	if r.err != nil || n == 0 {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *wireReader) str() string { return string(r.bytes()) }

func (r *wireReader) strs() []string {
	n := r.count(1)
	if r.err != nil || n == 0 {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = r.str()
	}
	return v
}

func (r *wireReader) bool() bool {
	if r.err != nil {
		return false
	}
	if len(r.b) == 0 || r.b[0] > 1 {
		r.fail("bad or truncated flag")
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

func (r *wireReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes after the last field", len(r.b)))
	}
	return r.err
}
