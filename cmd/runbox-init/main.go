// Command runbox-init is the first process inside every runbox box. It is
// not meant to be run by hand: runbox embeds it and starts it in a fresh set
// of namespaces with its configuration on file descriptor 3.
package main

import "github.com/runbox-dev/runbox/internal/jail/boxinit"

func main() { boxinit.Main() }
