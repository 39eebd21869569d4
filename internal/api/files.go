package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/session"
)

// A session's files, raw: PUT, GET and DELETE /v1/sessions/{id}/files/{path}
// and GET /v1/sessions/{id}/files?path=DIR. Every path is resolved inside
// the box by its init (never by the host); see jail.Session. Bodies are at
// most max_files_size bytes and held in the memory budget while they move.

func (s *Server) registerFiles(api huma.API) {
	s.mux.HandleFunc("PUT /v1/sessions/{id}/files/{path...}", s.putFile)
	s.mux.HandleFunc("GET /v1/sessions/{id}/files/{path...}", s.getFile)
	s.mux.HandleFunc("DELETE /v1/sessions/{id}/files/{path...}", s.deleteFile)
	s.mux.HandleFunc("GET /v1/sessions/{id}/files", s.listFiles)
	// The handlers are plain: their operations are described here for the
	// OpenAPI document.
	idParam := &huma.Param{Name: "id", In: "path", Required: true, Schema: &huma.Schema{Type: "string"}}
	pathParam := &huma.Param{Name: "path", In: "path", Required: true, Description: "The path in the box without its leading slash: box/… or tmp/… (slashes allowed).", Schema: &huma.Schema{Type: "string"}}
	problemResp := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{"application/problem+json": {
			Schema: api.OpenAPI().Components.Schemas.Schema(reflectOf[Problem](), true, "Problem")}}}
	}
	errs := map[string]*huma.Response{"404": problemResp("No such session or file."), "422": problemResp("The path breaks a rule.")}
	with := func(extra map[string]*huma.Response) map[string]*huma.Response {
		out := map[string]*huma.Response{}
		for k, v := range errs {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	raw := map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}
	oa := api.OpenAPI()
	oa.AddOperation(&huma.Operation{OperationID: "put-session-file", Method: http.MethodPut, Path: "/v1/sessions/{id}/files/{path}",
		Summary:     "Write a file into a session (raw bytes; missing directories are made)",
		Parameters:  []*huma.Param{idParam, pathParam, {Name: "mode", In: "query", Description: "Permission bits, octal (default 644).", Schema: &huma.Schema{Type: "string"}}},
		RequestBody: &huma.RequestBody{Required: true, Content: raw},
		Responses: with(map[string]*huma.Response{"204": {Description: "Written."},
			"413": problemResp("Larger than max_files_size or the session's file_size_bytes."), "507": problemResp("The session's disk is full.")})})
	oa.AddOperation(&huma.Operation{OperationID: "get-session-file", Method: http.MethodGet, Path: "/v1/sessions/{id}/files/{path}",
		Summary: "Read a regular file of a session (raw bytes)", Parameters: []*huma.Param{idParam, pathParam},
		Responses: with(map[string]*huma.Response{"200": {Description: "The file's bytes.", Content: raw}, "413": problemResp("Larger than max_files_size.")})})
	oa.AddOperation(&huma.Operation{OperationID: "delete-session-file", Method: http.MethodDelete, Path: "/v1/sessions/{id}/files/{path}",
		Summary: "Delete a file, symlink or empty directory of a session", Parameters: []*huma.Param{idParam, pathParam},
		Responses: with(map[string]*huma.Response{"204": {Description: "Deleted."}, "409": problemResp("The directory is not empty.")})})
	oa.AddOperation(&huma.Operation{OperationID: "list-session-files", Method: http.MethodGet, Path: "/v1/sessions/{id}/files",
		Summary:    "List a directory of a session",
		Parameters: []*huma.Param{idParam, {Name: "path", In: "query", Description: "The directory (default /box).", Schema: &huma.Schema{Type: "string"}}},
		Responses: with(map[string]*huma.Response{"200": {Description: "The entries.", Content: map[string]*huma.MediaType{"application/json": {
			Schema: api.OpenAPI().Components.Schemas.Schema(reflectOf[FileList](), true, "FileList")}}}})})
}

// fileSession finds the session of a file request, or answers.
func (s *Server) fileSession(w http.ResponseWriter, r *http.Request, list bool) (*session.Session, string, bool) {
	ctx := r.Context()
	ss, err := s.session(ctx, r.PathValue("id"))
	if err != nil {
		writeProblem(w, err.(*Problem))
		return nil, "", false
	}
	var p string
	if raw := r.PathValue("path"); !list {
		// The URL names the box path without its leading slash:
		// files/box/src/main.py is /box/src/main.py, files/tmp/x is /tmp/x.
		if raw != "box" && raw != "tmp" && !strings.HasPrefix(raw, "box/") && !strings.HasPrefix(raw, "tmp/") {
			writeProblem(w, invalid(ctx, "path.path", "the box path without its leading slash: box/… or tmp/…").(*Problem))
			return nil, "", false
		}
		p = "/" + raw
	} else {
		p = r.URL.Query().Get("path")
		if p == "" {
			p = "/box"
		}
	}
	if len(p) > 4096 || strings.ContainsRune(p, 0) {
		writeProblem(w, invalid(ctx, "path.path", "at most 4096 bytes, no NUL").(*Problem))
		return nil, "", false
	}
	return ss, p, true
}

// fileCallTime bounds a file call (the jail bounds each operation too).
const fileCallTime = 30 * time.Second

// hold takes n bytes of the memory budget for a file call, or answers 429.
func (s *Server) hold(w http.ResponseWriter, ctx context.Context, n int64) (release func(), ok bool) {
	if !s.budget.take(n) {
		writeProblem(w, busy(ctx, "the server is holding as much as its memory budget allows; retry later"))
		return nil, false
	}
	return func() { s.budget.give(n) }, true
}

func (s *Server) putFile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ss, p, ok := s.fileSession(w, r, false)
	if !ok {
		return
	}
	max := s.cfg.MaxFilesBytes
	if r.ContentLength > max {
		writeProblem(w, problem(ctx, http.StatusRequestEntityTooLarge, "file too large", "body",
			fmt.Sprintf("at most %d bytes per call (max_files_size)", max)).(*Problem))
		return
	}
	mode := uint32(0o644)
	if m := r.URL.Query().Get("mode"); m != "" {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil || v > 0o777 {
			writeProblem(w, invalid(ctx, "query.mode", "octal permission bits, 0 to 777").(*Problem))
			return
		}
		mode = uint32(v)
	}
	want := max
	if r.ContentLength >= 0 {
		want = r.ContentLength
	}
	release, ok := s.hold(w, ctx, want)
	if !ok {
		return
	}
	defer release()
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, want))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, problem(ctx, http.StatusRequestEntityTooLarge, "file too large", "body",
				fmt.Sprintf("at most %d bytes per call (max_files_size)", max)).(*Problem))
			return
		}
		writeProblem(w, bodyError(ctx, err))
		return
	}
	cctx, cancel := context.WithTimeout(ctx, fileCallTime)
	defer cancel()
	if err := ss.WriteFile(cctx, p, data, mode); err != nil {
		s.fileFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ss, p, ok := s.fileSession(w, r, false)
	if !ok {
		return
	}
	max := s.cfg.MaxFilesBytes
	release, ok := s.hold(w, ctx, max)
	if !ok {
		return
	}
	defer release()
	cctx, cancel := context.WithTimeout(ctx, fileCallTime)
	defer cancel()
	data, err := ss.ReadFile(cctx, p, max)
	if err != nil {
		s.fileFailed(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.Copy(w, bytes.NewReader(data))
}

func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	ss, p, ok := s.fileSession(w, r, false)
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(r.Context(), fileCallTime)
	defer cancel()
	if err := ss.Remove(cctx, p); err != nil {
		s.fileFailed(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	ss, p, ok := s.fileSession(w, r, true)
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(r.Context(), fileCallTime)
	defer cancel()
	entries, err := ss.List(cctx, p)
	out := FileList{Path: p, Entries: []FileEntry{}}
	if errors.Is(err, runner.ErrListTruncated) {
		out.Truncated, err = true, nil
	}
	if err != nil {
		s.fileFailed(w, r, err)
		return
	}
	for _, e := range entries {
		fe := FileEntry{Name: e.Name, Type: e.Type, Size: e.Size, Mode: fmt.Sprintf("%04o", e.Mode), ModTime: e.ModTime.UTC()}
		if !utf8.ValidString(e.Name) {
			fe.Name = strings.ToValidUTF8(e.Name, "\uFFFD")
			fe.NameBase64 = base64Std(e.Name)
		}
		out.Entries = append(out.Entries, fe)
	}
	writeJSON(w, http.StatusOK, out)
}

// fileFailed answers a failed file call.
func (s *Server) fileFailed(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	if p := fileProblem(ctx, "path.path", err); p != nil {
		writeProblem(w, p)
		return
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		writeProblem(w, problem(ctx, http.StatusGatewayTimeout, "the file operation took too long", "path.path", "the box did not finish it in time").(*Problem))
		return
	}
	writeProblem(w, s.sessionError(ctx, err).(*Problem))
}

func reflectOf[T any]() reflect.Type { return reflect.TypeOf((*T)(nil)).Elem() }

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// writeJSON writes a small JSON answer outside huma.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
