package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"berth/session-agent/internal/agent"

	"github.com/gorilla/websocket"
)

// staticFiles is an explicit allow-list: nothing else in the static directory is reachable,
// so there is no path traversal to get wrong.
var staticFiles = map[string]string{
	"xterm.js":     "application/javascript; charset=utf-8",
	"xterm.css":    "text/css; charset=utf-8",
	"addon-fit.js": "application/javascript; charset=utf-8",
	"app.js":       "application/javascript; charset=utf-8",
}

// pageCSP: xterm.js injects <style> elements, hence 'unsafe-inline' for styles only.
const pageCSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'"

// Service is the terminal kind of agent.Service.
type Service struct {
	getenv func(string) string
	cfg    Config
	page   []byte // index.html, read once in Prepare (it is small)
	term   *Terminal
	mux    *http.ServeMux
}

// New returns the terminal service; its environment is read and checked in Prepare, so a
// bad value is reported to the API like any start-up failure.
func New(getenv func(string) string) *Service {
	s := &Service{getenv: getenv, mux: http.NewServeMux()}
	s.mux.HandleFunc("/", s.servePage)
	s.mux.HandleFunc("/static/", s.serveStatic)
	s.mux.HandleFunc("/ws", s.serveWS)
	return s
}

// Prepare checks the shell and the page assets. The shell itself starts with the first
// WebSocket, not here: a session nobody opens costs no shell.
func (s *Service) Prepare(ctx context.Context) error {
	cfg, err := ConfigFromEnv(s.getenv)
	if err != nil {
		return err
	}
	if st, err := os.Stat(cfg.Shell); err != nil || st.IsDir() || syscall.Access(cfg.Shell, 1 /* X_OK */) != nil {
		return fmt.Errorf("shell not executable: %s", cfg.Shell)
	}
	page, err := os.ReadFile(filepath.Join(cfg.StaticDir, "index.html"))
	if err != nil {
		return fmt.Errorf("static assets missing: %v", err)
	}
	for name := range staticFiles {
		if _, err := os.Stat(filepath.Join(cfg.StaticDir, name)); err != nil {
			return fmt.Errorf("static assets missing: %v", err)
		}
	}
	s.cfg, s.page, s.term = cfg, page, newTerminal(cfg)
	return nil
}

// Bind has nothing to apply: a terminal takes no session options.
func (s *Service) Bind(ctx context.Context, b agent.Binding) error {
	if len(b.Options) > 0 && string(b.Options) != "{}" {
		agent.Log("info", "terminal ignores session options", nil)
	}
	return nil
}

// Handler serves the page, its assets and the WebSocket.
func (s *Service) Handler() http.Handler { return s.mux }

// Shutdown closes every WebSocket with 1001 and hangs up the shell.
func (s *Service) Shutdown(ctx context.Context) error {
	if s.term == nil {
		return nil // Prepare did not get that far
	}
	return s.term.shutdown(ctx.Done())
}

func allowRead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	agent.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

// servePage answers "/" with the terminal page; its URLs are relative, so it works under
// the gateway's path prefix.
func (s *Service) servePage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		agent.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	if !allowRead(w, r) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Content-Length", strconv.Itoa(len(s.page)))
	_, _ = w.Write(s.page)
}

// serveStatic streams an allow-listed asset from disk: read per request rather than cached,
// since ~300 KB held by every idle container costs more than an occasional read.
func (s *Service) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	ctype, ok := staticFiles[name]
	if !ok {
		agent.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	if !allowRead(w, r) {
		return
	}
	f, err := os.Open(filepath.Join(s.cfg.StaticDir, name))
	if err != nil {
		agent.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		agent.WriteError(w, http.StatusInternalServerError, "cannot read asset")
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// writeBuffers: output is written through pooled buffers, so an idle WebSocket holds none.
var writeBuffers sync.Pool

var upgrader = websocket.Upgrader{
	// Reads reuse the HTTP server's 4 KiB buffer of the hijacked connection.
	WriteBufferSize: maxFrame,
	WriteBufferPool: &writeBuffers,
	// No Origin check here: the gateway authenticates users, and every request to the
	// container must carry X-Berth-Secret, which a browser cannot attach by itself.
	CheckOrigin: func(*http.Request) bool { return true },
	Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		agent.WriteError(w, status, reason.Error())
	},
}

// serveWS attaches a WebSocket to the shell.
func (s *Service) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.term.reserve() {
		agent.WriteError(w, http.StatusServiceUnavailable, "too many clients")
		return
	}
	defer s.term.release()
	conn, err := upgrader.Upgrade(w, r, nil) // answers a bad handshake itself
	if err != nil {
		return
	}
	defer conn.Close()
	c := newClient(conn, r.RemoteAddr)
	if err := s.term.attach(c); err != nil {
		code, text := websocket.CloseInternalServerErr, "cannot start shell"
		if errors.Is(err, errShuttingDown) {
			code, text = websocket.CloseGoingAway, "server shutting down"
		} else {
			agent.Log("error", "cannot start shell", map[string]any{"error": err})
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text),
			time.Now().Add(closeWait))
		return
	}
	agent.Log("info", "client attached", map[string]any{"peer": c.peer})
	go c.writeLoop()
	s.readLoop(c)
	s.term.detach(c)
	close(c.quit)
	conn.Close() // unblocks a writer stuck on a client that stopped reading
	<-c.done
	agent.Log("info", "client detached", map[string]any{"peer": c.peer})
}

// readLoop applies the client's frames until the connection ends.
func (s *Service) readLoop(c *client) {
	conn := c.conn
	conn.SetReadLimit(1 << 20)
	extend := func() { _ = conn.SetReadDeadline(time.Now().Add(readTimeout)) }
	extend()
	conn.SetPongHandler(func(string) error { extend(); return nil })
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		extend()
		if c.closing() {
			continue // the close frame is on its way; input would go to the next shell
		}
		switch kind {
		case websocket.BinaryMessage:
			s.term.write(data)
		case websocket.TextMessage:
			s.applyMessage(data)
		}
	}
}

// message is a client's JSON text frame. Fields stay raw so their JSON types can be checked
// exactly: cols "80" or 80.5 is malformed, and malformed frames are ignored.
type message struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	Cols json.RawMessage `json:"cols"`
	Rows json.RawMessage `json:"rows"`
}

func (s *Service) applyMessage(raw []byte) {
	var m message
	if json.Unmarshal(raw, &m) != nil {
		return
	}
	switch m.Type {
	case "input":
		var text string
		if len(m.Data) == 0 || m.Data[0] != '"' || json.Unmarshal(m.Data, &text) != nil {
			return
		}
		s.term.write([]byte(text)) // invalid UTF-16 from a broken paste became U+FFFD
	case "resize":
		cols, ok1 := jsonInt(m.Cols)
		rows, ok2 := jsonInt(m.Rows)
		if ok1 && ok2 {
			s.term.resize(cols, rows)
		}
	}
}

// jsonInt accepts a JSON integer literal; one beyond int64 saturates (it is clamped anyway).
func jsonInt(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || strings.ContainsAny(string(raw), ".eE\"") || raw[0] == 'n' || raw[0] == 't' || raw[0] == 'f' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err == nil {
		return n, true
	}
	if errors.Is(err, strconv.ErrRange) {
		if raw[0] == '-' {
			return -1 << 63, true
		}
		return 1<<63 - 1, true
	}
	return 0, false
}
