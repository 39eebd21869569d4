package sandkasten

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Sandkasten's request bounds (its client schemas).
const (
	maxContent = 65536 // characters of a file, and of stdin
	maxFiles   = 10
	maxEnvVars = 16
	maxArgs    = 100
	maxArgLen  = 4096
	maxEnvVal  = 256
)

var (
	fileNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,32}$`)
	envNameRE  = regexp.MustCompile(`^[a-zA-Z0-9_]{1,64}$`)
	dotsRE     = regexp.MustCompile(`^\.*$`)
)

type file struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

type envVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// buildRequest is Sandkasten's BuildRequest.
type buildRequest struct {
	Environment *string `json:"environment"`
	MainFile    *struct {
		Name    *string `json:"name"`
		Content *string `json:"content"`
	} `json:"main_file"`
	Files         []file    `json:"files"`
	EnvVars       []envVar  `json:"env_vars"`
	CompileLimits limitsOpt `json:"compile_limits"`
	mainName      string    // the main file's name, its default filled in
	id            string    // the program id
	size          int64     // bytes held
}

// runRequest is Sandkasten's RunRequest.
type runRequest struct {
	Stdin     *string   `json:"stdin"`
	Args      []string  `json:"args"`
	Files     []file    `json:"files"`
	EnvVars   []envVar  `json:"env_vars"`
	RunLimits limitsOpt `json:"run_limits"`
}

// check applies the schema's rules poem-openapi checks (a 400 in plain
// text), then Sandkasten's own (invalid_file_names, invalid_env_vars).
func (b *buildRequest) check() error {
	switch {
	case b.Environment == nil:
		return payloadError("field `environment` is required")
	case b.MainFile == nil:
		return payloadError("field `main_file` is required")
	case b.MainFile.Content == nil:
		return payloadError("field `main_file.content` is required")
	case utf8.RuneCountInString(*b.MainFile.Content) > maxContent:
		return payloadError("field `main_file.content` verification failed. maxLength(%d)", maxContent)
	case b.MainFile.Name != nil && !fileNameRE.MatchString(*b.MainFile.Name):
		return payloadError("field `main_file.name` verification failed. pattern(%s)", fileNameRE)
	}
	if err := checkFiles("files", b.Files); err != nil {
		return err
	}
	if err := checkEnvVars("env_vars", b.EnvVars); err != nil {
		return err
	}
	return b.CompileLimits.check("compile_limits")
}

func (q *runRequest) check() error {
	switch {
	case q.Stdin != nil && utf8.RuneCountInString(*q.Stdin) > maxContent:
		return payloadError("field `stdin` verification failed. maxLength(%d)", maxContent)
	case len(q.Args) > maxArgs:
		return payloadError("field `args` verification failed. maxItems(%d)", maxArgs)
	}
	for _, a := range q.Args {
		if strings.ContainsRune(a, 0) || utf8.RuneCountInString(a) > maxArgLen {
			return payloadError("field `args` verification failed. pattern(^[^\\0]{0,%d}$)", maxArgLen)
		}
	}
	if err := checkFiles("files", q.Files); err != nil {
		return err
	}
	if err := checkEnvVars("env_vars", q.EnvVars); err != nil {
		return err
	}
	return q.RunLimits.check("run_limits")
}

func checkFiles(field string, files []file) error {
	if len(files) > maxFiles {
		return payloadError("field `%s` verification failed. maxItems(%d)", field, maxFiles)
	}
	for _, f := range files {
		if !fileNameRE.MatchString(f.Name) {
			return payloadError("field `%s.name` verification failed. pattern(%s)", field, fileNameRE)
		}
		if utf8.RuneCountInString(f.Content) > maxContent {
			return payloadError("field `%s.content` verification failed. maxLength(%d)", field, maxContent)
		}
	}
	return nil
}

func checkEnvVars(field string, vars []envVar) error {
	if len(vars) > maxEnvVars {
		return payloadError("field `%s` verification failed. maxItems(%d)", field, maxEnvVars)
	}
	for _, v := range vars {
		if !envNameRE.MatchString(v.Name) {
			return payloadError("field `%s.name` verification failed. pattern(%s)", field, envNameRE)
		}
		if strings.ContainsRune(v.Value, 0) || utf8.RuneCountInString(v.Value) > maxEnvVal {
			return payloadError("field `%s.value` verification failed. pattern(^[^\\0]{0,%d}$)", field, maxEnvVal)
		}
	}
	return nil
}

// uniqueNames is Sandkasten's check_files: no name of dots only, no name
// twice (the main file's included).
func uniqueNames(names ...string) bool {
	seen := map[string]bool{}
	for _, n := range names {
		if dotsRE.MatchString(n) || seen[n] {
			return false
		}
		seen[n] = true
	}
	return true
}

// prepare fills in the main file's name (the environment's default
// source), checks the names, and computes the program id.
func (b *buildRequest) prepare(e environment) error {
	b.mainName = e.Source
	if b.MainFile.Name != nil {
		b.mainName = *b.MainFile.Name
	}
	names := []string{b.mainName}
	for _, f := range b.Files {
		names = append(names, f.Name)
	}
	if !uniqueNames(names...) {
		return errInvalidFileNames
	}
	b.id = b.programID()
	b.size = int64(len(*b.MainFile.Content))
	for _, f := range b.Files {
		b.size += int64(len(f.Name) + len(f.Content))
	}
	for _, v := range b.EnvVars {
		b.size += int64(len(v.Name) + len(v.Value))
	}
	return nil
}

// programID is the first 128 bits of SHA-256 over the environment, the
// files (in name order: their order does not change the program) and the
// build's variables, each length-prefixed, written as a UUID: the type
// Sandkasten's client reads a program id as.
func (b *buildRequest) programID() string {
	h := sha256.New()
	put := func(s string) {
		_ = binary.Write(h, binary.BigEndian, uint64(len(s)))
		h.Write([]byte(s))
	}
	put(*b.Environment)
	put(b.mainName)
	put(*b.MainFile.Content)
	files := slices.Clone(b.Files)
	slices.SortFunc(files, func(x, y file) int { return strings.Compare(x.Name, y.Name) })
	for _, f := range files {
		put(f.Name)
		put(f.Content)
	}
	put("env")
	for _, v := range b.EnvVars {
		put(v.Name)
		put(v.Value)
	}
	s := h.Sum(nil)
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// cache holds the programs built: their build requests, bounded in count
// and bytes, each dropped ttl after its last use.
type cache struct {
	max      int
	maxBytes int64
	ttl      time.Duration
	now      func() time.Time

	// mu guards the programs and what they hold.
	mu    sync.Mutex
	progs map[string]*entry
	bytes int64
}

type entry struct {
	build    *buildRequest
	lastUsed time.Time
}

func newCache(max int, maxBytes int64, ttl time.Duration, now func() time.Time) *cache {
	return &cache{max: max, maxBytes: maxBytes, ttl: ttl, now: now, progs: map[string]*entry{}}
}

// get is the program id names, its last use now, or nil.
func (c *cache) get(id string) *buildRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire()
	e, ok := c.progs[id]
	if !ok {
		return nil
	}
	e.lastUsed = c.now()
	return e.build
}

// put keeps b, dropping the least recently used programs to make room,
// and says whether the program was known already.
func (c *cache) put(b *buildRequest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire()
	if e, ok := c.progs[b.id]; ok {
		e.lastUsed = c.now()
		return true
	}
	if b.size > c.maxBytes {
		return false // too large to keep: it works once
	}
	for len(c.progs) >= c.max || c.bytes+b.size > c.maxBytes {
		var oldest string
		for id, e := range c.progs {
			if oldest == "" || e.lastUsed.Before(c.progs[oldest].lastUsed) {
				oldest = id
			}
		}
		c.drop(oldest)
	}
	c.progs[b.id] = &entry{build: b, lastUsed: c.now()}
	c.bytes += b.size
	return false
}

func (c *cache) expire() {
	now := c.now()
	for id, e := range c.progs {
		if now.Sub(e.lastUsed) > c.ttl {
			c.drop(id)
		}
	}
}

func (c *cache) drop(id string) {
	c.bytes -= c.progs[id].build.size
	delete(c.progs, id)
}

// normalizeUUID is a UUID as programID writes it: lower case, dashed.
func normalizeUUID(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "-", ""))
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
