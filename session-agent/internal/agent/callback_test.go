package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fastOptions keeps the contract's shape with short timings.
func fastOptions() runOptions {
	return runOptions{readyRetry: 300 * time.Millisecond, failRetry: 200 * time.Millisecond,
		backoff: 10 * time.Millisecond, backoffMax: 40 * time.Millisecond,
		attemptTimeout: time.Second, grace: 500 * time.Millisecond}
}

type callRecord struct {
	Path, Auth, ContentType string
	Body                    map[string]string
}

// apiStub answers callbacks with statuses[i] for the i-th call (the last one repeats).
type apiStub struct {
	mu       sync.Mutex
	statuses []int
	calls    []callRecord
}

func newAPIStub(t *testing.T, statuses ...int) (*apiStub, *httptest.Server) {
	stub := &apiStub{statuses: statuses}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		rec := callRecord{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
		_ = json.Unmarshal(raw, &rec.Body)
		stub.mu.Lock()
		i := len(stub.calls)
		stub.calls = append(stub.calls, rec)
		status := stub.statuses[len(stub.statuses)-1]
		if i < len(stub.statuses) {
			status = stub.statuses[i]
		}
		stub.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return stub, srv
}

func (s *apiStub) recorded() []callRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]callRecord(nil), s.calls...)
}

func TestCallbackRetriesTransientFailures(t *testing.T) {
	stub, srv := newAPIStub(t, 503, 429, 502, 204)
	c := newCallbackClient(testSession, srv.URL+"/api/v1/callbacks/", "tok", "test", fastOptions())
	if err := c.ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := stub.recorded()
	if len(calls) != 4 {
		t.Fatalf("%d calls", len(calls))
	}
	for _, call := range calls {
		if call.Path != "/api/v1/callbacks/tunnel" || call.Auth != "Bearer tok" || call.ContentType != "application/json" ||
			len(call.Body) != 1 || call.Body["session_id"] != testSession {
			t.Fatalf("%+v", call)
		}
	}
}

func TestCallbackRejectionIsFinal(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 409, 410, 302} {
		stub, srv := newAPIStub(t, status)
		c := newCallbackClient(testSession, srv.URL, "tok", "test", fastOptions())
		err := c.ready(context.Background())
		var rejected *rejectedError
		if !errors.As(err, &rejected) || rejected.status != status {
			t.Errorf("status %d: %v", status, err)
		}
		if n := len(stub.recorded()); n != 1 {
			t.Errorf("status %d: %d calls, want 1 (no retry)", status, n)
		}
	}
}

func TestCallbackGivesUpAfterTheRetryWindow(t *testing.T) {
	stub, srv := newAPIStub(t, 500)
	c := newCallbackClient(testSession, srv.URL, "tok", "test", fastOptions())
	started := time.Now()
	err := c.ready(context.Background())
	var rejected *rejectedError
	if err == nil || errors.As(err, &rejected) {
		t.Fatalf("got %v", err)
	}
	if took := time.Since(started); took > time.Second {
		t.Fatalf("retried for %v", took)
	}
	if n := len(stub.recorded()); n < 3 {
		t.Fatalf("only %d attempts", n)
	}
}

func TestCallbackRetriesNetworkErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on
	c := newCallbackClient(testSession, "http://"+addr, "tok", "test", fastOptions())
	if err := c.failed(context.Background(), "boom"); err == nil {
		t.Fatal("posting to a closed port succeeded")
	}
}

func TestCallbackStopsOnCancel(t *testing.T) {
	_, srv := newAPIStub(t, 503)
	o := fastOptions()
	o.readyRetry = time.Minute
	c := newCallbackClient(testSession, srv.URL, "tok", "test", o)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.ready(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

// runAgent runs the whole agent with env against svc; cancel stops it like SIGTERM.
func runAgent(t *testing.T, svc Service, env map[string]string, o runOptions) (code <-chan int, addr <-chan string, cancel func()) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	o.onListen = func(a net.Addr) { addrs <- a.String() }
	codes := make(chan int, 1)
	go func() { codes <- run(ctx, "test", svc, envOf(env), o) }()
	t.Cleanup(stop)
	return codes, addrs, stop
}

func waitCode(t *testing.T, codes <-chan int) int {
	t.Helper()
	select {
	case c := <-codes:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the agent did not exit")
		return -1
	}
}

func agentEnv(callbackURL string, extra map[string]string) map[string]string {
	env := boundEnv(map[string]string{"BERTH_PORT": "0", "BERTH_LISTEN_HOST": "127.0.0.1",
		"BERTH_CALLBACK_URL": callbackURL})
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestRunReportsReadyAndExitsZeroOnSignal(t *testing.T) {
	stub, api := newAPIStub(t, 204)
	svc := &fakeService{}
	codes, addrs, cancel := runAgent(t, svc, agentEnv(api.URL, nil), fastOptions())
	addr := <-addrs
	deadline := time.Now().Add(2 * time.Second)
	for len(stub.recorded()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if calls := stub.recorded(); len(calls) != 1 || calls[0].Path != "/tunnel" {
		t.Fatalf("calls: %+v", calls)
	}
	if h := health(t, "http://"+addr, "s"); !h.Ready || !h.Bound || *h.SessionID != testSession {
		t.Fatalf("health %+v", h)
	}
	cancel()
	if code := waitCode(t, codes); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if svc.shutdowns != 1 {
		t.Fatalf("Shutdown ran %d times", svc.shutdowns)
	}
}

func TestRunExitsThreeWhenTheAPIRefusesReady(t *testing.T) {
	_, api := newAPIStub(t, 409)
	codes, _, _ := runAgent(t, &fakeService{}, agentEnv(api.URL, nil), fastOptions())
	if code := waitCode(t, codes); code != exitRejected {
		t.Fatalf("exit %d, want 3", code)
	}
}

func TestRunReportsFailures(t *testing.T) {
	cases := map[string]struct {
		env      map[string]string
		svc      *fakeService
		statuses []int
		want     string // error_message posted to /status
	}{
		"bad environment":      {map[string]string{"BERTH_PORT": "nope"}, &fakeService{}, []int{204}, "BERTH_PORT is not an integer"},
		"prepare fails":        {nil, &fakeService{prepareErr: errors.New("no chromium")}, []int{204}, "test start-up failed: no chromium"},
		"bind fails":           {nil, &fakeService{bindErr: errors.New("bad option")}, []int{204}, "test bind failed: bad option"},
		"ready never accepted": {nil, &fakeService{}, []int{500}, "callback /tunnel failed: HTTP 500"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			stub, api := newAPIStub(t, c.statuses...)
			codes, _, _ := runAgent(t, c.svc, agentEnv(api.URL, c.env), fastOptions())
			if code := waitCode(t, codes); code != exitFailed {
				t.Fatalf("exit %d, want 1", code)
			}
			var status *callRecord
			for _, call := range stub.recorded() {
				if call.Path == "/status" {
					call := call
					status = &call
				}
			}
			if status == nil || status.Auth != "Bearer cb" || status.Body["status"] != "failed" ||
				status.Body["session_id"] != testSession || status.Body["error_message"] != c.want {
				t.Fatalf("status callback %+v", status)
			}
		})
	}
}

func TestRunWithoutAReporterOnlyExits(t *testing.T) {
	stub, api := newAPIStub(t, 204)
	env := agentEnv(api.URL, map[string]string{"BERTH_PORT": "x", "BERTH_CALLBACK_TOKEN": ""})
	codes, _, _ := runAgent(t, &fakeService{}, env, fastOptions())
	if code := waitCode(t, codes); code != exitFailed {
		t.Fatalf("exit %d", code)
	}
	if n := len(stub.recorded()); n != 0 {
		t.Fatalf("%d callbacks without a token", n)
	}
}

func TestRunCannotListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stub, api := newAPIStub(t, 204)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	codes, _, _ := runAgent(t, &fakeService{}, agentEnv(api.URL, map[string]string{"BERTH_PORT": port}), fastOptions())
	if code := waitCode(t, codes); code != exitFailed {
		t.Fatalf("exit %d", code)
	}
	calls := stub.recorded()
	if len(calls) != 1 || calls[0].Body["error_message"] != "cannot listen on 127.0.0.1:"+port+": address already in use" {
		t.Fatalf("%+v", calls)
	}
}

func TestRunUnboundMakesNoCallbackAndShutsDownDuringPrepare(t *testing.T) {
	started := make(chan struct{})
	svc := &fakeService{prepareHook: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}}
	env := map[string]string{"BERTH_PORT": "0", "BERTH_LISTEN_HOST": "127.0.0.1", "BERTH_SECRET_SHA256": sha256Hex("pool")}
	codes, addrs, cancel := runAgent(t, svc, env, fastOptions())
	addr := <-addrs
	<-started
	if h := health(t, "http://"+addr, "pool"); h.Ready || h.Bound {
		t.Fatalf("health during Prepare: %+v", h)
	}
	cancel()
	if code := waitCode(t, codes); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}
