package sandrun

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/runbox-dev/runbox/internal/compat"
)

// download is GET /download/{id}/{path}: one returned file's bytes. Only
// names in the job's result are served; they were read inside the box
// by runbox, never through a symlink. A path that climbs out (".." or
// absolute) is Sandrun's 403; a missing file is 404 (Sandrun answers 500).
func (h *handler) download(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("path")
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || containsDotDot(name) {
		return &apiError{Status: http.StatusForbidden, Message: "Access denied: path traversal detected"}
	}
	j, err := h.getJob(w, r)
	if err != nil {
		return err
	}
	for _, f := range j.files() {
		if f.Name == name {
			w.Header().Set("Content-Type", mimeType(name))
			w.Header().Set("Content-Length", strconv.Itoa(len(f.Content)))
			attachment(w, path.Base(name))
			w.WriteHeader(http.StatusOK)
			_, err := w.Write(f.Content)
			return err
		}
	}
	return &apiError{Status: http.StatusNotFound, Message: "File not found"}
}

func containsDotDot(name string) bool {
	for el := range strings.SplitSeq(name, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// attachment makes a browser save, never render, what a program wrote:
// served from runbox's origin, an HTML or SVG output would otherwise run
// its scripts there.
func attachment(w http.ResponseWriter, filename string) {
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "sandbox")
}

// downloadAll is GET /download/{id}: a tar.gz of the job's returned
// files, built in memory (the native answer bounds them). Sandrun then
// deletes the job; runbox does not, since the id would then be a way to
// destroy another's job, and native retention ends it.
func (h *handler) downloadAll(w http.ResponseWriter, r *http.Request) error {
	j, err := h.getJob(w, r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	now := time.Now()
	for _, f := range j.files() {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: 0o644, Size: int64(len(f.Content)), ModTime: now, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return &apiError{Status: http.StatusInternalServerError, Message: fmt.Sprintf("runbox failed: archiving %s: %v", f.Name, err)}
		}
		if _, err := tw.Write(f.Content); err != nil {
			return &apiError{Status: http.StatusInternalServerError, Message: fmt.Sprintf("runbox failed: archiving %s: %v", f.Name, err)}
		}
	}
	if err := tw.Close(); err != nil {
		return &apiError{Status: http.StatusInternalServerError, Message: "runbox failed: archiving: " + err.Error()}
	}
	if err := zw.Close(); err != nil {
		return &apiError{Status: http.StatusInternalServerError, Message: "runbox failed: archiving: " + err.Error()}
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	attachment(w, j.ID+".tar.gz")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(buf.Bytes())
	return err
}

// health is GET /health. runbox has no Sandrun worker key, so worker_id
// is null, as for an anonymous Sandrun worker; runbox's keys are at
// GET /v1/keys.
func (h *handler) health(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "healthy", "worker_id": nil})
	return nil
}

// info is GET /: Sandrun's service info, its limits the native maxima.
func (h *handler) info(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var in info
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/info", compat.RequestHeader(w), nil, &in); err != nil {
		return nativeError(ctx, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"service":     "sandrun",
		"status":      "running",
		"description": "Sandrun's API served by runbox: each job runs in a fresh runbox jail",
		"privacy":     "Jobs are kept until runbox's job retention ends them; a job id is 128 random bits",
		"limits": fmt.Sprintf("%d s wall time, %d MB RAM, %d files, %s of files at most",
			in.Maxima.WallTimeMS/1000, in.Maxima.MemoryBytes>>20, in.MaxFiles-1, sizeFormatted(in.MaxFilesBytes)),
	})
	return nil
}
