package terminal

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// newTestService serves the terminal kind (without the agent's auth, tested in package
// agent) with /bin/sh on a real PTY.
func newTestService(t *testing.T, env map[string]string) (*Service, *httptest.Server) {
	t.Helper()
	static := t.TempDir()
	for _, name := range []string{"index.html", "app.js", "xterm.js", "xterm.css", "addon-fit.js"} {
		body := "/* " + name + " */"
		if name == "index.html" {
			body = "<!doctype html><title>Berth terminal</title>"
		}
		if err := os.WriteFile(filepath.Join(static, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"BERTH_SHELL": "/bin/sh", "BERTH_STATIC_DIR": static}
	for k, v := range env {
		vars[k] = v
	}
	s := New(func(k string) string { return vars[k] })
	if err := s.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		srv.Close()
	})
	return s, srv
}

func dial(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readUntil collects output until needle shows up; it returns the output and the close
// error if the connection ended first.
func readUntil(t *testing.T, conn *websocket.Conn, needle string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !strings.Contains(out.String(), needle) {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			return out.String(), err
		}
		if kind != websocket.BinaryMessage {
			t.Fatalf("output frame of type %d, want binary", kind)
		}
		out.Write(data)
	}
	return out.String(), nil
}

func mustRead(t *testing.T, conn *websocket.Conn, needle string) string {
	t.Helper()
	out, err := readUntil(t, conn, needle)
	if err != nil {
		t.Fatalf("waiting for %q: %v; got %q", needle, err, out)
	}
	return out
}

func sendText(t *testing.T, conn *websocket.Conn, text string) {
	t.Helper()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		t.Fatal(err)
	}
}

func closeCode(t *testing.T, conn *websocket.Conn) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

func TestShellProtocol(t *testing.T) {
	os.Setenv("BERTH_CALLBACK_TOKEN", "must-not-leak")
	defer os.Unsetenv("BERTH_CALLBACK_TOKEN")
	_, srv := newTestService(t, nil)
	ws := dial(t, srv)

	sendText(t, ws, "garbage")                                  // ignored
	sendText(t, ws, `{"type":"resize","cols":"100","rows":30}`) // wrong type: ignored
	sendText(t, ws, `{"type":"resize","cols":100.5,"rows":30}`) // not an integer: ignored
	sendText(t, ws, `{"type":"input","data":5}`)                // ignored
	sendText(t, ws, `{"type":"resize","cols":100,"rows":30}`)
	sendText(t, ws, `{"type":"input","data":"echo berth-$((100+23))\r"}`)
	mustRead(t, ws, "berth-123")

	if err := ws.WriteMessage(websocket.BinaryMessage, []byte("stty size\r")); err != nil {
		t.Fatal(err)
	}
	mustRead(t, ws, "30 100")

	sendText(t, ws, `{"type":"input","data":"echo \"vars-$(env | grep -c ^BERTH_)-$TERM\"\r"}`)
	mustRead(t, ws, "vars-0-xterm-256color")

	second := dial(t, srv)
	mustRead(t, second, "berth-123") // scrollback replay

	sendText(t, ws, `{"type":"input","data":"exit 7\r"}`)
	for _, conn := range []*websocket.Conn{ws, second} {
		mustRead(t, conn, "[shell exited with code 7; reconnect for a new shell]")
		if code := closeCode(t, conn); code != closeShellExit {
			t.Fatalf("close code %d, want 4000", code)
		}
	}

	again := dial(t, srv)
	sendText(t, again, `{"type":"input","data":"echo again-$((1+1))\r"}`)
	mustRead(t, again, "again-2")
}

func TestResizeIsClamped(t *testing.T) {
	_, srv := newTestService(t, nil)
	ws := dial(t, srv)
	sendText(t, ws, `{"type":"resize","cols":99999999999999999999999,"rows":-3}`)
	sendText(t, ws, `{"type":"input","data":"stty size\r"}`)
	mustRead(t, ws, "1 1000")
}

func TestTooManyClients(t *testing.T) {
	_, srv := newTestService(t, nil)
	for i := 0; i < maxClients; i++ {
		dial(t, srv)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("client %d: %v %v", maxClients+1, err, resp)
	}
}

func TestShellThatCannotStart(t *testing.T) {
	s, srv := newTestService(t, nil)
	s.term.cfg.Shell = "/nonexistent"
	if code := closeCode(t, dial(t, srv)); code != websocket.CloseInternalServerErr {
		t.Fatalf("close code %d, want 1011", code)
	}
}

func TestShutdownClosesWith1001(t *testing.T) {
	s, srv := newTestService(t, nil)
	ws := dial(t, srv)
	sendText(t, ws, `{"type":"input","data":"echo up-$((2+2))\r"}`)
	mustRead(t, ws, "up-4")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	if code := closeCode(t, ws); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if code := closeCode(t, dial(t, srv)); code != websocket.CloseGoingAway {
		t.Fatalf("a client after shutdown got %d", code)
	}
}

func TestSlowClientIsDropped(t *testing.T) {
	s, srv := newTestService(t, nil)
	slow := dial(t, srv) // never reads
	fast := dial(t, srv)
	sendText(t, fast, `{"type":"input","data":"head -c 40000000 /dev/zero | tr '\\\\0' x; echo; echo done-$((3+3))\r"}`)
	go func() { // keep the fast client reading
		_ = fast.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			if _, _, err := fast.ReadMessage(); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s.term.mu.Lock()
		n := len(s.term.clients)
		s.term.mu.Unlock()
		if n == 1 {
			slow.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the slow client was not dropped")
}

func TestPage(t *testing.T) {
	_, srv := newTestService(t, nil)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 200 || h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Cache-Control") != "no-store" ||
		h.Get("Referrer-Policy") != "no-referrer" || h.Get("Content-Security-Policy") != pageCSP || h.Get("Set-Cookie") != "" {
		t.Fatalf("%d %v", resp.StatusCode, h)
	}
	for path, want := range map[string]int{
		"/static/xterm.js": 200, "/static/app.js": 200, "/static/xterm.css": 200, "/static/addon-fit.js": 200,
		"/static/index.html": 404, "/static/../index.html": 404, "/static/": 404, "/x": 404, "/index.html": 404,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err = http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %d", resp.StatusCode)
	}
}

func TestPrepareChecksShellAndAssets(t *testing.T) {
	for _, env := range []map[string]string{
		{"BERTH_SHELL": "/nonexistent"},
		{"BERTH_SHELL": "/etc/passwd"},
		{"BERTH_SHELL": "/"},
		{"BERTH_STATIC_DIR": "/nonexistent"},
		{"BERTH_SCROLLBACK_BYTES": "lots"},
		{"BERTH_SCROLLBACK_BYTES": "99999999999"},
	} {
		s := New(func(k string) string { return env[k] })
		if err := s.Prepare(context.Background()); err == nil {
			t.Errorf("env %v: Prepare succeeded", env)
		}
	}
}

func TestScrollbackCutsAtALineStart(t *testing.T) {
	s := scrollback{limit: 10}
	s.append([]byte("aaaa\nbbbb\n"))
	s.append([]byte("cc"))
	if got := string(s.buf); got != "bbbb\ncc" {
		t.Fatalf("got %q", got)
	}
	s.append([]byte("ccccccccccccc")) // no newline near the cut: plain byte cut
	if got := string(s.buf); got != "cccccccccc" {
		t.Fatalf("got %q", got)
	}
	far := scrollback{limit: lineSearch + 1000}
	far.append(bytes.Repeat([]byte("x"), 100))
	far.append(append(bytes.Repeat([]byte("y"), lineSearch+998), '\n', 'z'))
	if len(far.buf) != far.limit {
		t.Fatalf("a newline beyond lineSearch was used: %q", far.buf)
	}
	off := scrollback{}
	off.append([]byte("abc"))
	if off.snapshot() != nil {
		t.Fatal("scrollback 0 kept output")
	}
}

func TestJSONInt(t *testing.T) {
	for raw, want := range map[string]int64{"80": 80, "-2": -2, "0": 0, "99999999999999999999": 1<<63 - 1} {
		if got, ok := jsonInt([]byte(raw)); !ok || got != want {
			t.Errorf("%s: %d %v", raw, got, ok)
		}
	}
	for _, raw := range []string{"", "80.0", "1e2", `"80"`, "true", "null", "[1]"} {
		if _, ok := jsonInt([]byte(raw)); ok {
			t.Errorf("%s accepted", raw)
		}
	}
}

func TestInputIsBounded(t *testing.T) {
	var q inputQueue
	q.init()
	if !q.add(make([]byte, maxPendingInput)) {
		t.Fatal("1 MiB refused")
	}
	if q.add([]byte("x")) {
		t.Fatal("input beyond 1 MiB accepted")
	}
	q.close()
	if q.add([]byte("x")) {
		t.Fatal("input accepted after close")
	}
}
