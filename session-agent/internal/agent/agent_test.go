package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

const (
	poolSecret    = "pool-secret"
	sessionSecret = "session-secret"
	testSession   = "9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d"
)

// fakeService records what the agent asks of it.
type fakeService struct {
	mu          sync.Mutex
	prepareErr  error
	bindErr     error
	binds       []Binding
	kindCalls   int
	sawSecret   bool
	shutdowns   int
	prepareHook func(ctx context.Context) error
}

func (f *fakeService) Prepare(ctx context.Context) error {
	if f.prepareHook != nil {
		return f.prepareHook(ctx)
	}
	return f.prepareErr
}

func (f *fakeService) Bind(ctx context.Context, b Binding) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.binds = append(f.binds, b)
	return f.bindErr
}

func (f *fakeService) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.kindCalls++
		f.sawSecret = f.sawSecret || r.Header.Get(SecretHeader) != ""
		f.mu.Unlock()
		if websocket.IsWebSocketUpgrade(r) {
			if c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil); err == nil {
				c.Close()
			}
			return
		}
		_, _ = io.WriteString(w, "kind:"+r.URL.Path)
	})
}

func (f *fakeService) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	f.shutdowns++
	f.mu.Unlock()
	return nil
}

func (f *fakeService) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kindCalls
}

// newTestAgent serves an agent that opens with secret; prepared/bound set its state.
func newTestAgent(t *testing.T, svc Service, secret string, prepared, bound bool) (*agent, *httptest.Server) {
	t.Helper()
	gate, err := newSecretGate(sha256Hex(secret))
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{kind: "test", svc: svc, gate: gate, ctx: context.Background(),
		opts: defaultRunOptions(), fatal: make(chan int, 1), prepared: prepared, bound: bound, boundStart: bound}
	if bound {
		a.sessionID = testSession
	}
	srv := httptest.NewServer(a.handler())
	t.Cleanup(srv.Close)
	return a, srv
}

func request(t *testing.T, method, url, secret, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set(SecretHeader, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSecretIsRequiredOnEveryPath(t *testing.T) {
	svc := &fakeService{}
	_, srv := newTestAgent(t, svc, sessionSecret, true, true)
	for _, path := range []string{"/.berth/health", "/.berth/bind", "/", "/static/xterm.js", "/ws", "/.berth/other"} {
		for _, secret := range []string{"", "wrong", sessionSecret + "x", strings.ToUpper(sessionSecret)} {
			status, body := request(t, http.MethodGet, srv.URL+path, secret, "")
			if status != http.StatusUnauthorized || strings.TrimSpace(body) != `{"error":"unauthorized"}` {
				t.Errorf("%s with secret %q: %d %s", path, secret, status, body)
			}
		}
	}
	if svc.calls() != 0 {
		t.Fatalf("kind handler ran %d times without the secret", svc.calls())
	}
	if status, body := request(t, http.MethodGet, srv.URL+"/x", sessionSecret, ""); status != 200 || body != "kind:/x" {
		t.Fatalf("with the secret: %d %q", status, body)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.sawSecret {
		t.Fatal("the kind saw X-Berth-Secret; it must be stripped")
	}
}

func TestTwoSecretHeadersAreRefused(t *testing.T) {
	_, srv := newTestAgent(t, &fakeService{}, sessionSecret, true, true)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/.berth/health", nil)
	req.Header.Add(SecretHeader, sessionSecret)
	req.Header.Add(SecretHeader, "other")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("got %d", resp.StatusCode)
	}
}

func TestUpgradeIsRefusedBeforeTheHandshake(t *testing.T) {
	svc := &fakeService{}
	_, srv := newTestAgent(t, svc, sessionSecret, true, true)
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	for _, secret := range []string{"", "wrong"} {
		h := http.Header{}
		if secret != "" {
			h.Set(SecretHeader, secret)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(wsURL, h)
		if err == nil {
			conn.Close()
			t.Fatalf("secret %q: upgraded", secret)
		}
		if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("secret %q: %v %v", secret, err, resp)
		}
	}
	if svc.calls() != 0 {
		t.Fatal("the kind handler saw an unauthenticated upgrade")
	}
	h := http.Header{}
	h.Set(SecretHeader, sessionSecret)
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, h)
	if err != nil {
		t.Fatalf("with the secret: %v", err)
	}
	conn.Close()
}

func health(t *testing.T, url, secret string) healthBody {
	t.Helper()
	status, body := request(t, http.MethodGet, url+"/.berth/health", secret, "")
	if status != http.StatusOK {
		t.Fatalf("health: %d %s", status, body)
	}
	var h healthBody
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func bindBody(session, secret string, extra string) string {
	return `{"session_id":"` + session + `","secret_sha256":"` + sha256Hex(secret) + `"` + extra + `}`
}

func TestBindSwapsTheSecret(t *testing.T) {
	svc := &fakeService{}
	a, srv := newTestAgent(t, svc, poolSecret, true, false)

	if h := health(t, srv.URL, poolSecret); !h.Ready || h.Bound || h.SessionID != nil {
		t.Fatalf("unbound health: %+v", h)
	}
	if status, _ := request(t, http.MethodGet, srv.URL+"/", poolSecret, ""); status != http.StatusServiceUnavailable {
		t.Fatalf("kind route before bind: %d", status)
	}
	body := bindBody(testSession, sessionSecret,
		`,"callback_url":"http://127.0.0.1:1/cb","callback_token":"tok","options":{"start_url":"about:blank"}`)
	if status, resp := request(t, http.MethodPost, srv.URL+"/.berth/bind", poolSecret, body); status != 200 || strings.TrimSpace(resp) != `{"bound":true}` {
		t.Fatalf("bind: %d %s", status, resp)
	}
	if status, _ := request(t, http.MethodGet, srv.URL+"/.berth/health", poolSecret, ""); status != http.StatusUnauthorized {
		t.Fatalf("pool secret after bind: %d", status)
	}
	if h := health(t, srv.URL, sessionSecret); !h.Ready || !h.Bound || h.SessionID == nil || *h.SessionID != testSession {
		t.Fatalf("bound health: %+v", h)
	}
	if status, _ := request(t, http.MethodGet, srv.URL+"/", sessionSecret, ""); status != 200 {
		t.Fatalf("kind route after bind: %d", status)
	}
	if status, _ := request(t, http.MethodPost, srv.URL+"/.berth/bind", sessionSecret, bindBody(testSession, "third", "")); status != http.StatusConflict {
		t.Fatalf("second bind: %d", status)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if len(svc.binds) != 1 {
		t.Fatalf("Bind ran %d times", len(svc.binds))
	}
	b := svc.binds[0]
	if b.SessionID != testSession || b.SecretSHA256 != sha256Hex(sessionSecret) || b.CallbackURL != "http://127.0.0.1:1/cb" ||
		b.CallbackToken != "tok" || string(b.Options) != `{"start_url":"about:blank"}` {
		t.Fatalf("binding: %+v", b)
	}
	if a.sessionID != testSession {
		t.Fatal("session id not recorded")
	}
}

func TestBindRefusals(t *testing.T) {
	svc := &fakeService{}
	a, srv := newTestAgent(t, svc, poolSecret, false, false)
	bind := func(body string) int {
		status, _ := request(t, http.MethodPost, srv.URL+"/.berth/bind", poolSecret, body)
		return status
	}
	if got := bind(bindBody(testSession, sessionSecret, "")); got != http.StatusServiceUnavailable {
		t.Fatalf("bind before start-up finished: %d", got)
	}
	a.mu.Lock()
	a.prepared = true
	a.mu.Unlock()
	for _, body := range []string{
		"", "not json", "[]", `{"session_id":"nope","secret_sha256":"` + sha256Hex("x") + `"}`,
		`{"session_id":"` + testSession + `","secret_sha256":"abc"}`,
		bindBody(testSession, sessionSecret, `,"callback_url":"ftp://x"`),
		bindBody(testSession, sessionSecret, `,"callback_url":"http://127.0.0.1:1/cb"`), // no token
		bindBody(testSession, sessionSecret, `,"options":[1]`),
		bindBody(testSession, sessionSecret, "") + "{}", // trailing data
	} {
		if got := bind(body); got != http.StatusBadRequest {
			t.Errorf("body %q: %d, want 400", body, got)
		}
	}
	if status, _ := request(t, http.MethodGet, srv.URL+"/.berth/bind", poolSecret, ""); status != http.StatusMethodNotAllowed {
		t.Fatalf("GET bind: %d", status)
	}
	if got := bind(bindBody(testSession, sessionSecret, `,"options":null`)); got != http.StatusOK {
		t.Fatalf("valid bind after refusals: %d", got)
	}
}

func TestFailedBindExits(t *testing.T) {
	svc := &fakeService{bindErr: errors.New("boom")}
	a, srv := newTestAgent(t, svc, poolSecret, true, false)
	if status, _ := request(t, http.MethodPost, srv.URL+"/.berth/bind", poolSecret, bindBody(testSession, sessionSecret, "")); status != http.StatusInternalServerError {
		t.Fatalf("bind: %d", status)
	}
	select {
	case code := <-a.fatal:
		if code != exitFailed {
			t.Fatalf("exit code %d", code)
		}
	default:
		t.Fatal("a failed bind did not ask the agent to exit")
	}
	if status, _ := request(t, http.MethodGet, srv.URL+"/.berth/health", sessionSecret, ""); status != http.StatusUnauthorized {
		t.Fatal("the secret was swapped although the bind failed")
	}
}

// statusErr is a Bind error that carries an HTTP status (StatusError).
type statusErr struct {
	code int
	msg  string
}

func (e *statusErr) Error() string   { return e.msg }
func (e *statusErr) StatusCode() int { return e.code }

func TestBindRefusedByTheKindStaysUnbound(t *testing.T) {
	svc := &fakeService{bindErr: fmt.Errorf("options: %w", &statusErr{http.StatusBadRequest, "headless is launch-time"})}
	a, srv := newTestAgent(t, svc, poolSecret, true, false)
	status, body := request(t, http.MethodPost, srv.URL+"/.berth/bind", poolSecret, bindBody(testSession, sessionSecret, ""))
	if status != http.StatusBadRequest || strings.TrimSpace(body) != `{"error":"options: headless is launch-time"}` {
		t.Fatalf("refused bind: %d %s", status, body)
	}
	select {
	case code := <-a.fatal:
		t.Fatalf("a refused bind asked the agent to exit (%d)", code)
	default:
	}
	if h := health(t, srv.URL, poolSecret); !h.Ready || h.Bound || h.SessionID != nil {
		t.Fatalf("after a refused bind the pool secret must still open an unbound agent: %+v", h)
	}
	if status, _ := request(t, http.MethodGet, srv.URL+"/x", poolSecret, ""); status != http.StatusServiceUnavailable {
		t.Fatalf("kind route after a refused bind: %d", status)
	}
	svc.mu.Lock()
	svc.bindErr = nil
	svc.mu.Unlock()
	if status, body := request(t, http.MethodPost, srv.URL+"/.berth/bind", poolSecret, bindBody(testSession, sessionSecret, "")); status != 200 {
		t.Fatalf("a later bind: %d %s", status, body)
	}
	if h := health(t, srv.URL, sessionSecret); !h.Bound {
		t.Fatalf("not bound after the second bind: %+v", h)
	}
}

func TestBindErrorWithA5xxStatusStillExits(t *testing.T) {
	svc := &fakeService{bindErr: &statusErr{http.StatusServiceUnavailable, "browser stuck"}}
	a, srv := newTestAgent(t, svc, poolSecret, true, false)
	if status, body := request(t, http.MethodPost, srv.URL+"/.berth/bind", poolSecret, bindBody(testSession, sessionSecret, "")); status != http.StatusInternalServerError ||
		strings.TrimSpace(body) != `{"error":"bind failed"}` {
		t.Fatalf("bind: %d %s", status, body)
	}
	select {
	case <-a.fatal:
	default:
		t.Fatal("a failed bind (5xx status) did not ask the agent to exit")
	}
}

// The agent routes only /.berth/health and /.berth/bind itself; everything else reaches the
// kind as sent, without a redirect to a cleaned path (the kind refuses "..").
func TestTheKindGetsPathsUncleaned(t *testing.T) {
	svc := &fakeService{}
	_, srv := newTestAgent(t, svc, sessionSecret, true, true)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/.berth/downloads/../x", "/.berth/uploads/..", "//x", "/./a", "/.berth/health/", "/.berth//bind", "/.berth/x/../health"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set(SecretHeader, sessionSecret)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "kind:"+path {
			t.Errorf("%s: %d %q, want the kind to get it unchanged", path, resp.StatusCode, body)
		}
	}
}

func TestHealthBeforeABoundStartIsReady(t *testing.T) {
	a, srv := newTestAgent(t, &fakeService{}, sessionSecret, true, false)
	a.boundStart = true
	if h := health(t, srv.URL, sessionSecret); h.Ready || h.Bound {
		t.Fatalf("health before the start-up bind: %+v", h)
	}
	if status, _ := request(t, http.MethodPost, srv.URL+"/.berth/health", sessionSecret, ""); status != http.StatusMethodNotAllowed {
		t.Fatalf("POST health: %d", status)
	}
}
