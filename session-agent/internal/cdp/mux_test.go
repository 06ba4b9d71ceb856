package cdp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"
)

// fakeBrowser is the Chromium end of the pipe: the test reads what the mux wrote and
// injects what Chromium would send.
type fakeBrowser struct {
	toBrowser chan []byte
	fromBrows chan []byte
	closed    chan struct{}
}

func newFakeBrowser() *fakeBrowser {
	return &fakeBrowser{toBrowser: make(chan []byte, 64), fromBrows: make(chan []byte, 64), closed: make(chan struct{})}
}

func (f *fakeBrowser) Read() ([]byte, error) {
	select {
	case b := <-f.fromBrows:
		return b, nil
	case <-f.closed:
		return nil, io.EOF
	}
}
func (f *fakeBrowser) Write(b []byte) error { f.toBrowser <- append([]byte(nil), b...); return nil }
func (f *fakeBrowser) Close() error         { return nil }

// expect returns the next frame the mux sent to the browser, decoded.
func (f *fakeBrowser) expect(t *testing.T, method string) map[string]any {
	t.Helper()
	select {
	case b := <-f.toBrowser:
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m["method"] != method {
			t.Fatalf("browser got %s, want %s", b, method)
		}
		return m
	case <-time.After(2 * time.Second):
		t.Fatalf("browser never got %s", method)
		return nil
	}
}

func (f *fakeBrowser) answer(to map[string]any, result string) {
	frame := `{"id":` + jsonNumber(to["id"]) + `,"result":` + result
	if sid, ok := to["sessionId"].(string); ok {
		frame += `,"sessionId":"` + sid + `"`
	}
	f.fromBrows <- []byte(frame + "}")
}

func jsonNumber(v any) string { b, _ := json.Marshal(v); return string(b) }

func next(t *testing.T, c *Client) map[string]any {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b, _ := c.Next()
		got <- b
	}()
	select {
	case b := <-got:
		if b == nil {
			return nil
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	case <-time.After(2 * time.Second):
		t.Fatal("client got nothing")
		return nil
	}
}

// connect runs Mux.Connect against the fake, answering the attach.
func connect(t *testing.T, m *Mux, f *fakeBrowser, session string) *Client {
	t.Helper()
	done := make(chan *Client, 1)
	go func() {
		c, err := m.Connect(context.Background(), "")
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	f.answer(f.expect(t, "Target.attachToBrowserTarget"), `{"sessionId":"`+session+`"}`)
	return <-done
}

func TestMuxRoutesAClientThroughItsOwnSession(t *testing.T) {
	f := newFakeBrowser()
	m := NewMux(f, Config{DownloadDir: "/home/berth/Downloads"})
	go m.Run()
	c := connect(t, m, f, "S1")

	c.Send([]byte(`{"id":7,"method":"Browser.getVersion"}`))
	sent := f.expect(t, "Browser.getVersion")
	if sent["sessionId"] != "S1" {
		t.Fatalf("not sent on the client's session: %v", sent)
	}
	f.answer(sent, `{"product":"Chrome/1"}`)
	if got := next(t, c); got["id"] != float64(7) || got["sessionId"] != nil {
		t.Fatalf("answer: %v", got)
	}

	c.Send([]byte(`{"id":8,"method":"Browser.setDownloadBehavior","params":{"behavior":"allowAndName","downloadPath":"/Users/x/dl","eventsEnabled":true}}`))
	params := f.expect(t, "Browser.setDownloadBehavior")["params"].(map[string]any)
	if params["downloadPath"] != "/home/berth/Downloads" || params["eventsEnabled"] != true {
		t.Fatalf("download path not rewritten: %v", params)
	}
}

func TestBrowserCloseFromAClientEndsOnlyThatClient(t *testing.T) {
	f := newFakeBrowser()
	gone := make(chan struct{}, 1)
	m := NewMux(f, Config{OnClientGone: func() { gone <- struct{}{} }})
	go m.Run()
	c := connect(t, m, f, "S1")

	c.Send([]byte(`{"id":1,"method":"Browser.close"}`))
	if got := next(t, c); got["id"] != float64(1) || got["result"] == nil {
		t.Fatalf("Browser.close must be answered: %v", got)
	}
	if got := next(t, c); got != nil {
		t.Fatalf("the client must be closed after the answer: %v", got)
	}
	detach := f.expect(t, "Target.detachFromTarget") // and not Browser.close
	if detach["params"].(map[string]any)["sessionId"] != "S1" {
		t.Fatalf("detach: %v", detach)
	}
	select {
	case <-gone:
	case <-time.After(2 * time.Second):
		t.Fatal("OnClientGone not called")
	}
	if m.Clients() != 0 {
		t.Fatalf("clients: %d", m.Clients())
	}
}

func TestBrowserExitClosesClientsAndFailsCalls(t *testing.T) {
	f := newFakeBrowser()
	m := NewMux(f, Config{})
	go m.Run()
	c := connect(t, m, f, "S1")
	result := make(chan error, 1)
	go func() {
		_, err := m.Call(context.Background(), "", "Target.getTargets", nil)
		result <- err
	}()
	f.expect(t, "Target.getTargets")
	close(f.closed) // Chromium exits without answering
	if err := <-result; !errors.Is(err, ErrBrowserGone) {
		t.Fatalf("pending call: %v", err)
	}
	if got := next(t, c); got != nil {
		t.Fatalf("client must be closed: %v", got)
	}
	if _, err := m.Connect(context.Background(), ""); !errors.Is(err, ErrBrowserGone) {
		t.Fatalf("connect after exit: %v", err)
	}
}
