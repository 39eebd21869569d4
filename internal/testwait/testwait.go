// Package testwait is what tests wait with: Eventually polls a condition
// until it holds, failing the test when a timeout passes first. It is for
// tests only (it imports testing) and imports nothing of runbox.
package testwait

import (
	"testing"
	"time"
)

// Interval is how often Eventually tries again.
const Interval = 20 * time.Millisecond

// Eventually calls f until it returns nil, every Interval, and fails the
// test with f's last error once timeout has passed.
func Eventually(tb testing.TB, timeout time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(Interval)
	}
}
