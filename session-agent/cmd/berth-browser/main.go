// Command berth-browser is the session agent of Berth's browser image: PID 1 of the
// container, running Chromium and serving CDP, the live view and files through the gateway.
package main

import (
	"os"

	"berth/session-agent/internal/agent"
	"berth/session-agent/internal/browser"
)

func main() {
	// Two Ps: the multiplexer relays screenshots and page traffic for several clients while
	// the HTTP side serves files. The heap limit is soft: a large screenshot may exceed it.
	agent.TuneRuntime(2, 50, 32<<20)
	svc := browser.New(os.Getenv)
	go func() {
		// Chromium gone means the session is gone: exit non-zero so the platform sees a
		// failed container (the agent has no hook for a kind to end the run itself).
		err := <-svc.Died()
		agent.Log("error", "browser died", map[string]any{"error": err})
		os.Exit(1)
	}()
	agent.Main("browser", svc)
}
