package judge0

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/runbox-dev/runbox/internal/compat"
)

// query is a submission route's query parameters.
type query struct {
	b64    bool
	wait   bool
	fields []string
}

// parseQuery reads base64_encoded, wait and fields. base64_encoded
// defaults to false, as Judge0's documentation says (its code at HEAD
// reads anything but "false" as true; a client written from the docs
// sends plain text without the parameter).
func parseQuery(q url.Values) (query, error) {
	var out query
	var err error
	if out.b64, err = flag(q, "base64_encoded"); err != nil {
		return out, err
	}
	if out.wait, err = flag(q, "wait"); err != nil {
		return out, err
	}
	out.fields, err = parseFields(q.Get("fields"))
	return out, err
}

func flag(q url.Values, name string) (bool, error) {
	switch strings.ToLower(q.Get(name)) {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, badRequest("%s must be true or false", name)
}

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("the body is larger than %d bytes (the server's max_body_bytes)", limit)}
	case err != nil:
		return nil, badRequest("cannot read the body: %v", err)
	}
	return body, nil
}

// create answers POST /submissions.
func (h *handler) create(w http.ResponseWriter, r *http.Request) error {
	ctx, hdr := r.Context(), compat.RequestHeader(w)
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	in, err := h.info(ctx, hdr)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, in.MaxBodyBytes)
	if err != nil {
		return err
	}
	envs, err := h.environments(ctx, hdr)
	if err != nil {
		return err
	}
	s, err := parseSubmission(body, q.b64, q.wait, in, envs)
	if err != nil {
		return err
	}
	if !q.wait {
		token, err := h.submit(r, hdr, s)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, map[string]string{"token": token})
		return nil
	}
	o := &output{createdAt: time.Now()}
	var res runResponse
	if _, err := h.n.Call(ctx, http.MethodPost, "/v1/run", hdr, s.body, &res); err != nil {
		return nativeError(ctx, err)
	}
	o.finishedAt = time.Now()
	fromRun(o, &res)
	ans, err := o.encode(q.fields, q.b64)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ans)
	return nil
}

// submit queues s as a native job; its id is the submission's token.
func (h *handler) submit(r *http.Request, hdr http.Header, s *submission) (string, error) {
	var acc struct {
		ID string `json:"id"`
	}
	if _, err := h.n.Call(r.Context(), http.MethodPost, "/v1/jobs", hdr, s.body, &acc); err != nil {
		return "", nativeError(r.Context(), err)
	}
	return acc.ID, nil
}

// get reads the native job token as a Judge0 submission; nil when there
// is no such job.
func (h *handler) get(r *http.Request, hdr http.Header, token string) (*output, error) {
	var j jobView
	if _, err := h.n.Call(r.Context(), http.MethodGet, "/v1/jobs/"+url.PathEscape(token), hdr, nil, &j); err != nil {
		var p *compat.Problem
		// A token the native API cannot even parse names no job either.
		if errors.As(err, &p) && (p.Status == http.StatusNotFound || p.Status == http.StatusUnprocessableEntity) {
			return nil, nil
		}
		return nil, nativeError(r.Context(), err)
	}
	return fromJob(&j), nil
}

// show answers GET /submissions/{token}.
func (h *handler) show(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	o, err := h.get(r, compat.RequestHeader(w), r.PathValue("token"))
	if err != nil {
		return err
	}
	if o == nil {
		return &apiError{Status: http.StatusNotFound, Message: "submission not found"}
	}
	ans, err := o.encode(q.fields, q.b64)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// batch answers POST and GET /submissions/batch.
func (h *handler) batch(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		return h.batchGet(w, r)
	case http.MethodPost:
		return h.batchCreate(w, r)
	}
	w.Header().Set("Allow", "GET, POST")
	return &apiError{Status: http.StatusMethodNotAllowed, Message: "method not allowed"}
}

func (h *handler) batchCreate(w http.ResponseWriter, r *http.Request) error {
	ctx, hdr := r.Context(), compat.RequestHeader(w)
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	in, err := h.info(ctx, hdr)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, in.MaxBodyBytes)
	if err != nil {
		return err
	}
	var req struct {
		Submissions []json.RawMessage `json:"submissions"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return badRequest("the body is not a JSON object with submissions: %v", err)
	}
	switch n := len(req.Submissions); {
	case n == 0:
		return badRequest("there are no submissions in the batch")
	case n > maxBatchSize:
		return badRequest("number of submissions in a batch should be less than or equal to %d", maxBatchSize)
	}
	envs, err := h.environments(ctx, hdr)
	if err != nil {
		return err
	}
	// Each submission answers on its own: one bad submission does not
	// keep the others from running, as in Judge0.
	out := make([]any, len(req.Submissions))
	for i, raw := range req.Submissions {
		s, err := parseSubmission(raw, q.b64, false, in, envs)
		var token string
		if err == nil {
			token, err = h.submit(r, hdr, s)
		}
		var fe fieldErrors
		var ae *apiError
		switch {
		case err == nil:
			out[i] = map[string]string{"token": token}
		case errors.As(err, &fe):
			out[i] = fe
		case errors.As(err, &ae):
			out[i] = map[string]string{"error": ae.Message}
		default:
			return err
		}
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (h *handler) batchGet(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	var tokens []string
	for _, t := range strings.Split(r.URL.Query().Get("tokens"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
		}
	}
	switch {
	case len(tokens) == 0:
		return badRequest("tokens is required")
	case len(tokens) > maxBatchSize:
		return badRequest("number of tokens should be less than or equal to %d", maxBatchSize)
	}
	out := make([]any, len(tokens))
	for i, t := range tokens {
		o, err := h.get(r, compat.RequestHeader(w), t)
		if err != nil {
			return err
		}
		if o == nil {
			continue // Judge0 leaves an unknown token's place null
		}
		if out[i], err = o.encode(q.fields, q.b64); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"submissions": out})
	return nil
}
