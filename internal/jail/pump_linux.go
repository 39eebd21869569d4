package jail

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// outputs capture a program's stdout and stderr, each from its own
// goroutine (counted in readers), with one overflow channel for both.
type outputs struct {
	out, err *capture
	overflow chan struct{}
}

// captureOutputs starts reading stdout and stderr, each kept up to limit
// bytes and teed as it comes; readers is done once both pipes are closed.
// A nil stderr (a terminal's, which is its stdout) stays empty.
func captureOutputs(limit int64, stdoutTee, stderrTee io.Writer, stdout, stderr io.Reader, readers *sync.WaitGroup) *outputs {
	o := &outputs{overflow: make(chan struct{}, 2)}
	o.out = &capture{limit: limit, overflow: o.overflow, tee: stdoutTee}
	o.err = &capture{limit: limit, overflow: o.overflow, tee: stderrTee}
	readers.Add(1)
	go func() { defer readers.Done(); o.out.drain(stdout) }()
	if stderr != nil {
		readers.Add(1)
		go func() { defer readers.Done(); o.err.drain(stderr) }()
	}
	return o
}

// into sets the result's output fields from what was captured.
func (o *outputs) into(res *Result) {
	res.Stdout, res.StdoutTruncated = o.out.buf.Bytes(), o.out.truncated
	res.Stderr, res.StderrTruncated = o.err.buf.Bytes(), o.err.truncated
}

// capture keeps the first limit bytes of a stream. One byte more kills the
// box (through overflow); the rest is read and dropped so that a writer
// never blocks on a full pipe.
type capture struct {
	limit     int64
	buf       bytes.Buffer
	truncated bool
	overflow  chan<- struct{}
	tee       io.Writer // optional live copy of what is kept
}

func (c *capture) keep(b []byte) {
	c.buf.Write(b)
	if c.tee != nil {
		if _, err := c.tee.Write(b); err != nil {
			c.tee = nil // a closed terminal must not stop the capture
		}
	}
}

func (c *capture) drain(r io.Reader) {
	b := make([]byte, 32<<10)
	for {
		n, err := r.Read(b)
		if n > 0 {
			room := c.limit - int64(c.buf.Len())
			if int64(n) > room {
				if room > 0 {
					c.keep(b[:room])
				}
				if !c.truncated {
					c.truncated = true
					c.overflow <- struct{}{}
				}
			} else {
				c.keep(b[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// collectEntryOverhead bounds the bytes of one collected file in the tar
// stream besides its content: its header block, a PAX extended header
// (one block, and its records: a path of at most boxinit.MaxCollectPath
// bytes, rounded up to whole blocks) and the padding of its content to a
// whole block. init leaves out every file with a longer path.
const collectEntryOverhead = 512 + 512 + (boxinit.MaxCollectPath+512+511)/512*512 + 511

// collectStreamBound is the most a collection stream may take: the content
// bound, every file's overhead, and the two zero blocks that end it.
func collectStreamBound(c Collect) int64 {
	return c.MaxBytes + int64(c.MaxFiles)*collectEntryOverhead + 2*512
}

// readCollected reads the tar stream of collected files and returns the
// whole files it holds, in order. The stream is init's, and init keeps to
// the same bounds; the host still reads at most collectStreamBound bytes
// and refuses an entry beyond the bounds or with a name it would not send,
// so that a stream gone wrong costs neither memory nor time. On an error it
// returns the files read until then and the caller closes the pipe, which
// ends init's writes (EPIPE); the run reports the files as truncated.
func readCollected(r io.Reader, c *Collect) ([]File, error) {
	if c == nil {
		// Nothing asked: init closes the pipe without a byte.
		if n, err := io.Copy(io.Discard, io.LimitReader(r, 1)); err != nil || n > 0 {
			return nil, fmt.Errorf("collection stream without a request (%d bytes, %v)", n, err)
		}
		return nil, nil
	}
	lim := collectLimits(*c)
	tr := tar.NewReader(io.LimitReader(r, collectStreamBound(lim)))
	var files []File
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return files, err
		}
		switch {
		case h.Typeflag != tar.TypeReg:
			return files, fmt.Errorf("collected entry %.100q of type %q", h.Name, h.Typeflag)
		case !collectedName(h.Name):
			return files, fmt.Errorf("collected entry named %.100q", h.Name)
		case len(files) >= lim.MaxFiles || h.Size < 0 || h.Size > lim.MaxBytes-total:
			return files, fmt.Errorf("collected entry %.100q of %d bytes is beyond the bounds", h.Name, h.Size)
		}
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return files, err
		}
		total += h.Size
		files = append(files, File{Name: h.Name, Data: data, Mode: uint32(h.Mode) & 0o777})
	}
}

// collectedName accepts what init sends: a clean relative path below the
// workspace, not too long.
func collectedName(name string) bool {
	return name != "" && len(name) <= boxinit.MaxCollectPath && path.Clean(name) == name && !path.IsAbs(name) &&
		name != ".." && !strings.HasPrefix(name, "../") && !strings.ContainsRune(name, 0)
}

func collectLimits(c Collect) Collect {
	if c.MaxFiles <= 0 {
		c.MaxFiles = DefaultCollectFiles
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultCollectBytes
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = DefaultCollectDepth
	}
	if c.MaxTime <= 0 {
		c.MaxTime = DefaultCollectTime
	}
	return c
}
