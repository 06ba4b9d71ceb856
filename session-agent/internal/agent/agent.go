// Package agent is the part of Berth's session agent every kind shares: configuration from
// the environment, the X-Berth-Secret check, /.berth/health and /.berth/bind, the callbacks
// to the API, PID-1 duties and shutdown. A kind (terminal, browser) plugs in as a Service.
// The contract is docs/SESSION-CONTAINERS.md.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Service is one kind of session.
type Service interface {
	// Prepare does the expensive start-up. It runs at boot, before the agent reports ready.
	Prepare(ctx context.Context) error
	// Bind applies a session: right after Prepare on a cold start, or on POST /.berth/bind.
	Bind(ctx context.Context, b Binding) error
	// Handler serves the kind's own routes, behind the secret check, beside /.berth/*.
	Handler() http.Handler
	// Shutdown cleans up on SIGTERM and must return before ctx expires.
	Shutdown(ctx context.Context) error
}

// StatusError is an error a Service's Bind may return to refuse a binding without changing
// anything (the browser: launch-time options that differ from the container's, a refused
// start_url). An agent bound through POST /.berth/bind answers it with StatusCode() (400..499)
// and its message, and stays unbound: the pool secret keeps working and a later bind may
// succeed. Any other Bind error is a broken container: 500, and the agent exits 1.
type StatusError interface {
	error
	StatusCode() int
}

// FatalNotifier is optionally implemented by a Service whose session cannot outlive one of
// its processes (the browser: Chromium exiting on its own). A value on Fatal(), or its close,
// ends the run: the agent shuts down as on SIGTERM (Shutdown runs), reports the failure to
// the API when it knows a callback (POST {callback}/status, whether or not the session was
// ready yet) and exits 1. Values sent once the agent is shutting down are ignored.
type FatalNotifier interface {
	Fatal() <-chan error
}

// GraceProvider is optionally implemented by a Service whose clean shutdown needs more than
// the default 1.5 s (the browser saves its profile). Keep it within the platform's stop grace.
type GraceProvider interface {
	ShutdownGrace() time.Duration
}

// Exit codes (the contract's).
const (
	exitOK       = 0
	exitFailed   = 1 // start-up failed
	exitRejected = 3 // the API refused the ready callback: the session is gone
)

// runOptions are the timings of the contract; tests shorten them.
type runOptions struct {
	readyRetry     time.Duration // keep retrying /tunnel this long
	failRetry      time.Duration // keep retrying /status this long
	backoff        time.Duration // first retry delay, doubled each time...
	backoffMax     time.Duration // ...up to this
	attemptTimeout time.Duration // one callback request
	grace          time.Duration // shutdown budget
	onListen       func(net.Addr)
}

func defaultRunOptions() runOptions {
	return runOptions{
		readyRetry:     30 * time.Second,
		failRetry:      5 * time.Second,
		backoff:        250 * time.Millisecond,
		backoffMax:     4 * time.Second,
		attemptTimeout: 5 * time.Second,
		grace:          1500 * time.Millisecond,
	}
}

var processStart = time.Now()

// Main runs the agent for svc until SIGTERM/SIGINT or a fatal error, then exits the process.
func Main(kind string, svc Service) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, kind, svc, os.Getenv, defaultRunOptions())
	stop()
	os.Exit(code)
}

// agent is the shared state behind the control endpoints.
type agent struct {
	kind string
	svc  Service
	gate *secretGate
	ctx  context.Context // cancelled on SIGTERM
	opts runOptions

	boundStart bool // the environment carried a binding

	mu        sync.Mutex
	prepared  bool // Prepare succeeded
	bound     bool
	binding   bool            // a bind is being applied
	sessionID string          // set once bound
	reporter  *callbackClient // the bound session's callbacks; nil when none is known

	fatal chan int // exit code requests from handlers (a failed bind)
}

func run(ctx context.Context, kind string, svc Service, getenv func(string) string, o runOptions) int {
	if err := setNotDumpable(); err != nil {
		Log("warn", "could not mark the process non-dumpable", map[string]any{"error": err})
	}
	if err := setChildSubreaper(); err != nil {
		Log("warn", "could not become a child subreaper", map[string]any{"error": err})
	}
	startReaper()
	if id := getenv("BERTH_SESSION_ID"); uuidRE.MatchString(id) {
		setLogSession(id)
	}

	reporter := reporterFromEnv(getenv, kind, o)
	report := func(reporter *callbackClient, reason string) int {
		if reporter == nil {
			return exitFailed // nobody to tell
		}
		if err := reporter.failed(ctx, reason); err != nil {
			Log("error", "could not report the failure", map[string]any{"error": err})
		}
		return exitFailed
	}
	fail := func(reason string) int {
		Log("error", "start-up failed", map[string]any{"error": reason})
		return report(reporter, reason)
	}
	var kindDied <-chan error
	if f, ok := svc.(FatalNotifier); ok {
		kindDied = f.Fatal()
	}

	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fail(err.Error())
	}
	gate, err := newSecretGate(cfg.SecretSHA256)
	if err != nil {
		return fail(err.Error())
	}
	a := &agent{kind: kind, svc: svc, gate: gate, ctx: ctx, opts: o, fatal: make(chan int, 1),
		boundStart: cfg.Binding != nil, reporter: reporter}

	addr := net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fail(fmt.Sprintf("cannot listen on %s: %v", addr, unwrapSyscallError(err)))
	}
	Log("info", "listening", map[string]any{"kind": kind, "addr": ln.Addr().String(),
		"port": ln.Addr().(*net.TCPAddr).Port, "bound": cfg.Binding != nil})
	if o.onListen != nil {
		o.onListen(ln.Addr())
	}
	srv := &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(httpErrorLog{}, "", 0),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	shutdown := func(code int) int {
		a.shutdown(srv)
		return code
	}
	// A failure after listening: clean up first, then report (the report may take seconds).
	failRunning := func(reason string) int {
		a.shutdown(srv)
		return fail(reason)
	}

	if err := await(ctx, kindDied, svc.Prepare); err != nil {
		if ctx.Err() != nil {
			return shutdown(exitOK)
		}
		return failRunning(fmt.Sprintf("%s start-up failed: %v", kind, err))
	}
	a.mu.Lock()
	a.prepared = true
	a.mu.Unlock()

	if cfg.Binding == nil {
		Log("info", "ready, waiting for a bind", map[string]any{"ms": time.Since(processStart).Milliseconds()})
	} else {
		b := *cfg.Binding
		if err := await(ctx, kindDied, func(ctx context.Context) error { return svc.Bind(ctx, b) }); err != nil {
			if ctx.Err() != nil {
				return shutdown(exitOK)
			}
			return failRunning(fmt.Sprintf("%s bind failed: %v", kind, err))
		}
		a.markBound(b)
		Log("info", "ready", map[string]any{"ms": time.Since(processStart).Milliseconds()})
		readyCtx, cancelReady := context.WithCancel(ctx)
		readyDone := make(chan struct{})
		err := await(ctx, kindDied, func(context.Context) error {
			defer close(readyDone)
			return reporter.ready(readyCtx)
		})
		cancelReady()
		var rejected *rejectedError
		var dead *fatalError
		switch {
		case err == nil:
			Log("info", "ready callback accepted", map[string]any{"ms": time.Since(processStart).Milliseconds()})
		case ctx.Err() != nil:
			return shutdown(exitOK)
		case errors.As(err, &dead):
			// The kind died while /tunnel was being retried: stop it, and let the attempt in
			// flight return first, so it cannot reach the API after the /status below.
			<-readyDone
			return failRunning(fmt.Sprintf("%s failed: %v", kind, dead.err))
		case errors.As(err, &rejected):
			Log("error", "the API refused the ready callback: session gone or token wrong",
				map[string]any{"status": rejected.status})
			return shutdown(exitRejected)
		default:
			return failRunning(err.Error())
		}
	}
	// Start-up garbage (config, TLS tables touched by the client, ...) is dead now: give it
	// back to the kernel instead of waiting for the scavenger.
	debug.FreeOSMemory()

	select {
	case <-ctx.Done():
		return shutdown(exitOK)
	case code := <-a.fatal:
		return shutdown(code)
	case err, ok := <-kindDied:
		reason := fmt.Sprintf("%s failed: %v", kind, fatalReason(err, ok))
		Log("error", "session failed", map[string]any{"error": reason})
		a.shutdown(srv)
		a.mu.Lock()
		bound := a.reporter
		a.mu.Unlock()
		return report(bound, reason)
	case err := <-serveErr:
		Log("error", "server stopped", map[string]any{"error": err})
		return shutdown(exitFailed)
	}
}

// fatalError carries what a FatalNotifier reported while the agent was waiting on something.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// fatalReason is the error received from a Fatal channel (ok false: it was closed).
func fatalReason(err error, ok bool) error {
	if err == nil || !ok {
		return errors.New("an essential process ended")
	}
	return err
}

// await runs f and returns its error, ctx's as soon as ctx is done, or a *fatalError as soon
// as a value arrives on fatal (f may still run in both cases).
func await(ctx context.Context, fatal <-chan error, f func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case err, ok := <-fatal:
		return &fatalError{fatalReason(err, ok)}
	}
}

// shutdown stops accepting, lets the kind close its sessions, and returns within the grace.
func (a *agent) shutdown(srv *http.Server) {
	grace := a.opts.grace
	if gp, ok := a.svc.(GraceProvider); ok && gp.ShutdownGrace() > 0 {
		grace = gp.ShutdownGrace()
	}
	Log("info", "shutting down", map[string]any{"grace_ms": grace.Milliseconds()})
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	// Closes the listener and idle connections at once, then waits for requests in flight;
	// hijacked connections (WebSockets) are the kind's to close.
	httpDone := make(chan struct{})
	go func() {
		_ = srv.Shutdown(ctx)
		close(httpDone)
	}()
	if err := a.svc.Shutdown(ctx); err != nil {
		Log("warn", "kind shutdown incomplete", map[string]any{"error": err})
	}
	select {
	case <-httpDone:
	case <-ctx.Done():
	}
	_ = srv.Close()
}

func (a *agent) handler() http.Handler {
	kind := a.kindGate(a.svc.Handler())
	// Exact paths rather than an http.ServeMux: a mux answers a path with "..", "//" or "."
	// segments with a redirect to the cleaned path before the kind sees it, and the kind is
	// the one to refuse such a path (the browser: 400 for a download or upload name). The
	// kind gets every path but these two unchanged.
	return a.gate.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.berth/health":
			a.health(w, r)
		case "/.berth/bind":
			a.bind(w, r)
		default:
			kind.ServeHTTP(w, r)
		}
	}))
}

// kindGate keeps the kind's routes closed until the session is usable. Before a bind only
// the control endpoints answer, so whoever holds the pool secret cannot leave state (a
// shell, a page) behind for the session that gets the container later.
func (a *agent) kindGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		usable := a.prepared && a.bound
		a.mu.Unlock()
		if !usable {
			WriteError(w, http.StatusServiceUnavailable, "session not ready")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type healthBody struct {
	Ready     bool    `json:"ready"`
	Bound     bool    `json:"bound"`
	SessionID *string `json:"session_id"`
}

func (a *agent) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	a.mu.Lock()
	// Unbound: ready once prepared (a bind can come). Bound at start: ready once bound too.
	body := healthBody{Ready: a.prepared && (a.bound || !a.boundStart), Bound: a.bound}
	if a.bound {
		id := a.sessionID
		body.SessionID = &id
	}
	a.mu.Unlock()
	WriteJSON(w, http.StatusOK, body)
}

// bindRequest is the body of POST /.berth/bind.
type bindRequest struct {
	SessionID     string          `json:"session_id"`
	SecretSHA256  string          `json:"secret_sha256"`
	CallbackURL   string          `json:"callback_url"`
	CallbackToken string          `json:"callback_token"`
	Options       json.RawMessage `json:"options"`
}

func (req *bindRequest) binding() (Binding, error) {
	if !uuidRE.MatchString(req.SessionID) {
		return Binding{}, errors.New("session_id is not a UUID")
	}
	hash, err := normalizeSHA256(req.SecretSHA256)
	if err != nil {
		return Binding{}, fmt.Errorf("secret_sha256 %v", err)
	}
	if req.CallbackURL != "" {
		if err := checkCallbackURL(req.CallbackURL); err != nil {
			return Binding{}, fmt.Errorf("callback_url %v", err)
		}
		if req.CallbackToken == "" {
			return Binding{}, errors.New("callback_token is required with callback_url")
		}
	}
	b := Binding{SessionID: req.SessionID, SecretSHA256: hash,
		CallbackURL: req.CallbackURL, CallbackToken: req.CallbackToken}
	if len(req.Options) > 0 && string(req.Options) != "null" {
		if !isJSONObject(req.Options) {
			return Binding{}, errors.New("options must be a JSON object")
		}
		b.Options = req.Options
	}
	return b, nil
}

func (a *agent) bind(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	a.mu.Lock()
	switch {
	case a.bound || a.binding:
		a.mu.Unlock()
		WriteError(w, http.StatusConflict, "already bound")
		return
	case !a.prepared:
		a.mu.Unlock()
		WriteError(w, http.StatusServiceUnavailable, "start-up not finished")
		return
	}
	a.binding = true
	a.mu.Unlock()

	b, err := decodeBind(w, r)
	if err != nil {
		a.mu.Lock()
		a.binding = false
		a.mu.Unlock()
		WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The agent's context, not the request's: a caller hanging up must not leave the kind
	// half bound.
	if err := a.svc.Bind(a.ctx, b); err != nil {
		var refused StatusError
		if errors.As(err, &refused) && refused.StatusCode() >= 400 && refused.StatusCode() < 500 {
			// The kind refused this binding and changed nothing: stay unbound, pool secret
			// and all, for a binding this container can serve.
			a.mu.Lock()
			a.binding = false
			a.mu.Unlock()
			Log("warn", "bind refused", map[string]any{"error": err, "status": refused.StatusCode(),
				"bind_session_id": b.SessionID})
			WriteError(w, refused.StatusCode(), err.Error())
			return
		}
		// The kind's state is unknown now; a pool container is cheap to replace, so exit
		// (code 1) and let the platform remove it rather than serve a broken session.
		Log("error", "bind failed; exiting", map[string]any{"error": err, "bind_session_id": b.SessionID})
		WriteError(w, http.StatusInternalServerError, "bind failed")
		select {
		case a.fatal <- exitFailed:
		default:
		}
		return
	}
	a.markBound(b)
	Log("info", "bound", map[string]any{"callback": b.CallbackURL != ""})
	WriteJSON(w, http.StatusOK, map[string]bool{"bound": true})
}

func decodeBind(w http.ResponseWriter, r *http.Request) (Binding, error) {
	var req bindRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&req); err != nil {
		return Binding{}, errors.New("body must be a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Binding{}, errors.New("body must be a single JSON object")
	}
	return req.binding()
}

// markBound swaps the secret to the session's and records the binding: from here on only
// the session's secret opens the agent.
func (a *agent) markBound(b Binding) {
	_ = a.gate.set(b.SecretSHA256) // validated by LoadConfig / decodeBind
	setLogSession(b.SessionID)
	a.mu.Lock()
	a.bound, a.binding, a.sessionID = true, false, b.SessionID
	if a.reporter == nil && b.CallbackURL != "" && b.CallbackToken != "" {
		// Bound through /.berth/bind with a callback: a later failure can be reported.
		a.reporter = newCallbackClient(b.SessionID, b.CallbackURL, b.CallbackToken, a.kind, a.opts)
	}
	a.mu.Unlock()
}

// unwrapSyscallError turns "listen tcp 1.2.3.4:5: bind: address already in use" into
// "address already in use": the address is in the message already.
func unwrapSyscallError(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}
