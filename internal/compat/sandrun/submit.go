package sandrun

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"

	"github.com/runbox-dev/runbox/internal/compat"
)

// maxManifestBytes bounds the manifest part.
const maxManifestBytes = 64 << 10

// manifestFile is the workspace file that carries the manifest's
// interpreter, environment and output patterns with the job, so that
// /status and /outputs can answer from the native job alone (the adapter
// keeps no state). The program can see it; it is never listed.
const manifestFile = ".sandrun-manifest.json"

// manifest is Sandrun's job manifest, as far as Sandrun reads it, plus
// timeout and memory_mb, which Sandrun documents (and its Python client
// sends) but ignores, and runbox applies.
type manifest struct {
	Entrypoint  string   `json:"entrypoint"`
	Interpreter string   `json:"interpreter"`
	Environment string   `json:"environment,omitempty"`
	Args        []string `json:"args,omitempty"`
	Outputs     []string `json:"outputs,omitempty"`
	Timeout     *float64 `json:"timeout,omitempty"`
	MemoryMB    *float64 `json:"memory_mb,omitempty"`
}

// interpreter is a Sandrun interpreter name's host command and the
// native environment that must be available for it (Sandrun's own
// allowlist: python3, python, node, bash, sh).
type interpreter struct {
	command, environment string
}

var interpreters = map[string]interpreter{
	"python3": {"/usr/bin/python3", "python"},
	"python":  {"/usr/bin/python3", "python"},
	"node":    {"/usr/bin/node", "javascript"},
	"nodejs":  {"/usr/bin/node", "javascript"},
	"bash":    {"/bin/bash", "bash"},
	"sh":      {"/bin/sh", "bash"},
}

// guesses are Sandrun's entrypoints when the manifest names none.
var guesses = []struct{ file, interpreter string }{{"main.py", "python3"}, {"index.js", "node"}, {"run.sh", "bash"}}

// info is what the adapter reads of the native GET /v1/info.
type info struct {
	MaxBodyBytes  int64 `json:"max_body_bytes"`
	MaxFiles      int   `json:"max_files"`
	MaxFilesBytes int64 `json:"max_files_bytes"`
	Maxima        struct {
		WallTimeMS  int64 `json:"wall_time_ms"`
		MemoryBytes int64 `json:"memory_bytes"`
	} `json:"maxima"`
}

// nativeJob is a native POST /v1/jobs body (api.RunBody), as far as the
// adapter fills it.
type nativeJob struct {
	Command []string     `json:"command"`
	Args    []string     `json:"args,omitempty"`
	Files   []nativeFile `json:"files"`
	Outputs []string     `json:"outputs"`
	Limits  *limits      `json:"limits,omitempty"`
}

type nativeFile struct {
	Name     string `json:"name"`
	Content  string `json:"content"`
	Encoding string `json:"encoding"`
}

type limits struct {
	WallTimeMS  *int64 `json:"wall_time_ms,omitempty"`
	MemoryBytes *int64 `json:"memory_bytes,omitempty"`
}

// submit is POST /submit: the multipart upload becomes one native job.
// Its id is the native job's, 128 bits from a CSPRNG: Sandrun's
// job_<unix time>_<counter> ids are guessable, and since an id is the
// only credential for a job's logs and outputs, anyone could read
// another's.
func (h *handler) submit(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var in info
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/info", compat.RequestHeader(w), nil, &in); err != nil {
		return nativeError(ctx, err)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		return badRequest("Expected multipart/form-data with parts files and manifest")
	}
	r.Body = http.MaxBytesReader(w, r.Body, in.MaxBodyBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return badRequest("Invalid multipart body: %v", err)
	}
	// One file slot is the manifest's.
	b := newBundle(in.MaxFiles-1, in.MaxFilesBytes)
	var (
		m           manifest
		hadManifest bool
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return partError(in.MaxBodyBytes, err)
		}
		switch part.FormName() {
		case "manifest":
			if hadManifest {
				return badRequest("Invalid manifest: more than one manifest part")
			}
			hadManifest = true
			raw, err := io.ReadAll(io.LimitReader(part, maxManifestBytes+1))
			if err != nil {
				return partError(in.MaxBodyBytes, err)
			}
			if len(raw) > maxManifestBytes {
				return badRequest("Invalid manifest: larger than %d bytes", maxManifestBytes)
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				return badRequest("Invalid manifest: %v", err)
			}
		case "files":
			if err := addPart(b, part, in.MaxBodyBytes); err != nil {
				return err
			}
		}
		part.Close()
	}
	if len(b.files) == 0 {
		return badRequest("No files uploaded")
	}
	if err := complete(&m, b); err != nil {
		return err
	}
	body, err := m.native(b, &in)
	if err != nil {
		return err
	}
	if err := h.available(w, r, m.Interpreter); err != nil {
		return err
	}
	var accepted struct {
		ID string `json:"id"`
	}
	if _, err := h.n.Call(ctx, http.MethodPost, "/v1/jobs", compat.RequestHeader(w), body, &accepted); err != nil {
		return nativeError(ctx, err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"job_id": accepted.ID, "status": "queued"})
	return nil
}

// partError is the answer to a multipart part that could not be read.
func partError(maxBody int64, err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Message: "Request exceeds " + sizeFormatted(maxBody) + " limit"}
	}
	return badRequest("Invalid multipart body: %v", err)
}

// addPart adds a files part to the bundle: a fake tar, a .tar.gz/.tgz or
// .zip archive (extracted in memory, never by a shell as Sandrun does),
// or a plain file under its name. The name is taken from the
// Content-Disposition as sent (multipart.Part.FileName would keep only
// its last element) so that a nested path keeps its directories, and
// checked like an archive's names.
func addPart(b *bundle, part *multipart.Part, maxBody int64) error {
	_, params, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	name := params["filename"]
	data, err := io.ReadAll(part)
	if err != nil {
		return partError(maxBody, err)
	}
	var ferr error
	switch lower := strings.ToLower(name); {
	case strings.HasPrefix(string(data), fakeTarPrefix):
		ferr = b.addFakeTar(data)
	case strings.HasSuffix(lower, ".tar.gz") || strings.HasSuffix(lower, ".tgz"):
		ferr = b.addTarGz(name, data)
	case strings.HasSuffix(lower, ".zip"):
		ferr = b.addZip(name, data)
	default:
		if name == "" {
			return badRequest("Invalid upload: a files part has no filename")
		}
		ferr = b.add(name, strings.NewReader(string(data)))
	}
	if re, ok := errors.AsType[*refused](ferr); ok {
		return badRequest("Invalid upload: %s", re.msg)
	}
	return ferr
}

// complete fills the manifest's entrypoint and interpreter as Sandrun
// does: the manifest, else a job.json among the files, else a guess from
// main.py, index.js or run.sh; the interpreter defaults to python3.
func complete(m *manifest, b *bundle) error {
	if m.Entrypoint == "" {
		for _, f := range b.files {
			if f.name == "job.json" {
				var jm manifest
				if json.Unmarshal(f.content, &jm) == nil && jm.Entrypoint != "" {
					*m = jm
				}
			}
		}
	}
	if m.Entrypoint == "" {
		for _, g := range guesses {
			if b.seen[g.file] {
				m.Entrypoint, m.Interpreter = g.file, g.interpreter
				break
			}
		}
	}
	if m.Entrypoint == "" {
		return badRequest("No entrypoint specified")
	}
	if m.Interpreter == "" {
		m.Interpreter = "python3"
	}
	return nil
}

// native is the manifest's native job: [interpreter, entrypoint] with
// the args, every file, every workspace file asked back (Sandrun's
// output patterns are applied when they are listed: they cannot all be
// said in the native glob syntax), and the limits, bounded by the native
// maxima.
func (m *manifest) native(b *bundle, in *info) (*nativeJob, error) {
	ip, ok := interpreters[m.Interpreter]
	if !ok {
		names := make([]string, 0, len(interpreters))
		for k := range interpreters {
			names = append(names, k)
		}
		slices.Sort(names)
		return nil, badRequest("Unsupported interpreter %q (one of %s)", m.Interpreter, strings.Join(names, ", "))
	}
	entry, dir, err := cleanName(m.Entrypoint)
	if err != nil || dir {
		return nil, badRequest("Invalid entrypoint %q", m.Entrypoint)
	}
	if !b.seen[entry] {
		return nil, badRequest("Entrypoint %q is not among the uploaded files", entry)
	}
	if len(m.Outputs) > 64 {
		return nil, badRequest("Invalid manifest: more than 64 outputs patterns")
	}
	j := &nativeJob{Command: []string{ip.command, entry}, Args: m.Args, Outputs: []string{"**"}}
	var lim limits
	if m.Timeout != nil {
		most := in.Maxima.WallTimeMS / 1000
		if t := *m.Timeout; math.IsNaN(t) || t <= 0 || t > float64(most) {
			return nil, badRequest("Invalid manifest: timeout must be more than 0 and at most %d seconds", most)
		}
		ms := max(int64(math.Round(*m.Timeout*1000)), 1)
		lim.WallTimeMS = &ms
	}
	if m.MemoryMB != nil {
		most := in.Maxima.MemoryBytes >> 20
		if mb := *m.MemoryMB; math.IsNaN(mb) || mb < 1 || mb > float64(most) {
			return nil, badRequest("Invalid manifest: memory_mb must be between 1 and %d", most)
		}
		bytes := int64(*m.MemoryMB * (1 << 20))
		lim.MemoryBytes = &bytes
	}
	if lim != (limits{}) {
		j.Limits = &lim
	}
	stash, _ := json.Marshal(stashed{Interpreter: m.Interpreter, Environment: m.Environment, Entrypoint: entry, Outputs: m.Outputs})
	for _, f := range b.files {
		if f.name == manifestFile {
			return nil, badRequest("Invalid upload: %s is reserved", manifestFile)
		}
		j.Files = append(j.Files, nativeFile{Name: f.name, Content: base64.StdEncoding.EncodeToString(f.content), Encoding: "base64"})
	}
	j.Files = append(j.Files, nativeFile{Name: manifestFile, Content: string(stash), Encoding: "utf8"})
	return j, nil
}

// stashed is what manifestFile holds.
type stashed struct {
	Interpreter string   `json:"interpreter"`
	Environment string   `json:"environment"`
	Entrypoint  string   `json:"entrypoint"`
	Outputs     []string `json:"outputs"`
}

// available refuses an interpreter whose native environment this server
// does not have.
func (h *handler) available(w http.ResponseWriter, r *http.Request, name string) error {
	var envs []struct {
		Name      string `json:"name"`
		Available bool   `json:"available"`
	}
	if _, err := h.n.Call(r.Context(), http.MethodGet, "/v1/environments", compat.RequestHeader(w), nil, &envs); err != nil {
		return nativeError(r.Context(), err)
	}
	for _, e := range envs {
		if e.Name == interpreters[name].environment && e.Available {
			return nil
		}
	}
	return badRequest("Interpreter %q is not available on this server", name)
}
