// Package cdp multiplexes Chromium's single DevTools pipe (--remote-debugging-pipe) between
// the agent itself and any number of WebSocket clients (Playwright, Puppeteer, raw CDP), and
// serves the DevTools HTTP discovery endpoints (/json/...) those clients expect.
package cdp

import (
	"encoding/json"
	"errors"
	"strconv"
)

// Message is one DevTools protocol frame. The multiplexer only reads id, method and
// sessionId; params, result and error pass through untouched as raw JSON.
type Message struct {
	ID        *int64          `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     json.RawMessage `json:"error,omitempty"`
}

// ErrBadMessage is returned for frames that are not a JSON object with an integer id.
var ErrBadMessage = errors.New("cdp: malformed message")

// Decode parses one frame.
func Decode(b []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, ErrBadMessage
	}
	return m, nil
}

// IsResponse reports whether the frame answers a command (events have no id).
func (m *Message) IsResponse() bool { return m.ID != nil && m.Method == "" }

// Encode writes the frame back out. Written by hand rather than with json.Marshal so
// large payloads (screenshots, response bodies) are copied once, not re-validated and
// compacted a second time.
func (m *Message) Encode() []byte {
	n := 64 + len(m.Method) + len(m.SessionID) + len(m.Params) + len(m.Result) + len(m.Error)
	b := make([]byte, 0, n)
	b = append(b, '{')
	sep := func() {
		if len(b) > 1 {
			b = append(b, ',')
		}
	}
	if m.ID != nil {
		b = append(b, `"id":`...)
		b = strconv.AppendInt(b, *m.ID, 10)
	}
	if m.Method != "" {
		sep()
		b = append(b, `"method":`...)
		b = appendString(b, m.Method)
	}
	if m.SessionID != "" {
		sep()
		b = append(b, `"sessionId":`...)
		b = appendString(b, m.SessionID)
	}
	for _, f := range [...]struct {
		key string
		val json.RawMessage
	}{{"params", m.Params}, {"result", m.Result}, {"error", m.Error}} {
		if len(f.val) > 0 {
			sep()
			b = append(b, '"')
			b = append(b, f.key...)
			b = append(b, `":`...)
			b = append(b, f.val...)
		}
	}
	return append(b, '}')
}

// appendString appends s as a JSON string (strconv.Quote's escapes are not all valid JSON).
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// errorReply builds the error answer Chromium itself would give.
func errorReply(id int64, sessionID string, code int, text string) []byte {
	e, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, text})
	return (&Message{ID: &id, SessionID: sessionID, Error: e}).Encode()
}

// resultReply builds a successful answer with the given result object.
func resultReply(id int64, sessionID string, result json.RawMessage) []byte {
	return (&Message{ID: &id, SessionID: sessionID, Result: result}).Encode()
}
