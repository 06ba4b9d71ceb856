package cdp

import (
	"encoding/json"
	"testing"
)

func decode(t *testing.T, frame []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(frame, &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", frame, err)
	}
	return v
}

func msg(t *testing.T, s string) Message {
	t.Helper()
	m, err := Decode([]byte(s))
	if err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return m
}

type fixture struct {
	r    *router
	a, b *Client
}

func newFixture() *fixture {
	internal := &Client{internal: true}
	r := newRouter(internal)
	a := &Client{root: "ROOT-A"}
	b := &Client{root: "ROOT-B"}
	r.owners["ROOT-A"] = a
	r.owners["ROOT-B"] = b
	return &fixture{r: r, a: a, b: b}
}

// send routes a client command and returns the frame that would go to Chromium.
func (f *fixture) send(t *testing.T, c *Client, s string) map[string]any {
	t.Helper()
	out, reply := f.r.fromClient(c, msg(t, s), nil)
	if reply != nil {
		t.Fatalf("unexpected reply %s", reply)
	}
	return decode(t, out)
}

func (f *fixture) recv(t *testing.T, s string) []delivery {
	t.Helper()
	out, _ := f.r.fromBrowser(msg(t, s))
	return out
}

func TestRootCommandsGoToTheClientsSessionAndAnswersComeBackWithoutIt(t *testing.T) {
	f := newFixture()
	toA := f.send(t, f.a, `{"id":1,"method":"Target.getTargets"}`)
	toB := f.send(t, f.b, `{"id":1,"method":"Target.getTargets"}`)
	if toA["sessionId"] != "ROOT-A" || toB["sessionId"] != "ROOT-B" {
		t.Fatalf("root commands must be sent on the client's session: %v %v", toA, toB)
	}
	if toA["id"] == toB["id"] {
		t.Fatalf("both clients used id 1; the pipe ids must differ: %v", toA["id"])
	}
	// Answer B first: each answer reaches its own client with its own id, no sessionId.
	for _, tc := range []struct {
		to   map[string]any
		want *Client
	}{{toB, f.b}, {toA, f.a}} {
		frame, _ := json.Marshal(map[string]any{"id": tc.to["id"], "result": map[string]any{}, "sessionId": tc.to["sessionId"]})
		d := f.recv(t, string(frame))
		if len(d) != 1 || d[0].client != tc.want {
			t.Fatalf("answer delivered to wrong client: %+v", d)
		}
		got := decode(t, d[0].frame)
		if got["id"] != float64(1) || got["sessionId"] != nil {
			t.Fatalf("answer not restored to the client's view: %s", d[0].frame)
		}
	}
}

func TestChildSessionsAreOwnedByWhoeverAttached(t *testing.T) {
	f := newFixture()
	// Auto-attach announces a child on A's root session.
	d := f.recv(t, `{"method":"Target.attachedToTarget","sessionId":"ROOT-A","params":{"sessionId":"CHILD","targetInfo":{"targetId":"T1","type":"page"},"waitingForDebugger":true}}`)
	if len(d) != 1 || d[0].client != f.a || decode(t, d[0].frame)["sessionId"] != nil {
		t.Fatalf("attach event should reach A on its root: %+v", d)
	}
	d = f.recv(t, `{"method":"Page.loadEventFired","sessionId":"CHILD","params":{"timestamp":1}}`)
	if len(d) != 1 || d[0].client != f.a || decode(t, d[0].frame)["sessionId"] != "CHILD" {
		t.Fatalf("child events must reach A with the child sessionId: %+v", d)
	}
	// B may not drive A's child.
	_, reply := f.r.fromClient(f.b, msg(t, `{"id":7,"method":"Runtime.evaluate","sessionId":"CHILD"}`), nil)
	got := decode(t, reply)
	if got["id"] != float64(7) || got["sessionId"] != "CHILD" || got["error"] == nil {
		t.Fatalf("foreign session must be refused like Chromium does: %s", reply)
	}
	// A can, and the answer keeps the child sessionId.
	out := f.send(t, f.a, `{"id":8,"method":"Runtime.evaluate","sessionId":"CHILD"}`)
	if out["sessionId"] != "CHILD" {
		t.Fatalf("child command must keep its session: %v", out)
	}
	frame, _ := json.Marshal(map[string]any{"id": out["id"], "result": map[string]any{}, "sessionId": "CHILD"})
	d = f.recv(t, string(frame))
	if got := decode(t, d[0].frame); got["id"] != float64(8) || got["sessionId"] != "CHILD" {
		t.Fatalf("child answer: %s", d[0].frame)
	}
	// Detach forgets the child: later events are dropped.
	f.recv(t, `{"method":"Target.detachedFromTarget","sessionId":"ROOT-A","params":{"sessionId":"CHILD","targetId":"T1"}}`)
	if d := f.recv(t, `{"method":"Page.loadEventFired","sessionId":"CHILD","params":{}}`); len(d) != 0 {
		t.Fatalf("events of a detached session must be dropped: %+v", d)
	}
}

func TestAttachAnswerRegistersTheSessionEvenWithoutAnEvent(t *testing.T) {
	f := newFixture()
	out := f.send(t, f.b, `{"id":3,"method":"Target.attachToTarget","params":{"targetId":"T2","flatten":true}}`)
	frame, _ := json.Marshal(map[string]any{"id": out["id"], "result": map[string]any{"sessionId": "S2"}, "sessionId": "ROOT-B"})
	f.recv(t, string(frame))
	if f.r.owners["S2"] != f.b {
		t.Fatal("attachToTarget answer must make B the owner of S2")
	}
}

func TestAnswerWithoutSessionIDStillReachesTheCaller(t *testing.T) {
	// Chromium answers a command for a session it does not know without any sessionId.
	f := newFixture()
	f.r.owners["GONE"] = f.a
	out := f.send(t, f.a, `{"id":42,"method":"Runtime.enable","sessionId":"GONE"}`)
	frame, _ := json.Marshal(map[string]any{"id": out["id"], "error": map[string]any{"code": -32001, "message": "Session with given id not found."}})
	d := f.recv(t, string(frame))
	if len(d) != 1 || d[0].client != f.a {
		t.Fatalf("error answer lost: %+v", d)
	}
	if got := decode(t, d[0].frame); got["id"] != float64(42) || got["sessionId"] != "GONE" {
		t.Fatalf("the client expects the answer on the session it used: %s", d[0].frame)
	}
}

func TestRootDetachClosesThatClientOnly(t *testing.T) {
	f := newFixture()
	d, closed := f.r.fromBrowser(msg(t, `{"method":"Target.detachedFromTarget","params":{"sessionId":"ROOT-A","targetId":"P"}}`))
	if len(closed) != 1 || closed[0] != f.a {
		t.Fatalf("A's page went away, A must be closed: %v", closed)
	}
	if len(d) != 1 || !d[0].client.internal {
		t.Fatalf("root events belong to the agent: %+v", d)
	}
	if f.r.owners["ROOT-B"] != f.b {
		t.Fatal("B must be untouched")
	}
}

func TestInternalCallsAndRootEvents(t *testing.T) {
	f := newFixture()
	done := make(chan Message, 1)
	var zero int64
	out, reply := f.r.fromClient(f.r.internal, Message{ID: &zero, Method: "Browser.getVersion"}, done)
	if reply != nil {
		t.Fatal(string(reply))
	}
	got := decode(t, out)
	if _, has := got["sessionId"]; has {
		t.Fatalf("agent commands go to the root connection: %s", out)
	}
	frame, _ := json.Marshal(map[string]any{"id": got["id"], "result": map[string]any{"product": "x"}})
	d := f.recv(t, string(frame))
	if len(d) != 1 || d[0].call == nil || d[0].call.done != done {
		t.Fatalf("internal answer must complete the call: %+v", d)
	}
	d = f.recv(t, `{"method":"Browser.downloadWillBegin","params":{"guid":"g"}}`)
	if len(d) != 1 || !d[0].client.internal || d[0].msg.Method != "Browser.downloadWillBegin" {
		t.Fatalf("root events go to the agent: %+v", d)
	}
}

func TestDropClientForgetsSessionsAndPendingCommands(t *testing.T) {
	f := newFixture()
	f.recv(t, `{"method":"Target.attachedToTarget","sessionId":"ROOT-A","params":{"sessionId":"C"}}`)
	out := f.send(t, f.a, `{"id":1,"method":"Page.enable","sessionId":"C"}`)
	f.r.dropClient(f.a)
	if len(f.r.owners) != 1 || len(f.r.pending) != 0 {
		t.Fatalf("leftovers: owners=%v pending=%v", f.r.owners, f.r.pending)
	}
	frame, _ := json.Marshal(map[string]any{"id": out["id"], "result": map[string]any{}})
	if d := f.recv(t, string(frame)); len(d) != 0 {
		t.Fatalf("answer for a departed client must be dropped: %+v", d)
	}
}

func TestMalformedCommandsAreRefused(t *testing.T) {
	f := newFixture()
	for _, s := range []string{`{"method":"X"}`, `{"id":1}`} {
		out, reply := f.r.fromClient(f.a, msg(t, s), nil)
		if out != nil || reply == nil || decode(t, reply)["error"] == nil {
			t.Fatalf("%s: want an error reply, got out=%s reply=%s", s, out, reply)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in := `{"id":5,"method":"A.b","sessionId":"S\u0001\"x","params":{"k":[1,2,"\u00e9"]}}`
	m := msg(t, in)
	back := decode(t, m.Encode())
	want := decode(t, []byte(in))
	a, _ := json.Marshal(back)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Fatalf("round trip changed the frame:\n got %s\nwant %s", a, b)
	}
}

func TestRewriteDownloadPath(t *testing.T) {
	got := decode(t, rewriteDownloadPath(json.RawMessage(`{"behavior":"allowAndName","downloadPath":"/Users/me/tmp","eventsEnabled":true,"browserContextId":"C1"}`), "/home/berth/Downloads"))
	if got["downloadPath"] != "/home/berth/Downloads" || got["eventsEnabled"] != true || got["browserContextId"] != "C1" || got["behavior"] != "allowAndName" {
		t.Fatalf("rewrite: %v", got)
	}
	got = decode(t, rewriteDownloadPath(json.RawMessage(`{"behavior":"deny"}`), "/d"))
	if _, has := got["downloadPath"]; has {
		t.Fatalf("deny needs no path: %v", got)
	}
}
