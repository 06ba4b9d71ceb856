package cdp

import (
	"sync"
)

// MaxQueuedBytes bounds what may wait for one slow WebSocket client. A client that falls
// this far behind is disconnected rather than stalling the pipe for everyone else.
const MaxQueuedBytes = 128 << 20

// Client is one consumer of the browser: a WebSocket connection, or the agent itself.
type Client struct {
	mux      *Mux
	internal bool
	root     string // the session its sessionId-less frames go to; "" = the pipe's root

	mu      sync.Mutex
	queue   [][]byte
	queued  int
	closing bool // no more frames accepted; Next drains what is queued, then stops
	wake    chan struct{}
	done    chan struct{}
	reason  string
	onKill  func()
}

func newClient(m *Mux, internal bool) *Client {
	return &Client{mux: m, internal: internal, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// push queues a frame for the client. Returns false if the client is gone or overflowed.
func (c *Client) push(frame []byte) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if c.queued+len(frame) > MaxQueuedBytes {
		c.mu.Unlock()
		// push runs on the pipe's reading goroutine, which must not write to the pipe.
		if c.markClosed("client too slow: queue limit exceeded", true) {
			go c.mux.release(c)
		}
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.mu.Unlock()
	c.signal()
	return true
}

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Next blocks until a frame is available. ok is false once the client is closed and
// everything queued before closing has been returned.
func (c *Client) Next() (frame []byte, ok bool) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			frame = c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.queued -= len(frame)
			c.mu.Unlock()
			return frame, true
		}
		closing := c.closing
		c.mu.Unlock()
		if closing {
			return nil, false
		}
		<-c.wake
	}
}

// Send hands one frame the client wrote to the multiplexer.
func (c *Client) Send(frame []byte) { c.mux.fromClient(c, frame) }

// Close disconnects the client: its sessions are detached, the browser keeps running.
func (c *Client) Close() { c.mux.disconnect(c, "client left", false) }

// Done is closed once the client is disconnected.
func (c *Client) Done() <-chan struct{} { return c.done }

// Reason says why the client was disconnected (valid after Done).
func (c *Client) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// SetOnKill registers the transport's hook for abrupt disconnects (queue overflow), where
// waiting for the writer to drain is pointless: it must unblock a write to a dead peer.
func (c *Client) SetOnKill(fn func()) {
	c.mu.Lock()
	c.onKill = fn
	c.mu.Unlock()
}

// markClosed stops accepting frames; returns false if it was already closed. Frames queued
// before are still returned by Next (a reply to Browser.close must reach the client), unless
// kill is set.
func (c *Client) markClosed(reason string, kill bool) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.closing = true
	c.reason = reason
	fn := c.onKill
	if kill {
		c.queue, c.queued = nil, 0
	}
	c.mu.Unlock()
	close(c.done)
	c.signal()
	if kill && fn != nil {
		fn()
	}
	return true
}
