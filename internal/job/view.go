package job

import (
	"encoding/json"
	"time"

	"github.com/runbox-dev/runbox/internal/job/sign"
)

// view is a job as the API shows it.
type view struct {
	ID            string          `json:"id"`
	Status        string          `json:"status"`
	CreatedAt     time.Time       `json:"created_at"`
	StartedAt     time.Time       `json:"started_at,omitzero"`
	FinishedAt    time.Time       `json:"finished_at,omitzero"`
	Node          string          `json:"node,omitempty"`
	Runs          int             `json:"runs"`
	RequestSHA256 string          `json:"request_sha256"`
	Error         string          `json:"error,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
	Signature     *sign.Signature `json:"signature,omitempty"`
	Callback      *callbackView   `json:"callback,omitempty"`
	Webhook       *Webhook        `json:"webhook,omitempty"`
	URL           string          `json:"url"`
}

// callbackView shows where a callback goes, not its headers (they may
// carry the receiver's credentials).
type callbackView struct {
	URL string `json:"url"`
}

// View is a job's JSON as the API serves it, with its result (the Work
// function's JSON, when the job is done).
func View(rec Record, result []byte) json.RawMessage {
	v := view{ID: rec.ID, Status: rec.Status, CreatedAt: rec.CreatedAt, StartedAt: rec.StartedAt, FinishedAt: rec.FinishedAt,
		Node: rec.Node, Runs: rec.Runs, RequestSHA256: rec.RequestSHA256, Error: rec.Error, Signature: rec.Signature,
		Webhook: rec.Webhook, URL: "/v1/jobs/" + rec.ID}
	if len(result) > 0 {
		v.Result = result
	}
	if rec.Callback != nil {
		v.Callback = &callbackView{URL: rec.Callback.URL}
	}
	b, _ := json.Marshal(v)
	return b
}
