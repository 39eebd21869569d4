// Package initbin carries the runbox-init binary inside runbox, so that one
// file is all there is to install. The binary is built into bin/ by
// `go generate` (the Makefile does it) before runbox itself is built.
package initbin

import (
	"embed"
	"io"

	"github.com/runbox-dev/runbox/internal/embedbin"
)

//go:generate env CGO_ENABLED=0 go build -trimpath -ldflags=-s -o bin/runbox-init ../../cmd/runbox-init

//go:embed bin
var files embed.FS

// Name is the embedded file's name.
const Name = "runbox-init"

// Open returns the embedded binary, or false when runbox was built without
// running go generate first (see embedbin.Open).
func Open() (io.Reader, bool) { return embedbin.Open(files, "bin/"+Name) }
