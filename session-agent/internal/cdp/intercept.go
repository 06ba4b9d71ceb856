package cdp

import (
	"encoding/json"
)

// intercept handles the few client commands that must not reach Chromium as sent, because
// the browser is shared by every client of the session and outlives them. It reports whether
// the command was fully handled here.
func (m *Mux) intercept(c *Client, msg *Message) bool {
	if c.internal || msg.ID == nil {
		return false
	}
	switch msg.Method {
	case "Browser.close":
		// Puppeteer's browser.close() sends this. Closing the browser would end the session
		// for every other client, so this client is answered and disconnected instead, which
		// is what it observes after a real close.
		c.push(resultReply(*msg.ID, msg.SessionID, json.RawMessage(`{}`)))
		m.disconnect(c, "client sent Browser.close", false)
		return true
	case "Browser.crash", "Browser.crashGpuProcess":
		c.push(errorReply(*msg.ID, msg.SessionID, codeServerError,
			msg.Method+" is not allowed: the browser is shared by this session's clients"))
		return true
	case "Browser.setDownloadBehavior":
		if m.cfg.DownloadDir != "" {
			msg.Params = rewriteDownloadPath(msg.Params, m.cfg.DownloadDir)
		}
	}
	return false
}

// rewriteDownloadPath points a Browser.setDownloadBehavior at the container's downloads
// directory, keeping every other field (behavior, browserContextId, eventsEnabled) as sent.
func rewriteDownloadPath(params json.RawMessage, dir string) json.RawMessage {
	var p map[string]json.RawMessage
	if len(params) == 0 || json.Unmarshal(params, &p) != nil {
		return params // let Chromium report the malformed params
	}
	var behavior string
	_ = json.Unmarshal(p["behavior"], &behavior)
	if behavior == "allow" || behavior == "allowAndName" {
		p["downloadPath"] = mustJSON(dir)
	}
	return mustJSON(p)
}
