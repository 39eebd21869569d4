//go:build !linux

package boxinit

import "os"

// Main exits: a box needs Linux namespaces.
func Main() {
	os.Stderr.WriteString("runbox-init: Linux only\n")
	os.Exit(1)
}
