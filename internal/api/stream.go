package api

import (
	"net/http"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/runbox-dev/runbox/internal/result"
	"github.com/runbox-dev/runbox/internal/runner"
)

// writeRun streams a run's answer: the RunResponse object, written field by
// field from the runner's buffers. Nothing of the output is copied, turned
// into runes or into a base64 string first, and the JSON is never whole in
// memory; the server holds the raw output (counted in the request's
// budget) and a small buffer. A client that reads slowly has WriteTimeout
// (set by handleRun when the run ended) to take it all.
func (s *Server) writeRun(hc huma.Context, resp *runner.Response) {
	hc.SetHeader("Content-Type", "application/json")
	hc.SetStatus(http.StatusOK)
	w := result.NewWriter(hc.BodyWriter())
	encodeRun(w, resp)
	if err := w.Flush(); err != nil {
		s.log.Info("answer not delivered", "request_id", requestID(hc.Context()), "err", err)
	}
}

// encodeRun writes resp as RunResponse marshals (see types.go; a test
// holds the two to the same JSON).
func encodeRun(w *result.Writer, r *runner.Response) {
	w.Raw(`{"language":`)
	w.String(r.Language)
	w.Raw(`,"version":`)
	w.String(r.Version)
	w.Raw(`,"cached":`)
	w.Bool(r.Cached)
	for _, step := range []struct {
		key string
		res *runner.Result
	}{{"compile", r.Compile}, {"run", r.Run}} {
		w.Raw(`,"` + step.key + `":`)
		if step.res == nil {
			w.Raw("null")
		} else {
			w.Result(*step.res, nil)
		}
	}
	w.Raw(`,"cases":`)
	if r.Cases == nil {
		w.Raw("null")
	} else {
		w.Raw("[")
		for i, c := range r.Cases {
			if i > 0 {
				w.Raw(",")
			}
			w.Result(c.Result, func(w *result.Writer) {
				w.Raw(`,"verdict":`)
				w.String(c.Verdict)
			})
		}
		w.Raw("]")
	}
	w.Raw(`,"files":`)
	if r.Files == nil {
		w.Raw("null")
	} else {
		w.Raw("[")
		for i, f := range r.Files {
			if i > 0 {
				w.Raw(",")
			}
			w.Raw(`{"name":`)
			w.String(f.Name)
			if !utf8.ValidString(f.Name) {
				// Two names that differ only in invalid bytes read the
				// same once replaced; the exact bytes tell them apart.
				w.Raw(`,"name_base64":`)
				w.Base64([]byte(f.Name))
			}
			w.Raw(`,"size":`)
			w.Int(int64(len(f.Content)))
			w.Raw(`,"content":`)
			w.Base64(f.Content)
			w.Raw("}")
		}
		w.Raw("]")
	}
	w.Raw(`,"files_truncated":`)
	w.Bool(r.FilesTruncated)
	w.Raw("}")
}
