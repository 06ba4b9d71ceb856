package terminal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"berth/session-agent/internal/agent"

	"github.com/gorilla/websocket"
)

const (
	maxClients      = 32       // tabs attached at once; more is a bug or abuse
	maxPendingInput = 1 << 20  // input queued for a shell that is not reading
	readChunk       = 32 << 10 // one PTY read
	drainTime       = 100 * time.Millisecond
	closeShellExit  = 4000 // app.js waits for a key press instead of reconnecting
)

var errShuttingDown = errors.New("shutting down")

// Terminal is the container's one shell, its scrollback and its attached clients.
type Terminal struct {
	cfg Config

	mu       sync.Mutex
	shell    *shell // nil: no shell running; the next client starts one
	clients  map[*client]struct{}
	slots    int // clients attached or being upgraded (bounded by maxClients)
	scroll   scrollback
	cols     int
	rows     int
	stopping bool
	attached sync.WaitGroup // one per client between attach and detach
}

// shell is one run of the shell.
type shell struct {
	child   *agent.Child
	master  *os.File
	input   inputQueue
	exiting bool          // the child exited; its last output is being drained
	gone    chan struct{} // closed when the run is fully cleaned up
}

func newTerminal(cfg Config) *Terminal {
	return &Terminal{cfg: cfg, clients: map[*client]struct{}{},
		scroll: scrollback{limit: cfg.Scrollback}, cols: 80, rows: 24}
}

// reserve takes a client slot before the WebSocket upgrade, so the 33rd client gets a 503.
func (t *Terminal) reserve() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.slots >= maxClients {
		return false
	}
	t.slots++
	return true
}

func (t *Terminal) release() {
	t.mu.Lock()
	t.slots--
	t.mu.Unlock()
}

// attach starts the shell if none runs, then queues the scrollback for c and subscribes it
// to the output. Both happen under one lock, so c sees every byte exactly once.
func (t *Terminal) attach(c *client) error {
	for {
		t.mu.Lock()
		if t.stopping {
			t.mu.Unlock()
			return errShuttingDown
		}
		if s := t.shell; s != nil && s.exiting {
			// The old shell is going: wait for its exit notice, then start a fresh one.
			t.mu.Unlock()
			select {
			case <-s.gone:
			case <-time.After(2 * drainTime):
			}
			continue
		}
		if t.shell == nil {
			if err := t.startShell(); err != nil {
				t.mu.Unlock()
				return err
			}
		}
		c.push(t.scroll.snapshot())
		t.clients[c] = struct{}{}
		t.attached.Add(1)
		t.mu.Unlock()
		return nil
	}
}

func (t *Terminal) detach(c *client) {
	t.mu.Lock()
	if _, ok := t.clients[c]; ok {
		delete(t.clients, c)
		t.attached.Done()
	}
	t.mu.Unlock()
}

// startShell runs the login shell on a new PTY. Called with t.mu held.
func (t *Terminal) startShell() error {
	master, slave, err := openPTY()
	if err != nil {
		return fmt.Errorf("open pty: %w", err)
	}
	defer slave.Close() // the shell has its own copies
	if err := setSize(master, t.cols, t.rows); err != nil {
		master.Close()
		return fmt.Errorf("set pty size: %w", err)
	}
	dir := t.cfg.Home
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = "/"
	}
	cmd := &exec.Cmd{
		Path:   t.cfg.Shell,
		Args:   []string{"-" + filepath.Base(t.cfg.Shell)}, // leading "-": a login shell
		Env:    t.shellEnv(),
		Dir:    dir,
		Stdin:  slave,
		Stdout: slave,
		Stderr: slave,
		// Its own session with the PTY as controlling terminal: job control works, and the
		// whole job tree can be hung up through the process group.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	}
	child, err := agent.StartChild(cmd)
	if err != nil {
		master.Close()
		return err
	}
	s := &shell{child: child, master: master, gone: make(chan struct{})}
	s.input.init()
	t.shell = s
	agent.Log("info", "shell started", map[string]any{"pid": child.Pid, "shell": t.cfg.Shell})

	readDone := make(chan struct{})
	go t.readOutput(s, readDone)
	go s.input.writeTo(master)
	go t.awaitExit(s, readDone)
	return nil
}

// shellEnv: the container's environment without BERTH_* (the callback token must never
// reach the user) and without the agent's GOMAXPROCS (the image sets it for the agent, not
// for the user's Go programs), plus what a login shell on a terminal expects.
func (t *Terminal) shellEnv() []string {
	env := agent.ScrubbedEnv()
	for i := 0; i < len(env); i++ {
		if strings.HasPrefix(env[i], "GOMAXPROCS=") {
			env = append(env[:i], env[i+1:]...)
			i--
		}
	}
	set := func(key, value string, override bool) {
		for i, kv := range env {
			if strings.HasPrefix(kv, key+"=") {
				if override {
					env[i] = key + "=" + value
				}
				return
			}
		}
		env = append(env, key+"="+value)
	}
	set("TERM", "xterm-256color", true)
	set("COLORTERM", "truecolor", true)
	set("HOME", t.cfg.Home, true)
	set("SHELL", t.cfg.Shell, true)
	set("USER", "berth", false)
	set("LOGNAME", "berth", false)
	set("PATH", "/usr/local/bin:/usr/bin:/bin", false)
	set("LANG", "C.UTF-8", false)
	return env
}

// readOutput copies PTY output into the scrollback and every client's queue.
func (t *Terminal) readOutput(s *shell, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, readChunk)
	for {
		n, err := s.master.Read(buf)
		if n > 0 {
			data := append([]byte(nil), buf[:n]...) // shared by all clients, never modified
			t.mu.Lock()
			t.scroll.append(data)
			for c := range t.clients {
				c.push(data)
			}
			t.mu.Unlock()
			agent.NoteBurst(n)
		}
		if err != nil {
			return // EIO: every slave fd is closed; or the deadline set by awaitExit
		}
	}
}

// awaitExit announces the shell's exit once its last output is in, closes every client with
// 4000 and clears the way for a new shell.
func (t *Terminal) awaitExit(s *shell, readDone <-chan struct{}) {
	code := s.child.ExitCode()
	t.mu.Lock()
	s.exiting = true
	t.mu.Unlock()
	// Keep the shell's last words ("logout"), but a background job that still holds the
	// terminal must not keep us reading forever.
	if err := s.master.SetReadDeadline(time.Now().Add(drainTime)); err != nil {
		s.master.Close()
	}
	<-readDone
	s.input.close()
	s.master.Close()
	_ = s.child.SignalGroup(syscall.SIGHUP) // jobs that outlived the shell

	msg := []byte(fmt.Sprintf("\r\n[shell exited with code %d; reconnect for a new shell]\r\n", code))
	t.mu.Lock()
	t.scroll.append(msg)
	for c := range t.clients {
		c.push(msg)
		c.finish(closeShellExit, "shell exited")
	}
	t.shell = nil
	t.mu.Unlock()
	close(s.gone)
	agent.Log("info", "shell exited", map[string]any{"pid": s.child.Pid, "code": code})
}

// write queues input for the shell; with no shell running it is dropped.
func (t *Terminal) write(p []byte) {
	if len(p) == 0 {
		return
	}
	t.mu.Lock()
	s := t.shell
	t.mu.Unlock()
	if s != nil && !s.input.add(p) {
		agent.Log("warn", "input dropped: shell is not reading", map[string]any{"bytes": len(p)})
	}
}

// resize sets the PTY size, clamped to 2..1000 columns and 1..500 rows; the last resize
// from any client wins.
func (t *Terminal) resize(cols, rows int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cols, t.rows = int(clamp(cols, 2, 1000)), int(clamp(rows, 1, 500))
	if t.shell != nil {
		_ = setSize(t.shell.master, t.cols, t.rows) // fails only after the shell is gone
	}
}

func clamp(v, lo, hi int64) int64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// shutdown closes every client with 1001, hangs up the shell and waits for both.
func (t *Terminal) shutdown(wait <-chan struct{}) error {
	t.mu.Lock()
	t.stopping = true
	s := t.shell
	for c := range t.clients {
		c.finish(websocket.CloseGoingAway, "server shutting down")
	}
	t.mu.Unlock()
	if s != nil {
		// SIGHUP, like closing a terminal window: bash passes it on to its jobs.
		_ = s.child.SignalGroup(syscall.SIGHUP)
	}
	clientsGone := make(chan struct{})
	go func() {
		t.attached.Wait()
		close(clientsGone)
	}()
	for _, ch := range []<-chan struct{}{clientsGone, shellGone(s)} {
		select {
		case <-ch:
		case <-wait:
			return errors.New("clients or shell still running at the deadline")
		}
	}
	return nil
}

func shellGone(s *shell) <-chan struct{} {
	if s == nil {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return s.gone
}

// inputQueue buffers input for the shell; a writer goroutine feeds the PTY, so a shell that
// is not reading never blocks a WebSocket. Bounded by maxPendingInput.
type inputQueue struct {
	mu      sync.Mutex
	buf     []byte
	writing int // bytes taken by the writer and not yet written
	closed  bool
	wake    chan struct{}
	quit    chan struct{}
}

func (q *inputQueue) init() {
	q.wake, q.quit = make(chan struct{}, 1), make(chan struct{})
}

func (q *inputQueue) add(p []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.buf)+q.writing+len(p) > maxPendingInput {
		return false
	}
	q.buf = append(q.buf, p...)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

func (q *inputQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed, q.buf = true, nil
		close(q.quit)
	}
}

func (q *inputQueue) writeTo(f *os.File) {
	for {
		select {
		case <-q.quit:
			return
		case <-q.wake:
		}
		q.mu.Lock()
		data := q.buf
		q.buf, q.writing = nil, len(data)
		q.mu.Unlock()
		_, err := f.Write(data) // blocks in the poller while the shell does not read
		q.mu.Lock()
		q.writing = 0
		q.mu.Unlock()
		if err != nil {
			return // the PTY is closed: the shell is gone
		}
	}
}
