// Package embedbin opens a program embedded in runbox (runbox-init,
// runbox-server), which go generate builds before runbox itself.
package embedbin

import (
	"io"
	"io/fs"
)

// Open returns the embedded file at path, or false when it is missing or
// empty (runbox was built without running go generate first). Reading it
// streams from the binary's own data (fs.ReadFile would copy all of it to
// the heap first).
func Open(fsys fs.FS, path string) (io.Reader, bool) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, false
	}
	if st, err := f.Stat(); err != nil || st.Size() == 0 {
		f.Close()
		return nil, false
	}
	return f, true
}
