package snekbox

import (
	"bytes"
	"encoding/base64"
	"path"
	"slices"
	"strings"

	"github.com/runbox-dev/runbox/internal/compat"
)

// answer is snekbox's answer to a native run.
//
// stdout is both of the program's streams, interleaved in the order
// written: the native run merges them at the descriptor (merge_output), as
// snekbox gives its program one pipe as both.
func answer(req *evalRequest, res *runResponse) *evalAnswer {
	r := res.Run
	if r == nil {
		return evalError("runbox failed to run the request: the answer has no run")
	}
	if r.StdoutBase64 != "" || r.StderrBase64 != "" {
		// snekbox reads the output as strict UTF-8.
		return evalError("UnicodeDecodeError: invalid Unicode in output pipe")
	}
	ans := &evalAnswer{Stdout: r.Stdout, Returncode: returncode(r), Files: []fileJSON{}}
	inputs := map[string]string{}
	for _, f := range req.files {
		inputs[f.name] = f.content
	}
	for _, f := range res.Files {
		if !attached(f.Name) {
			continue
		}
		if f.NameBase64 != "" {
			// snekbox refuses a name that is not UTF-8 and answers the
			// whole evaluation with this.
			return evalError("FileParsingError: invalid bytes in filename while parsing attachments")
		}
		if in, ok := inputs[f.Name]; ok {
			if data, err := base64.StdEncoding.DecodeString(in); err == nil && bytes.Equal(data, f.Content) {
				continue // an input file the program left as it was
			}
		}
		ans.Files = append(ans.Files, fileJSON{Path: f.Name, Size: len(f.Content), Content: f.Content})
	}
	slices.SortFunc(ans.Files, func(a, b fileJSON) int { return strings.Compare(a.Path, b.Path) })
	if len(ans.Files) > maxAnswerFiles {
		ans.Files = ans.Files[:maxAnswerFiles]
	}
	return ans
}

// attached says whether snekbox's files_pattern "**/[!_]*" (a glob that
// skips hidden names) selects a workspace file: no element of its path
// starts with ".", and its name does not start with "_".
func attached(name string) bool {
	for _, el := range strings.Split(name, "/") {
		if strings.HasPrefix(el, ".") {
			return false
		}
	}
	return !strings.HasPrefix(path.Base(name), "_")
}

// returncode is snekbox's returncode for a native result: the exit code;
// 128 + the signal for a program killed by one (137 for SIGKILL, 139 for
// SIGSEGV); 137 for a time or memory limit, as NsJail kills then; 143 for
// an output flood, which snekbox ends with SIGTERM; none when runbox
// failed.
func returncode(r *runResult) *int {
	code := r.ExitCode
	switch {
	case r.Status == "internal_error":
		return nil
	case r.Status == "time_limit" || r.Status == "memory_limit":
		code = 128 + 9
	case r.Status == "output_limit":
		code = 128 + 15
	case r.Signal != nil:
		code = 128 + compat.SignalNumber(*r.Signal)
	}
	return &code
}
