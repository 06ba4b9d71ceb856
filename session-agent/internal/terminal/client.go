package terminal

import (
	"sync"
	"time"

	"berth/session-agent/internal/agent"

	"github.com/gorilla/websocket"
)

const (
	maxClientBacklog = 1 << 20          // unsent output per client before it is dropped
	maxFrame         = 64 << 10         // output frames are coalesced up to this size
	pingEvery        = 30 * time.Second // keeps proxies from idling the socket out...
	readTimeout      = 2 * pingEvery    // ...and finds dead peers (browsers answer pings)
	closeWait        = 1 * time.Second  // how long a peer gets to answer our close frame
)

// client is one attached WebSocket. The PTY reader only queues output here and never blocks
// on a socket; the client's writer goroutine sends it. A client whose backlog passes
// maxClientBacklog is dropped (1013) instead of buffering without bound.
type client struct {
	conn *websocket.Conn
	peer string

	mu        sync.Mutex
	queue     [][]byte // chunks are shared between clients: never modified
	backlog   int      // bytes queued or being written
	closeCode int      // set: send a close frame after what is queued, then stop
	closeText string

	wake chan struct{} // capacity 1: "there is work"
	quit chan struct{} // closed by the reading side when the connection is over
	done chan struct{} // closed when the writer has stopped
}

func newClient(conn *websocket.Conn, peer string) *client {
	return &client{conn: conn, peer: peer, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
}

func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// push queues output; data must not be modified afterwards.
func (c *client) push(data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 || len(data) == 0 {
		return
	}
	if c.backlog+len(data) > maxClientBacklog {
		agent.Log("warn", "dropping slow client", map[string]any{"peer": c.peer, "backlog": c.backlog})
		c.queue, c.closeCode, c.closeText = nil, websocket.CloseTryAgainLater, "client too slow"
		c.signal()
		// The writer is probably stuck in a write the client does not read: the close frame
		// can only follow it. If it cannot within closeWait, cut the connection.
		time.AfterFunc(closeWait, func() { c.conn.Close() })
		return
	}
	c.queue = append(c.queue, data)
	c.backlog += len(data)
	c.signal()
}

// finish closes the connection with code once what is already queued has been sent.
func (c *client) finish(code int, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode == 0 {
		c.closeCode, c.closeText = code, text
		c.signal()
	}
}

func (c *client) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode != 0
}

// writeLoop sends queued output, pings, and finally the close frame.
func (c *client) writeLoop() {
	defer close(c.done)
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(pingEvery)); err != nil {
				c.conn.Close()
				return
			}
			continue
		case <-c.wake:
		}
		c.mu.Lock()
		queue, code, text := c.queue, c.closeCode, c.closeText
		c.queue = nil
		c.mu.Unlock()
		if err := c.send(queue); err != nil {
			c.conn.Close()
			return
		}
		if code != 0 {
			msg := websocket.FormatCloseMessage(code, text)
			_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
			// The reading side sees the peer's close reply and ends; this is the backstop.
			time.AfterFunc(closeWait, func() { c.conn.Close() })
			return
		}
	}
}

// send writes chunks as binary messages of up to maxFrame bytes each.
func (c *client) send(chunks [][]byte) error {
	for len(chunks) > 0 {
		w, err := c.conn.NextWriter(websocket.BinaryMessage)
		if err != nil {
			return err
		}
		size := 0
		for len(chunks) > 0 && (size == 0 || size+len(chunks[0]) <= maxFrame) {
			if _, err := w.Write(chunks[0]); err != nil {
				return err
			}
			size += len(chunks[0])
			chunks = chunks[1:]
		}
		if err := w.Close(); err != nil {
			return err
		}
		c.mu.Lock()
		c.backlog -= size
		c.mu.Unlock()
	}
	return nil
}
