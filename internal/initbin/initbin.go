// Package initbin carries the runbox-init binary inside runbox, so that one
// file is all there is to install. The binary is built into bin/ by
// `go generate` (the Makefile does it) before runbox itself is built.
package initbin

import (
	"embed"
	"io"
)

//go:generate env CGO_ENABLED=0 go build -trimpath -ldflags=-s -o bin/runbox-init ../../cmd/runbox-init

//go:embed bin
var files embed.FS

// Name is the embedded file's name.
const Name = "runbox-init"

// Open returns the embedded init, or false when runbox was built without
// running go generate first. Reading it streams from the binary's own data
// (fs.ReadFile would copy all of it to the heap first).
func Open() (io.Reader, bool) {
	f, err := files.Open("bin/" + Name)
	if err != nil {
		return nil, false
	}
	if st, err := f.Stat(); err != nil || st.Size() == 0 {
		return nil, false
	}
	return f, true
}
