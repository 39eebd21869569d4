package units

import (
	"testing"
)

// The parsers read operator files and flags; they must never panic, and
// what they accept is never negative.

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"2s", "500ms", "1.5", "1m30s", "0", "", "-1s", "1e300", "NaN", "9223372036.854775807", "2562047h47m16.854775807s", "0x1p62", " 3 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, negative", s, d)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64MiB", "64M", "512k", "1.5GiB", "100", "1kb", "10 MB", "7B", "", "-1", "MiB", "1e400", "inf", "4611686018427387903", "8EiB", "1tib"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		// What FormatSize prints, ParseSize reads back exactly.
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	})
}
