package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
)

// Problem is an RFC 9457 problem with the request id, so that a client's
// report can be matched with the server's log line.
type Problem struct {
	huma.ErrorModel
	RequestID string `json:"request_id,omitempty"`
	// RetryAfter is sent as the Retry-After header of 429 answers.
	RetryAfter int `json:"-"`
}

// GetHeaders adds Retry-After to queue-full answers.
func (p *Problem) GetHeaders() http.Header {
	if p.RetryAfter > 0 {
		return http.Header{"Retry-After": {strconv.Itoa(p.RetryAfter)}}
	}
	return nil
}

func init() {
	// Huma builds every error through this hook; it is set once, to the
	// same function, for the whole process.
	huma.NewErrorWithContext = func(ctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		base := huma.NewError(status, msg, errs...).(*huma.ErrorModel)
		for _, d := range base.Errors {
			// Huma echoes the offending value; for an unknown field or a
			// malformed body that is the whole request. Keep only small ones
			// (and measure a string without marshalling it).
			if d != nil && d.Value != nil {
				if str, ok := d.Value.(string); ok && len(str) > maxEchoBytes {
					d.Value = nil
				} else if b, err := json.Marshal(d.Value); err != nil || len(b) > maxEchoBytes {
					d.Value = nil
				}
			}
		}
		p := &Problem{ErrorModel: *base}
		if ctx != nil {
			p.RequestID = requestID(ctx.Context())
		}
		return p
	}
}

// problem makes an error with one field detail.
func problem(ctx context.Context, status int, msg, location, rule string) error {
	p := &Problem{ErrorModel: huma.ErrorModel{Status: status, Title: http.StatusText(status), Detail: msg,
		Errors: []*huma.ErrorDetail{{Location: location, Message: rule}}}, RequestID: requestID(ctx)}
	return p
}
