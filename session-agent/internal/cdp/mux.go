package cdp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// FrameConn is the browser side of the multiplexer (a *Pipe in production).
type FrameConn interface {
	Read() ([]byte, error)
	Write(frame []byte) error
	Close() error
}

// Config adjusts how client commands are treated.
type Config struct {
	// DownloadDir replaces the downloadPath of every Browser.setDownloadBehavior a client
	// sends: Playwright names a directory on the client's machine, not in this container.
	DownloadDir string
	// OnClientGone runs on its own goroutine after a WebSocket client was disconnected and its
	// root session detached (Chromium resets the download behaviour that session had set).
	OnClientGone func()
	// Log receives warnings; nil discards them.
	Log func(level, msg string, fields map[string]any)
}

// ErrBrowserGone is returned once the pipe to Chromium is closed.
var ErrBrowserGone = errors.New("cdp: browser connection closed")

// Mux shares one Chromium pipe between the agent and many WebSocket clients. See router.go
// for the routing model.
type Mux struct {
	cfg      Config
	conn     FrameConn
	internal *Client

	mu      sync.Mutex
	r       *router
	clients map[*Client]struct{}
	subs    map[int]func(Message)
	nextSub int

	events chan Message
	dead   chan struct{}
	err    error
}

// NewMux wraps conn; call Run to start reading.
func NewMux(conn FrameConn, cfg Config) *Mux {
	m := &Mux{cfg: cfg, conn: conn, clients: map[*Client]struct{}{}, subs: map[int]func(Message){},
		events: make(chan Message, 4096), dead: make(chan struct{})}
	m.internal = newClient(m, true)
	m.r = newRouter(m.internal)
	go m.dispatchEvents()
	return m
}

// Run reads Chromium's frames until the pipe closes, then disconnects every client.
func (m *Mux) Run() error {
	for {
		frame, err := m.conn.Read()
		if err != nil {
			m.die(err)
			return err
		}
		msg, err := Decode(frame)
		if err != nil {
			m.log("warn", "undecodable frame from browser", map[string]any{"bytes": len(frame)})
			continue
		}
		m.mu.Lock()
		deliveries, closed := m.r.fromBrowser(msg)
		m.mu.Unlock()
		for _, d := range deliveries {
			switch {
			case d.call != nil:
				if d.call.done != nil {
					d.call.done <- d.msg // buffered: never blocks
				}
			case d.client.internal:
				select {
				case m.events <- d.msg:
				default:
					m.log("warn", "internal event queue full, event dropped", map[string]any{"method": d.msg.Method})
				}
			default:
				d.client.push(d.frame)
			}
		}
		for _, c := range closed {
			// Releasing writes to the pipe; never do that from the reading goroutine.
			if c.markClosed("target closed", false) {
				go m.release(c)
			}
		}
	}
}

// Dead is closed when the browser connection is gone.
func (m *Mux) Dead() <-chan struct{} { return m.dead }

func (m *Mux) die(err error) {
	m.mu.Lock()
	select {
	case <-m.dead:
		m.mu.Unlock()
		return
	default:
	}
	m.err = err
	close(m.dead)
	m.r.failPending()
	clients := make([]*Client, 0, len(m.clients))
	for c := range m.clients {
		clients = append(clients, c)
	}
	m.mu.Unlock()
	for _, c := range clients {
		m.disconnect(c, "browser exited", false)
	}
}

// Subscribe registers fn for events on the pipe's root connection and on sessions the agent
// attached itself. fn runs on one shared goroutine: it must not wait for a Call.
func (m *Mux) Subscribe(fn func(Message)) (cancel func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextSub++
	id := m.nextSub
	m.subs[id] = fn
	return func() {
		m.mu.Lock()
		delete(m.subs, id)
		m.mu.Unlock()
	}
}

func (m *Mux) dispatchEvents() {
	for ev := range m.events {
		m.mu.Lock()
		fns := make([]func(Message), 0, len(m.subs))
		for _, fn := range m.subs {
			fns = append(fns, fn)
		}
		m.mu.Unlock()
		for _, fn := range fns {
			fn(ev)
		}
	}
}

// CallError is an error answer from Chromium.
type CallError struct {
	Method  string
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *CallError) Error() string { return fmt.Sprintf("%s: %s (%d)", e.Method, e.Message, e.Code) }

// Call sends a command as the agent (sessionID "" = the browser root) and waits for the answer.
func (m *Mux) Call(ctx context.Context, sessionID, method string, params any) (json.RawMessage, error) {
	done := make(chan Message, 1)
	if err := m.send(sessionID, method, params, done); err != nil {
		return nil, err
	}
	select {
	case resp := <-done:
		if len(resp.Error) > 0 {
			ce := &CallError{Method: method}
			if json.Unmarshal(resp.Error, ce) != nil {
				ce.Message = string(resp.Error)
			}
			return nil, ce
		}
		return resp.Result, nil
	case <-m.dead:
		return nil, ErrBrowserGone
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Notify sends a command as the agent without waiting for its answer. Safe to use where
// waiting would deadlock (on the read loop or the event goroutine).
func (m *Mux) Notify(sessionID, method string, params any) error {
	return m.send(sessionID, method, params, nil)
}

func (m *Mux) send(sessionID, method string, params any, done chan Message) error {
	var raw json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return err
		}
		raw = b
	}
	var zero int64
	m.mu.Lock()
	select {
	case <-m.dead:
		m.mu.Unlock()
		return ErrBrowserGone
	default:
	}
	frame, reply := m.r.fromClient(m.internal, Message{ID: &zero, Method: method, SessionID: sessionID, Params: raw}, done)
	m.mu.Unlock()
	if reply != nil {
		return &CallError{Method: method, Code: codeSessionNotFound, Message: "session not attached by the agent"}
	}
	return m.conn.Write(frame)
}

// Connect gives a new WebSocket client its own session: on the browser target when
// targetID is empty, else on that target (a page).
func (m *Mux) Connect(ctx context.Context, targetID string) (*Client, error) {
	var res json.RawMessage
	var err error
	if targetID == "" {
		res, err = m.Call(ctx, "", "Target.attachToBrowserTarget", nil)
	} else {
		res, err = m.Call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": targetID, "flatten": true})
	}
	if err != nil {
		return nil, err
	}
	sid := paramSession(res)
	if sid == "" {
		return nil, fmt.Errorf("cdp: attach answered without a sessionId")
	}
	c := newClient(m, false)
	c.root = sid
	m.mu.Lock()
	select {
	case <-m.dead:
		m.mu.Unlock()
		return nil, ErrBrowserGone
	default:
	}
	m.r.owners[sid] = c
	m.clients[c] = struct{}{}
	m.mu.Unlock()
	return c, nil
}

// CloseClients disconnects every WebSocket client (agent shutdown).
func (m *Mux) CloseClients(reason string) {
	m.mu.Lock()
	clients := make([]*Client, 0, len(m.clients))
	for c := range m.clients {
		clients = append(clients, c)
	}
	m.mu.Unlock()
	for _, c := range clients {
		m.disconnect(c, reason, false)
	}
}

// Clients returns how many WebSocket clients are connected.
func (m *Mux) Clients() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.clients)
}

func (m *Mux) disconnect(c *Client, reason string, kill bool) {
	if c.markClosed(reason, kill) {
		m.release(c)
	}
}

// release forgets a closed client's sessions and detaches its root session.
func (m *Mux) release(c *Client) {
	m.mu.Lock()
	delete(m.clients, c)
	m.r.dropClient(c)
	m.mu.Unlock()
	select {
	case <-m.dead:
		return
	default:
	}
	// Detaching (not closing) keeps the client's pages open for its next connection; it also
	// resumes targets paused for it by waitForDebuggerOnStart. A session Chromium already
	// detached just answers with an error, which nobody waits for.
	if err := m.Notify("", "Target.detachFromTarget", map[string]string{"sessionId": c.root}); err != nil {
		return
	}
	if m.cfg.OnClientGone != nil {
		go m.cfg.OnClientGone()
	}
}

func (m *Mux) fromClient(c *Client, frame []byte) {
	msg, err := Decode(frame)
	if err != nil {
		c.push((&Message{Error: mustJSON(map[string]any{"code": -32700, "message": "JSON: invalid syntax"})}).Encode())
		return
	}
	if m.intercept(c, &msg) {
		return
	}
	m.mu.Lock()
	out, reply := m.r.fromClient(c, msg, nil)
	m.mu.Unlock()
	if reply != nil {
		c.push(reply)
		return
	}
	if err := m.conn.Write(out); err != nil {
		m.disconnect(c, "browser connection closed", false)
	}
}

func (m *Mux) log(level, msg string, fields map[string]any) {
	if m.cfg.Log != nil {
		m.cfg.Log(level, msg, fields)
	}
}
