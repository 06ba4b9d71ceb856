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
	// Chromium exiting on its own ends the run through the agent (Service.Fatal): normal
	// shutdown, the failure reported to the API, exit 1.
	agent.Main("browser", browser.New(os.Getenv))
}
