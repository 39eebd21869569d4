// Package serverbin carries runbox-server, the whole of runbox, inside the
// front runbox, so that one file is all there is to install while `runbox
// run` loads none of the server's packages. The binary is built into bin/
// by `go generate` (the Makefile does it, after internal/initbin's, whose
// runbox-init it embeds in turn) before the front is built.
package serverbin

import (
	"embed"
	"io"
)

// VERSION (the Makefile passes it) becomes runbox-server's main.version;
// without it, "dev". ${DOLLAR} keeps the default for sh: go generate would
// read ${VERSION:-dev} as a variable of its own.
//go:generate sh -c "CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w -X main.version=${DOLLAR}{VERSION:-dev}\" -o bin/runbox-server ../../cmd/runbox-server"

//go:embed bin
var files embed.FS

// Name is the embedded file's name.
const Name = "runbox-server"

// Open returns the embedded runbox-server, or false when the front was
// built without running go generate first. Reading it streams from the
// binary's own data (fs.ReadFile would copy all of it to the heap first).
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
