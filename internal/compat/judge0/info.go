package judge0

import (
	"context"
	"net/http"

	"github.com/runbox-dev/runbox/internal/compat"
)

// Judge0's own bounds for what runbox accepts but does not apply, or
// applies in its own way (judge0.conf, config.rb).
const (
	maxCPUExtraTime   = 5      // s
	defCPUExtraTime   = 1      // s
	defStackLimit     = 64000  // KB
	maxStackLimit     = 128000 // KB
	maxNumberOfRuns   = 1      // runbox runs a submission once
	maxBatchSize      = 20     // MAX_SUBMISSION_BATCH_SIZE
	maxTextFieldChars = 512    // compiler_options, command_line_arguments
	homepage          = "https://github.com/runbox-dev/runbox"
)

// limitsOut is the native api.LimitsOut.
type limitsOut struct {
	WallTimeMS    int64 `json:"wall_time_ms"`
	CPUTimeMS     int64 `json:"cpu_time_ms"`
	MemoryBytes   int64 `json:"memory_bytes"`
	Processes     int64 `json:"processes"`
	FileSizeBytes int64 `json:"file_size_bytes"`
	OutputBytes   int64 `json:"output_bytes"`
}

// info is what the adapter reads of the native GET /v1/info.
type info struct {
	Version       string    `json:"version"`
	Defaults      limitsOut `json:"defaults"`
	Maxima        limitsOut `json:"maxima"`
	QueueLength   int       `json:"queue_length"`
	MaxBodyBytes  int64     `json:"max_body_bytes"`
	MaxFiles      int       `json:"max_files"`
	MaxFilesBytes int64     `json:"max_files_bytes"`
}

// info reads the native GET /v1/info each time: it is in process and
// small, and the operator may reload the configuration.
func (h *handler) info(ctx context.Context, hdr http.Header) (*info, error) {
	var in info
	if _, err := h.n.Call(ctx, http.MethodGet, "/v1/info", hdr, nil, &in); err != nil {
		return nil, nativeError(ctx, err)
	}
	return &in, nil
}

func (h *handler) about(w http.ResponseWriter, r *http.Request) error {
	in, err := h.info(r.Context(), compat.RequestHeader(w))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"version": in.Version, "homepage": homepage,
		"source_code": homepage, "maintainer": "runbox (Judge0 CE compatible API)"})
	return nil
}

func (h *handler) version(w http.ResponseWriter, r *http.Request) error {
	in, err := h.info(r.Context(), compat.RequestHeader(w))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(in.Version))
	return nil
}

// configInfo answers GET /config_info with Judge0's names and units
// (seconds, KB); values are the native server's.
func (h *handler) configInfo(w http.ResponseWriter, r *http.Request) error {
	in, err := h.info(r.Context(), compat.RequestHeader(w))
	if err != nil {
		return err
	}
	d, m := in.Defaults, in.Maxima
	writeJSON(w, http.StatusOK, map[string]any{
		"maintenance_mode":                                 false,
		"enable_wait_result":                               true,
		"enable_compiler_options":                          false,
		"allowed_languages_for_compile_options":            []string{},
		"enable_command_line_arguments":                    true,
		"enable_submission_delete":                         false,
		"enable_callbacks":                                 true,
		"enable_additional_files":                          true,
		"max_queue_size":                                   in.QueueLength,
		"cpu_time_limit":                                   seconds(d.CPUTimeMS),
		"max_cpu_time_limit":                               seconds(m.CPUTimeMS),
		"cpu_extra_time":                                   defCPUExtraTime,
		"max_cpu_extra_time":                               maxCPUExtraTime,
		"wall_time_limit":                                  seconds(d.WallTimeMS),
		"max_wall_time_limit":                              seconds(m.WallTimeMS),
		"memory_limit":                                     d.MemoryBytes / 1024,
		"max_memory_limit":                                 m.MemoryBytes / 1024,
		"stack_limit":                                      defStackLimit,
		"max_stack_limit":                                  maxStackLimit,
		"max_processes_and_or_threads":                     d.Processes,
		"max_max_processes_and_or_threads":                 m.Processes,
		"enable_per_process_and_thread_time_limit":         false,
		"allow_enable_per_process_and_thread_time_limit":   false,
		"enable_per_process_and_thread_memory_limit":       false,
		"allow_enable_per_process_and_thread_memory_limit": false,
		"max_file_size":                                    d.FileSizeBytes / 1024,
		"max_max_file_size":                                m.FileSizeBytes / 1024,
		"number_of_runs":                                   1,
		"max_number_of_runs":                               maxNumberOfRuns,
		"redirect_stderr_to_stdout":                        false,
		"max_extract_size":                                 in.MaxFilesBytes / 1024,
		"enable_batched_submissions":                       true,
		"max_submission_batch_size":                        maxBatchSize,
		"allow_enable_network":                             false,
		"enable_network":                                   false,
	})
	return nil
}

func seconds(ms int64) float64 { return float64(ms) / 1000 }
