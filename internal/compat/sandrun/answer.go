package sandrun

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/runbox-dev/runbox/internal/compat"
)

// sandrunStatus is Sandrun's state of a native job: Sandrun has only
// completed (exit 0) and failed (anything else), so a limit, a signal, a
// cancellation and runbox failing to run the job are all failed; the
// native detail is under "runbox".
func sandrunStatus(j *job) string {
	switch j.Status {
	case "queued", "running":
		return j.Status
	case "done":
		if r := j.run(); r != nil && r.Status == "ok" && r.ExitCode == 0 {
			return "completed"
		}
	}
	return "failed"
}

func (j *job) run() *run {
	if j.Result == nil {
		return nil
	}
	return j.Result.Run
}

// exitCode is the program's exit code, or 128+n when signal n killed it
// (as a shell reports it; Sandrun does not say).
func exitCode(r *run) int {
	if r == nil {
		return 0
	}
	if r.Signal != nil {
		if n := compat.SignalNumber(*r.Signal); n > 0 {
			return 128 + n
		}
	}
	return r.ExitCode
}

// stash is the manifest the job carries (see manifestFile); zero when the
// job is not done or the program removed it.
func (j *job) stash() stashed {
	var s stashed
	if j.Result != nil {
		for _, f := range j.Result.Files {
			if f.Name == manifestFile && f.NameBase64 == "" {
				_ = json.Unmarshal(f.Content, &s)
			}
		}
	}
	return s
}

// files are the job's returned workspace files a Sandrun client may
// read: all but the stashed manifest and names that are not UTF-8.
func (j *job) files() []fileOut {
	var out []fileOut
	if j.Result != nil {
		for _, f := range j.Result.Files {
			if f.Name != manifestFile && f.NameBase64 == "" {
				out = append(out, f)
			}
		}
	}
	return out
}

// outputFiles are the files that Sandrun's output patterns select.
func (j *job) outputFiles() []fileOut {
	patterns := j.stash().Outputs
	var out []fileOut
	for _, f := range j.files() {
		if len(patterns) == 0 || slices.ContainsFunc(patterns, func(p string) bool { return matchPattern(p, f.Name) }) {
			out = append(out, f)
		}
	}
	return out
}

// matchPattern is Sandrun's output pattern (file_utils.cpp): "*" matches
// all, "*.ext" is a suffix match, "pre*" a prefix match, and a pattern
// with no star must match exactly (so "results/" never matches).
func matchPattern(p, name string) bool {
	switch {
	case p == "*":
		return true
	case strings.HasPrefix(p, "*"):
		return strings.HasSuffix(name, p[1:])
	case strings.HasSuffix(p, "*"):
		return strings.HasPrefix(name, p[:len(p)-1])
	}
	return p == name
}

type fileMeta struct {
	SizeBytes int    `json:"size_bytes"`
	SHA256    string `json:"sha256"`
	Type      string `json:"type"`
}

// fixed2 is a number printed with two decimals, as Sandrun prints
// cpu_seconds.
type fixed2 float64

func (f fixed2) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, "%.2f", float64(f)), nil }

// status is GET /status/{id}: Sandrun's status JSON, with runbox's
// signature of the result under "signature" (Sandrun's
// worker_metadata.signature signs a string that cannot be rebuilt from
// its answer; runbox's statement is in the answer, and the key is at
// GET /v1/keys).
func (h *handler) status(w http.ResponseWriter, r *http.Request) error {
	j, err := h.getJob(w, r)
	if err != nil {
		return err
	}
	st, run := j.stash(), j.run()
	meta := map[string]any{
		"cpu_seconds": fixed2(0), "memory_peak_bytes": 0, "memory_peak_mb": 0, "wall_time_ms": 0,
		"exit_code": exitCode(run), "environment": st.Environment, "interpreter": nullIfEmpty(st.Interpreter),
	}
	if st.Environment == "" {
		meta["environment"] = nil
	}
	native := map[string]any{"job_status": j.Status, "error": nullIfEmpty(j.Error), "node": nullIfEmpty(j.Node)}
	if run != nil {
		meta["cpu_seconds"] = fixed2(math.Round(float64(run.CPUTimeMS)/10) / 100)
		meta["memory_peak_bytes"], meta["memory_peak_mb"] = run.MemoryBytes, run.MemoryBytes>>20
		meta["wall_time_ms"] = run.WallTimeMS
		native["run_status"], native["signal"], native["message"] = run.Status, run.Signal, run.Message
	}
	outs := map[string]fileMeta{}
	for _, f := range j.outputFiles() {
		sum := sha256.Sum256(f.Content)
		outs[f.Name] = fileMeta{SizeBytes: len(f.Content), SHA256: hex.EncodeToString(sum[:]), Type: fileType(f.Name)}
	}
	var sig any
	if s := j.Signature; s != nil {
		sig = map[string]string{"algorithm": s.Algorithm, "key_id": s.KeyID, "statement": s.Statement, "value": s.Value, "keys_url": "/v1/keys"}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"job_id": j.ID, "status": sandrunStatus(j), "queue_position": 0,
		"execution_metadata": meta,
		"job_hash":           j.RequestSHA256,
		"output_files":       outs,
		"worker_metadata":    map[string]any{"worker_id": nil, "signature": nil},
		"signature":          sig,
		"runbox":             native,
	})
	return nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// logs is GET /logs/{id}: the program's output, once it has ended.
func (h *handler) logs(w http.ResponseWriter, r *http.Request) error {
	j, err := h.getJob(w, r)
	if err != nil {
		return err
	}
	out := map[string]string{"stdout": "", "stderr": ""}
	if run := j.run(); run != nil {
		out["stdout"], out["stderr"] = run.Stdout, run.Stderr
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type fileInfo struct {
	Name          string `json:"name"`
	Size          int    `json:"size"`
	SizeFormatted string `json:"size_formatted"`
	Type          string `json:"type"`
	MimeType      string `json:"mime_type"`
	SHA256        string `json:"sha256"`
	DownloadURL   string `json:"download_url"`
}

// outputs is GET /outputs/{id}. Sandrun's server sends files as objects
// while every Sandrun client reads them as names: files is the list of
// names, and the objects are under file_info.
func (h *handler) outputs(w http.ResponseWriter, r *http.Request) error {
	j, err := h.getJob(w, r)
	if err != nil {
		return err
	}
	names, infos := []string{}, []fileInfo{}
	for _, f := range j.outputFiles() {
		sum := sha256.Sum256(f.Content)
		names = append(names, f.Name)
		infos = append(infos, fileInfo{Name: f.Name, Size: len(f.Content), SizeFormatted: sizeFormatted(int64(len(f.Content))),
			Type: fileType(f.Name), MimeType: mimeType(f.Name), SHA256: hex.EncodeToString(sum[:]),
			DownloadURL: "/download/" + j.ID + "/" + f.Name})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"job_id": j.ID, "status": sandrunStatus(j), "total_files": len(names), "files": names, "file_info": infos,
		"files_truncated": j.Result != nil && j.Result.FilesTruncated,
	})
	return nil
}

// sizeFormatted is a size as Sandrun shows it ("1.2 KB").
func sizeFormatted(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, units := float64(n)/1024, []string{"KB", "MB", "GB", "TB"}
	i := 0
	for ; v >= 1024 && i < len(units)-1; i++ {
		v /= 1024
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// fileType is Sandrun's category of a file, by its extension.
func fileType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	for _, c := range fileTypes {
		if slices.Contains(strings.Fields(c.exts), ext) {
			return c.kind
		}
	}
	return "other"
}

var fileTypes = []struct{ kind, exts string }{
	{"image", ".png .jpg .jpeg .gif .bmp .svg .webp .tiff .ico"},
	{"model", ".pt .pth .h5 .onnx .pkl .pb .tflite .safetensors .ckpt .joblib"},
	{"video", ".mp4 .avi .mov .mkv .webm"},
	{"audio", ".mp3 .wav .flac .ogg .m4a"},
	{"data", ".csv .json .parquet .npy .npz .hdf5 .xml .yaml .yml .tsv"},
	{"text", ".txt .log .md"},
	{"archive", ".zip .tar .gz .tgz .bz2 .xz .7z"},
	{"code", ".py .js .sh .c .cpp .h .go .rs .java .ts .rb"},
	{"document", ".pdf .doc .docx .html .htm"},
}

func mimeType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
