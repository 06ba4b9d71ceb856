package cdp

import (
	"encoding/json"
	"math"
)

// Error codes Chromium itself uses, so clients handle our answers like its own.
const (
	codeInvalidRequest  = -32600
	codeServerError     = -32000
	codeSessionNotFound = -32001
)

// router is the multiplexer's routing table. It is pure bookkeeping (no I/O, no locking: the
// Mux calls it under its mutex), so it is unit-tested with synthetic frames.
//
// Model: every consumer of the pipe is a Client. The agent itself is the internal client and
// owns the pipe's root connection (frames without sessionId). Every WebSocket client gets its
// own flat-mode session (Target.attachToBrowserTarget for /devtools/browser,
// Target.attachToTarget for /devtools/page/<id>) as its "root": the frames it sends without a
// sessionId are sent to that session, and frames Chromium sends on that session reach it
// without a sessionId, so it sees what it would see on a dedicated connection.
//
// Command ids are rewritten to ids unique across the pipe, because Chromium answers a command
// for an unknown session without any sessionId: only the id can tell whose answer it is.
// Events are routed by sessionId; a session's owner is learned from Target.attachedToTarget
// (also for auto-attached children) and from attach answers, and forgotten on
// Target.detachedFromTarget or when its client leaves.
type router struct {
	internal *Client
	nextID   int64
	pending  map[int64]*pending
	owners   map[string]*Client
}

// pending is a command sent to Chromium and not yet answered.
type pending struct {
	client    *Client
	clientID  int64  // the id the client used
	sessionID string // the sessionId the client used ("" = its root)
	method    string
	done      chan Message // internal calls only
}

// delivery is one frame for one client. Internal deliveries keep the decoded message.
type delivery struct {
	client *Client
	frame  []byte
	msg    Message
	call   *pending // set for answers to internal calls
}

func newRouter(internal *Client) *router {
	return &router{internal: internal, pending: map[int64]*pending{}, owners: map[string]*Client{}}
}

func (r *router) allocID() int64 {
	for {
		// Chromium parses ids as int32; wrap long before that, skipping ids still in flight.
		if r.nextID >= math.MaxInt32 {
			r.nextID = 0
		}
		r.nextID++
		if _, busy := r.pending[r.nextID]; !busy {
			return r.nextID
		}
	}
}

// fromClient turns a client's command into the frame for Chromium, or into an immediate
// error reply for the client when the command cannot be forwarded.
func (r *router) fromClient(c *Client, m Message, done chan Message) (toBrowser, reply []byte) {
	if m.ID == nil || m.Method == "" {
		return nil, (&Message{Error: mustJSON(map[string]any{
			"code": codeInvalidRequest, "message": "Message must have integer 'id' and string 'method' properties",
		})}).Encode()
	}
	target := m.SessionID
	if target == "" {
		target = c.root
	} else if r.owners[target] != c {
		return nil, errorReply(*m.ID, m.SessionID, codeSessionNotFound, "Session with given id not found.")
	}
	id := r.allocID()
	r.pending[id] = &pending{client: c, clientID: *m.ID, sessionID: m.SessionID, method: m.Method, done: done}
	out := Message{ID: &id, Method: m.Method, SessionID: target, Params: m.Params}
	return out.Encode(), nil
}

// fromBrowser routes one frame from Chromium. closed lists clients whose root session
// Chromium detached (their page went away); the Mux disconnects them.
func (r *router) fromBrowser(m Message) (out []delivery, closed []*Client) {
	if m.ID != nil {
		p := r.pending[*m.ID]
		if p == nil {
			return nil, nil
		}
		delete(r.pending, *m.ID)
		if sid := attachedSession(p.method, m.Result); sid != "" && r.owners[sid] == nil {
			r.owners[sid] = p.client
		}
		if p.client.internal {
			return []delivery{{client: p.client, msg: m, call: p}}, nil
		}
		m.ID = &p.clientID
		m.SessionID = p.sessionID
		return []delivery{{client: p.client, frame: m.Encode()}}, nil
	}

	owner := r.internal
	if m.SessionID != "" {
		owner = r.owners[m.SessionID]
		if owner == nil {
			return nil, nil // a session whose client already left
		}
	}
	switch m.Method {
	case "Target.attachedToTarget":
		if child := paramSession(m.Params); child != "" {
			r.owners[child] = owner
		}
	case "Target.detachedFromTarget":
		if child := paramSession(m.Params); child != "" {
			if c := r.owners[child]; c != nil && c.root == child && !c.internal {
				closed = append(closed, c)
			}
			delete(r.owners, child)
		}
	}
	if owner.internal {
		return []delivery{{client: owner, msg: m}}, closed
	}
	if m.SessionID == owner.root {
		m.SessionID = ""
	}
	return []delivery{{client: owner, frame: m.Encode()}}, closed
}

// dropClient forgets everything a departed client owned and returns its sessions.
func (r *router) dropClient(c *Client) {
	for sid, owner := range r.owners {
		if owner == c {
			delete(r.owners, sid)
		}
	}
	for id, p := range r.pending {
		if p.client == c {
			delete(r.pending, id)
		}
	}
}

// failPending answers every outstanding internal call when the pipe is gone.
func (r *router) failPending() []*pending {
	var calls []*pending
	for id, p := range r.pending {
		if p.done != nil {
			calls = append(calls, p)
		}
		delete(r.pending, id)
	}
	return calls
}

func attachedSession(method string, result json.RawMessage) string {
	if method != "Target.attachToTarget" && method != "Target.attachToBrowserTarget" {
		return ""
	}
	return paramSession(result)
}

func paramSession(raw json.RawMessage) string {
	var v struct {
		SessionID string `json:"sessionId"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return v.SessionID
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
