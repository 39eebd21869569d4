package api

import (
	"github.com/runbox-dev/runbox/internal/result"
)

// FileIn is one file of a request.
type FileIn struct {
	Name     string `json:"name" minLength:"1" maxLength:"255" doc:"Path relative to the workspace; subdirectories allowed."`
	Content  string `json:"content" doc:"The file's content, in the encoding below."`
	Encoding string `json:"encoding,omitempty" enum:"utf8,base64" default:"utf8" doc:"utf8 (the default) or base64."`
}

// LimitsIn are a request's limits; absent fields take the defaults.
type LimitsIn struct {
	WallTimeMS    *int64 `json:"wall_time_ms,omitempty" minimum:"1" doc:"Wall-clock time of the program."`
	CPUTimeMS     *int64 `json:"cpu_time_ms,omitempty" minimum:"1" doc:"CPU time of the whole box."`
	MemoryBytes   *int64 `json:"memory_bytes,omitempty" minimum:"1" doc:"Memory (RAM and tmpfs pages, no swap)."`
	Processes     *int64 `json:"processes,omitempty" minimum:"1" doc:"Processes and threads at once."`
	FileSizeBytes *int64 `json:"file_size_bytes,omitempty" minimum:"1" doc:"Largest file the program may write."`
	OpenFiles     *int64 `json:"open_files,omitempty" minimum:"1" doc:"Open file descriptors per process."`
	OutputBytes   *int64 `json:"output_bytes,omitempty" minimum:"1" doc:"Bytes of stdout and of stderr kept; one more kills the box."`
	DiskBytes     *int64 `json:"disk_bytes,omitempty" minimum:"1" doc:"Size of the workspace /box and of /tmp (each)."`
}

// CaseIn is one test case.
type CaseIn struct {
	Stdin          string   `json:"stdin,omitempty"`
	Args           []string `json:"args,omitempty" maxItems:"64"`
	ExpectedOutput *string  `json:"expected_output,omitempty" doc:"Compared after trimming trailing whitespace on each line and trailing empty lines."`
}

// RunBody is the body of POST /v1/run.
type RunBody struct {
	Language      string            `json:"language,omitempty" maxLength:"32" doc:"An environment's name or alias. Exactly one of language and command."`
	Command       []string          `json:"command,omitempty" maxItems:"64" doc:"A raw argv, run with no environment."`
	Files         []FileIn          `json:"files,omitempty" maxItems:"1024" doc:"Files placed in the workspace. The first is the main file unless main names one. At most max_files (see /v1/info)."`
	Main          string            `json:"main,omitempty" maxLength:"255"`
	Stdin         string            `json:"stdin,omitempty"`
	Args          []string          `json:"args,omitempty" maxItems:"64"`
	Env           map[string]string `json:"env,omitempty" maxProperties:"128" doc:"Environment variables for the program."`
	Limits        *LimitsIn         `json:"limits,omitempty"`
	CompileLimits *LimitsIn         `json:"compile_limits,omitempty"`
	Outputs       []string          `json:"outputs,omitempty" maxItems:"16" doc:"Glob patterns of workspace files to return after the run (path.Match syntax; dir/** for everything below dir)."`
	Cases         []CaseIn          `json:"cases,omitempty" maxItems:"1024" doc:"Run once per case, each in a fresh box, after one compile. At most max_cases (see /v1/info)."`
	MergeOutput   bool              `json:"merge_output,omitempty" doc:"The run's stderr is the same descriptor as its stdout: the output arrives interleaved as written, in stdout; stderr is empty. Compile output is not merged."`
}

// CaseResult is a case's result.
type CaseResult struct {
	result.Result
	Verdict string `json:"verdict" doc:"accepted, wrong_answer, or the run's status when it did not end with ok."`
}

// FileOut is a returned workspace file.
type FileOut struct {
	Name       string `json:"name" doc:"The file's path; a byte that is not valid UTF-8 reads as U+FFFD."`
	NameBase64 string `json:"name_base64,omitempty" doc:"The path's exact bytes, in base64, when it is not valid UTF-8."`
	Size       int    `json:"size"`
	Content    []byte `json:"content" doc:"base64"`
}

// RunResponse is the body of a POST /v1/run answer.
type RunResponse struct {
	Language       string         `json:"language"`
	Version        string         `json:"version"`
	Cached         bool           `json:"cached" doc:"The compiled program came from the compile cache."`
	Compile        *result.Result `json:"compile"`
	Run            *result.Result `json:"run"`
	Cases          []CaseResult   `json:"cases"`
	Files          []FileOut      `json:"files"`
	FilesTruncated bool           `json:"files_truncated"`
}

// Environment describes one language.
type Environment struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Aliases   []string `json:"aliases"`
	Compiled  bool     `json:"compiled"`
	Available bool     `json:"available"`
	Source    string   `json:"source" doc:"The main file's default name; the compile step takes the files with its extension."`
	Image     string   `json:"image,omitempty" doc:"The OCI image whose filesystem is the box's root, when the environment names one (else the host's toolchains)."`
}

// LimitsOut are limits in the API's units.
type LimitsOut struct {
	WallTimeMS    int64 `json:"wall_time_ms"`
	CPUTimeMS     int64 `json:"cpu_time_ms"`
	MemoryBytes   int64 `json:"memory_bytes"`
	Processes     int64 `json:"processes"`
	FileSizeBytes int64 `json:"file_size_bytes"`
	OpenFiles     int64 `json:"open_files"`
	OutputBytes   int64 `json:"output_bytes"`
	DiskBytes     int64 `json:"disk_bytes"`
}

// Info is the body of GET /v1/info.
type Info struct {
	Version          string    `json:"version"`
	CgroupVersion    string    `json:"cgroup_version"`
	Defaults         LimitsOut `json:"defaults"`
	Maxima           LimitsOut `json:"maxima"`
	MaxBoxes         int       `json:"max_boxes" doc:"Boxes running at once."`
	QueueLength      int       `json:"queue_length" doc:"Requests that may wait for a box."`
	MaxBodyBytes     int64     `json:"max_body_bytes"`
	MaxFiles         int       `json:"max_files"`
	MaxFilesBytes    int64     `json:"max_files_bytes"`
	MaxCases         int       `json:"max_cases"`
	MaxResponseBytes int64     `json:"max_response_bytes" doc:"Most output one answer may carry, counted at its worst before the run."`
	CompileCacheMB   int64     `json:"compile_cache_mb"`
}
