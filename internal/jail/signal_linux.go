package jail

import "golang.org/x/sys/unix"

func signalName(sig int) string { return unix.SignalName(unix.Signal(sig)) }
