package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// callbackClient posts to the API's callback endpoints with the session's bearer token.
type callbackClient struct {
	sessionID string
	base      string // e.g. http://127.0.0.1:3000/api/v1/callbacks
	token     string
	userAgent string
	http      *http.Client
	o         runOptions
}

// rejectedError: the API answered with a status retrying cannot fix (the session is gone or
// the token is wrong).
type rejectedError struct{ status int }

func (e *rejectedError) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

func newCallbackClient(sessionID, base, token, kind string, o runOptions) *callbackClient {
	return &callbackClient{
		sessionID: sessionID,
		base:      strings.TrimRight(base, "/"),
		token:     token,
		userAgent: "berth-" + kind + "-agent",
		http: &http.Client{
			// One-shot posts: no idle connections (and their goroutines) to keep afterwards,
			// no proxy from the environment, and a redirect is an answer, not an instruction.
			Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		o: o,
	}
}

// post sends body to base+path. Network errors, 5xx and 429 are retried with exponential
// backoff until retryFor has passed; 2xx returns nil; anything else returns *rejectedError at
// once. A cancelled ctx returns ctx.Err().
func (c *callbackClient) post(ctx context.Context, path string, body any, retryFor time.Duration) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(retryFor)
	delay := c.o.backoff
	for {
		status, err := c.attempt(ctx, path, payload)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var problem string
		switch {
		case err != nil:
			problem = err.Error()
		case status >= 200 && status < 300:
			return nil
		case status >= 500 || status == http.StatusTooManyRequests:
			problem = fmt.Sprintf("HTTP %d", status)
		default:
			return &rejectedError{status: status}
		}
		if time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("callback %s failed: %s", path, problem)
		}
		Log("warn", "callback failed, retrying", map[string]any{
			"path": path, "error": problem, "retry_in_ms": delay.Milliseconds(),
		})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay *= 2; delay > c.o.backoffMax {
			delay = c.o.backoffMax
		}
	}
}

func (c *callbackClient) attempt(ctx context.Context, path string, payload []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// ready posts {callback}/tunnel once the agent serves requests.
func (c *callbackClient) ready(ctx context.Context) error {
	return c.post(ctx, "/tunnel", map[string]string{"session_id": c.sessionID}, c.o.readyRetry)
}

// failed posts {callback}/status {"status": "failed"} for a start-up failure.
func (c *callbackClient) failed(ctx context.Context, reason string) error {
	if len(reason) > 500 {
		reason = strings.ToValidUTF8(reason[:500], "") // never cut a character in half
	}
	return c.post(ctx, "/status", map[string]string{
		"session_id": c.sessionID, "status": "failed", "error_message": reason,
	}, c.o.failRetry)
}
