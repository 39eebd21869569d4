package serverbin

import "errors"

// ErrNotBuilt is Exec's error when the front was built without running go
// generate first: there is no runbox-server in it.
var ErrNotBuilt = errors.New("this runbox was built without runbox-server: build it with `make` (go generate ./internal/serverbin)")
