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

// fatalService is a kind whose essential process can die (FatalNotifier).
type fatalService struct {
	*fakeService
	died chan error
}

func (f *fatalService) Fatal() <-chan error { return f.died }

func newFatalService() *fatalService {
	return &fatalService{fakeService: &fakeService{}, died: make(chan error, 1)}
}

func waitCalls(t *testing.T, stub *apiStub, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		count := 0
		for _, c := range stub.recorded() {
			if c.Path == path {
				count++
			}
		}
		if count >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s calls, want %d: %+v", count, path, n, stub.recorded())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func lastStatus(t *testing.T, stub *apiStub) callRecord {
	t.Helper()
	calls := stub.recorded()
	if len(calls) == 0 || calls[len(calls)-1].Path != "/status" {
		t.Fatalf("the last callback is not /status: %+v", calls)
	}
	return calls[len(calls)-1]
}

func TestRunEndsWhenTheKindDies(t *testing.T) {
	stub, api := newAPIStub(t, 204)
	svc := newFatalService()
	codes, _, _ := runAgent(t, svc, agentEnv(api.URL, nil), fastOptions())
	waitCalls(t, stub, "/tunnel", 1)
	svc.died <- errors.New("chromium exited unexpectedly (code 9)")
	if code := waitCode(t, codes); code != exitFailed {
		t.Fatalf("exit %d, want 1", code)
	}
	if svc.shutdowns != 1 {
		t.Fatalf("Shutdown ran %d times", svc.shutdowns)
	}
	st := lastStatus(t, stub)
	if st.Body["status"] != "failed" || st.Body["session_id"] != testSession ||
		st.Body["error_message"] != "test failed: chromium exited unexpectedly (code 9)" || st.Auth != "Bearer cb" {
		t.Fatalf("status callback %+v", st)
	}
}

func TestRunEndsWhenTheKindDiesDuringPrepare(t *testing.T) {
	stub, api := newAPIStub(t, 204)
	svc := newFatalService()
	svc.prepareHook = func(ctx context.Context) error {
		svc.died <- errors.New("xvfb gone")
		<-ctx.Done() // a Prepare that does not notice
		return ctx.Err()
	}
	codes, _, _ := runAgent(t, svc, agentEnv(api.URL, nil), fastOptions())
	if code := waitCode(t, codes); code != exitFailed {
		t.Fatalf("exit %d, want 1", code)
	}
	if st := lastStatus(t, stub); st.Body["error_message"] != "test start-up failed: xvfb gone" {
		t.Fatalf("status callback %+v", st)
	}
	if n := len(stub.recorded()); n != 1 {
		t.Fatalf("%d callbacks, want only /status", n)
	}
}

func TestRunEndsWhenTheKindDiesWhileReadyIsRetried(t *testing.T) {
	stub, api := newAPIStub(t, 503)
	svc := newFatalService()
	o := fastOptions()
	o.readyRetry = 10 * time.Second
	codes, _, _ := runAgent(t, svc, agentEnv(api.URL, nil), o)
	waitCalls(t, stub, "/tunnel", 2)
	close(svc.died) // a closed channel counts too
	if code := waitCode(t, codes); code != exitFailed {
		t.Fatalf("exit %d, want 1", code)
	}
	calls := stub.recorded()
	first := -1
	for i, c := range calls {
		if c.Path == "/status" && first < 0 {
			first = i
		}
		if c.Path == "/tunnel" && first >= 0 {
			t.Fatalf("/tunnel after /status: %+v", calls)
		}
	}
	if first < 0 || calls[first].Body["error_message"] != "test failed: an essential process ended" {
		t.Fatalf("calls %+v", calls)
	}
}

func TestRunPoolContainerReportsToTheBindsCallback(t *testing.T) {
	stub, api := newAPIStub(t, 204)
	svc := newFatalService()
	env := map[string]string{"BERTH_PORT": "0", "BERTH_LISTEN_HOST": "127.0.0.1", "BERTH_SECRET_SHA256": sha256Hex("pool")}
	codes, addrs, _ := runAgent(t, svc, env, fastOptions())
	addr := <-addrs
	for !health(t, "http://"+addr, "pool").Ready {
		time.Sleep(5 * time.Millisecond)
	}
	body := bindBody(testSession, sessionSecret, `,"callback_url":"`+api.URL+`","callback_token":"from-bind"`)
	if status, resp := request(t, http.MethodPost, "http://"+addr+"/.berth/bind", "pool", body); status != 200 {
		t.Fatalf("bind: %d %s", status, resp)
	}
	svc.died <- errors.New("chromium exited unexpectedly (code 1)")
	if code := waitCode(t, codes); code != exitFailed {
		t.Fatalf("exit %d, want 1", code)
	}
	st := lastStatus(t, stub)
	if st.Auth != "Bearer from-bind" || st.Body["session_id"] != testSession || len(stub.recorded()) != 1 {
		t.Fatalf("calls %+v", stub.recorded())
	}
}

func TestRunUnboundKindDiesWithoutCallbacks(t *testing.T) {
	svc := newFatalService()
	env := map[string]string{"BERTH_PORT": "0", "BERTH_LISTEN_HOST": "127.0.0.1", "BERTH_SECRET_SHA256": sha256Hex("pool")}
	codes, addrs, _ := runAgent(t, svc, env, fastOptions())
	addr := <-addrs
	for !health(t, "http://"+addr, "pool").Ready {
		time.Sleep(5 * time.Millisecond)
	}
	svc.died <- errors.New("gone")
	if code := waitCode(t, codes); code != exitFailed {
		t.Fatalf("exit %d, want 1", code)
	}
	if svc.shutdowns != 1 {
		t.Fatalf("Shutdown ran %d times", svc.shutdowns)
	}
}
