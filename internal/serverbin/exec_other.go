//go:build !linux

package serverbin

import "errors"

// Exec reports that runbox-server needs Linux.
func Exec(argv, envv []string) error { return errors.ErrUnsupported }
