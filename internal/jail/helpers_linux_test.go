package jail_test

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

var syscallZero = syscall.Signal(0)

// startSleeper starts a host process owned by the test, killed by pid when
// the test ends.
func startSleeper(t *testing.T) *os.Process {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process
}
