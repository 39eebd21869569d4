package env

import (
	"embed"
	"io/fs"
)

//go:embed defaults
var defaults embed.FS

// Defaults are the embedded environments: python, javascript, c, c++, go,
// java, rust, bash and perl, each described for the Debian toolchains.
func Defaults() fs.FS {
	sub, err := fs.Sub(defaults, "defaults")
	if err != nil {
		panic(err) // the folder is embedded: cannot happen
	}
	return sub
}
