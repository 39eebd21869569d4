// Package session keeps long-lived boxes: a session is a box opened once
// (runner.Box) into which commands are started later, in the foreground or
// in the background, several at once, and whose files are read and written
// through the box's own view. The Manager bounds how many sessions live at
// once and ends each on request, after its idle timeout, at its maximum
// lifetime, and when the server stops. It never touches the kernel: the
// runner opens the box and the jail keeps it.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/runbox-dev/runbox/internal/runner"
)

// Config bounds the sessions of a server. Zero fields take DefaultConfig's.
type Config struct {
	MaxSessions    int           // sessions at once
	MaxCommands    int           // commands running at once in one session
	KeptCommands   int           // finished commands a session keeps for GET and attach
	IdleTimeout    time.Duration // default idle timeout of a session
	MaxIdleTimeout time.Duration // most a request may ask
	Lifetime       time.Duration // default maximum lifetime of a session
	MaxLifetime    time.Duration // most a request may ask
}

// DefaultConfig is the configuration of a server that sets none.
var DefaultConfig = Config{
	MaxSessions:    32,
	MaxCommands:    16,
	KeptCommands:   16,
	IdleTimeout:    5 * time.Minute,
	MaxIdleTimeout: time.Hour,
	Lifetime:       time.Hour,
	MaxLifetime:    24 * time.Hour,
}

func (c Config) withDefaults() Config {
	d := DefaultConfig
	if c.MaxSessions == 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.MaxCommands == 0 {
		c.MaxCommands = d.MaxCommands
	}
	if c.KeptCommands == 0 {
		c.KeptCommands = d.KeptCommands
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.MaxIdleTimeout == 0 {
		c.MaxIdleTimeout = max(d.MaxIdleTimeout, c.IdleTimeout)
	}
	if c.Lifetime == 0 {
		c.Lifetime = d.Lifetime
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = max(d.MaxLifetime, c.Lifetime)
	}
	return c
}

// Check reports a configuration the server cannot work with.
func (c Config) Check() error {
	c = c.withDefaults()
	switch {
	case c.MaxSessions < 1 || c.MaxCommands < 1 || c.KeptCommands < 1:
		return errors.New("max_sessions, max_session_commands and kept_commands must be at least 1")
	case c.IdleTimeout < 0 || c.IdleTimeout > c.MaxIdleTimeout:
		return errors.New("session_idle_timeout must be positive and at most session_max_idle_timeout")
	case c.Lifetime < 0 || c.Lifetime > c.MaxLifetime:
		return errors.New("session_lifetime must be positive and at most session_max_lifetime")
	}
	return nil
}

// Errors a caller maps to its own answers.
var (
	ErrNotFound  = errors.New("no such session")
	ErrTooMany   = errors.New("too many sessions")
	ErrBusy      = errors.New("too many commands running in this session")
	ErrEnded     = errors.New("the session has ended")
	ErrNoCommand = errors.New("no such command")
	// ErrTimeout: an idle timeout or lifetime outside (0, the maximum].
	ErrTimeout = errors.New("timeout out of range")
)

// Spec describes a session to create.
type Spec struct {
	Language    string // optional
	Env         []string
	Cwd         string
	Files       []runner.File
	Limits      runner.Limits
	IdleTimeout time.Duration // 0: the server's default
	Lifetime    time.Duration // 0: the server's default
	// Owner is who made the session (an API key's name, or ""); OwnerMax
	// bounds the sessions one owner holds at once (0: no bound of its own).
	Owner    string
	OwnerMax int
	// Ceiling caps the box's limits, defaults included (an API key's
	// maxima).
	Ceiling runner.Limits
}

// Manager holds the server's sessions.
type Manager struct {
	r   *runner.Runner
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	sessions  map[string]*Session
	opening   int            // sessions being created, counted against MaxSessions
	openingBy map[string]int // the same, by owner
	closed    bool
	onEnd     func(id string)

	stop, done chan struct{}
}

// NewManager starts a manager and its reaper (idle and lifetime expiry).
func NewManager(r *runner.Runner, cfg Config, log *slog.Logger) *Manager {
	m := &Manager{r: r, cfg: cfg.withDefaults(), log: log, sessions: map[string]*Session{}, openingBy: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go m.reaper()
	return m
}

// OnEnd makes f be called with the id of each session that ends, however
// it ends (after its box is gone).
func (m *Manager) OnEnd(f func(id string)) {
	m.mu.Lock()
	m.onEnd = f
	m.mu.Unlock()
}

// Config is the manager's configuration, defaults filled.
func (m *Manager) Config() Config { return m.cfg }

// newID returns 128 random bits in hex.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// Create opens a session.
func (m *Manager) Create(ctx context.Context, spec Spec) (*Session, error) {
	idle, life := spec.IdleTimeout, spec.Lifetime
	if idle == 0 {
		idle = m.cfg.IdleTimeout
	}
	if life == 0 {
		life = m.cfg.Lifetime
	}
	if idle < 0 || idle > m.cfg.MaxIdleTimeout {
		return nil, fmt.Errorf("%w: idle timeout %v is above the server's maximum %v", ErrTimeout, idle, m.cfg.MaxIdleTimeout)
	}
	if life < 0 || life > m.cfg.MaxLifetime {
		return nil, fmt.Errorf("%w: lifetime %v is above the server's maximum %v", ErrTimeout, life, m.cfg.MaxLifetime)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrEnded
	}
	if len(m.sessions)+m.opening >= m.cfg.MaxSessions {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %d at once on this server", ErrTooMany, m.cfg.MaxSessions)
	}
	if spec.OwnerMax > 0 && m.ownedLocked(spec.Owner) >= spec.OwnerMax {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %d at once for this key", ErrTooMany, spec.OwnerMax)
	}
	m.opening++
	m.openingBy[spec.Owner]++
	m.mu.Unlock()
	box, err := m.r.OpenBox(ctx, runner.BoxSpec{Language: spec.Language, Files: spec.Files, Limits: spec.Limits, Dir: spec.Cwd, Ceiling: spec.Ceiling})
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opening--
	if m.openingBy[spec.Owner]--; m.openingBy[spec.Owner] == 0 {
		delete(m.openingBy, spec.Owner)
	}
	if err != nil {
		return nil, err
	}
	if m.closed {
		box.Close()
		return nil, ErrEnded
	}
	now := time.Now()
	s := &Session{ID: newID(), Owner: spec.Owner, Created: now, m: m, box: box, lifetime: life, idle: idle, lastUsed: now,
		env: append([]string{}, spec.Env...), cwd: spec.Cwd, commands: map[string]*Command{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	m.sessions[s.ID] = s
	return s, nil
}

// Get returns a live session.
func (m *Manager) Get(id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[id]
	if s == nil {
		return nil, ErrNotFound
	}
	return s, nil
}

// List returns the live sessions, oldest first.
func (m *Manager) List() []*Session {
	m.mu.Lock()
	out := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, s)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// Delete ends a session.
func (m *Manager) Delete(id string) error {
	s, err := m.Get(id)
	if err != nil {
		return err
	}
	s.end("deleted")
	return nil
}

// Close ends every session and the reaper.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	close(m.stop)
	<-m.done
	var wg sync.WaitGroup
	for _, s := range m.List() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.end("server stopping")
		}()
	}
	wg.Wait()
}

// reapInterval is how often expiry is checked.
const reapInterval = time.Second

func (m *Manager) reaper() {
	defer close(m.done)
	t := time.NewTicker(reapInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			for _, s := range m.List() {
				if why := s.expired(now); why != "" {
					go s.end(why)
				}
			}
		}
	}
}

// Session is one long-lived box.
type Session struct {
	ID       string
	Owner    string // who made it (Spec.Owner)
	Created  time.Time
	m        *Manager
	box      *runner.Box
	lifetime time.Duration
	// ctx is the background commands': cancelled when the session ends.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	env      []string // KEY=VALUE added to every command's
	cwd      string
	idle     time.Duration
	lastUsed time.Time
	ended    string // why, once ended
	commands map[string]*Command
	finished []string // ids of finished commands, oldest first
	running  int
	endOnce  sync.Once
}

// Info describes a session.
type Info struct {
	ID          string
	Language    string
	Created     time.Time
	LastUsed    time.Time
	ExpiresAt   time.Time // when it ends unless used again
	IdleTimeout time.Duration
	Lifetime    time.Duration
	Env         []string
	Cwd         string
	Limits      runner.Limits
	Running     int
}

// Info describes the session now.
func (s *Session) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := s.Created.Add(s.lifetime)
	if idle := s.lastUsed.Add(s.idle); s.running == 0 && idle.Before(end) {
		end = idle
	}
	cwd := s.cwd
	if cwd == "" {
		cwd = "/box"
	}
	return Info{ID: s.ID, Language: s.box.Language(), Created: s.Created, LastUsed: s.lastUsed, ExpiresAt: end,
		IdleTimeout: s.idle, Lifetime: s.lifetime, Env: append([]string{}, s.env...), Cwd: cwd,
		Limits: s.box.Limits(), Running: s.running}
}

// expired says why the session should end now, or "".
func (s *Session) expired(now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ended != "":
		return ""
	case !now.Before(s.Created.Add(s.lifetime)):
		return reasonLifetime
	case s.running == 0 && !now.Before(s.lastUsed.Add(s.idle)):
		return "idle timeout"
	}
	return ""
}

// reasonLifetime is why a session ends at its maximum lifetime.
const reasonLifetime = "maximum lifetime reached"

// endReason is why the session ended ("" while it lives).
func (s *Session) endReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// touch marks a use (it resets the idle timeout); it fails once ended.
func (s *Session) touch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended != "" {
		return fmt.Errorf("%w (%s)", ErrEnded, s.ended)
	}
	s.lastUsed = time.Now()
	return nil
}

// end ends the session: every process in it dies, its box is released.
func (s *Session) end(why string) {
	s.endOnce.Do(func() {
		s.mu.Lock()
		s.ended = why
		s.mu.Unlock()
		s.m.mu.Lock()
		delete(s.m.sessions, s.ID)
		onEnd := s.m.onEnd
		s.m.mu.Unlock()
		s.cancel()
		if err := s.box.Close(); err != nil {
			s.m.log.Error("close session", "session", s.ID, "err", err)
		}
		s.m.log.Info("session ended", "session", s.ID, "why", why)
		if onEnd != nil {
			onEnd(s.ID)
		}
	})
}

// Update changes the session's environment (set adds or replaces keys,
// unset removes keys it added), default working directory, and idle
// timeout. Nil leaves a field as it is.
func (s *Session) Update(set []string, unset []string, cwd *string, idle *time.Duration) error {
	if idle != nil && (*idle <= 0 || *idle > s.m.cfg.MaxIdleTimeout) {
		return fmt.Errorf("%w: idle timeout %v is above the server's maximum %v", ErrTimeout, *idle, s.m.cfg.MaxIdleTimeout)
	}
	if err := s.touch(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	drop := map[string]bool{}
	for _, k := range unset {
		drop[k] = true
	}
	var env []string
	for _, kv := range s.env {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	s.env = mergeEnv(env, set)
	if cwd != nil {
		s.cwd = *cwd
	}
	if idle != nil {
		s.idle = *idle
	}
	return nil
}

// mergeEnv returns base with every KEY=VALUE of over replacing the same key.
func mergeEnv(base, over []string) []string {
	set := map[string]bool{}
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			out = append(out, kv)
		}
	}
	return append(out, over...)
}

// File operations, through the box's own view; each resets the idle
// timeout.

// ReadFile returns a regular file of at most max bytes.
func (s *Session) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	if err := s.touch(); err != nil {
		return nil, err
	}
	return s.box.ReadFile(ctx, path, max)
}

// WriteFile creates or replaces a regular file, making missing directories.
func (s *Session) WriteFile(ctx context.Context, path string, data []byte, mode uint32) error {
	if err := s.touch(); err != nil {
		return err
	}
	return s.box.WriteFile(ctx, path, data, mode)
}

// List lists a directory.
func (s *Session) List(ctx context.Context, dir string) ([]runner.DirEntry, error) {
	if err := s.touch(); err != nil {
		return nil, err
	}
	return s.box.List(ctx, dir)
}

// Remove removes a file or an empty directory.
func (s *Session) Remove(ctx context.Context, path string) error {
	if err := s.touch(); err != nil {
		return err
	}
	return s.box.Remove(ctx, path)
}

// Run runs a whole request (compile, then run or cases) in the session,
// over its files; it counts as one running command.
func (s *Session) Run(ctx context.Context, req runner.Request) (*runner.Response, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave(nil)
	s.mu.Lock()
	req.Env = mergeEnv(s.env, req.Env)
	s.mu.Unlock()
	return s.box.Run(ctx, req)
}

// enter counts a running command; leave ends it (keeping c, if any, as
// finished).
func (s *Session) enter() error {
	if err := s.touch(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running >= s.m.cfg.MaxCommands {
		return fmt.Errorf("%w: at most %d at once", ErrBusy, s.m.cfg.MaxCommands)
	}
	s.running++
	return nil
}

func (s *Session) leave(c *Command) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	s.lastUsed = time.Now()
	if c == nil {
		return
	}
	s.finished = append(s.finished, c.ID)
	for len(s.finished) > s.m.cfg.KeptCommands {
		delete(s.commands, s.finished[0])
		s.finished = s.finished[1:]
	}
}

// ownedLocked counts the sessions of owner, live and opening.
func (m *Manager) ownedLocked(owner string) int {
	n := m.openingBy[owner]
	for _, s := range m.sessions {
		if s.Owner == owner {
			n++
		}
	}
	return n
}
