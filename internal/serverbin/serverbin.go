// Package serverbin carries runbox-server, the whole of runbox, inside the
// front runbox, so that one file is all there is to install while `runbox
// run` loads none of the server's packages. The binary is built into bin/
// by `go generate` (the Makefile does it, after internal/initbin's, whose
// runbox-init it embeds in turn) before the front is built.
package serverbin

import (
	"embed"
	"io"

	"github.com/runbox-dev/runbox/internal/embedbin"
)

// VERSION (the Makefile passes it) becomes runbox-server's main.version;
// without it, "dev". ${DOLLAR} keeps the default for sh: go generate would
// read ${VERSION:-dev} as a variable of its own.
//go:generate sh -c "CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w -X main.version=${DOLLAR}{VERSION:-dev}\" -o bin/runbox-server ../../cmd/runbox-server"

//go:embed bin
var files embed.FS

// Name is the embedded file's name.
const Name = "runbox-server"

// Open returns the embedded binary, or false when runbox was built without
// running go generate first (see embedbin.Open).
func Open() (io.Reader, bool) { return embedbin.Open(files, "bin/"+Name) }
