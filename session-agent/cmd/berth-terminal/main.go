// Command berth-terminal is the session agent of Berth's terminal image: PID 1 of the
// container, serving one shared shell to the browser through the gateway.
package main

import (
	"os"

	"berth/session-agent/internal/agent"
	"berth/session-agent/internal/terminal"
)

func main() {
	// One P is plenty for one shell and a few sockets; a low GC target and a soft limit keep
	// the heap (what every session costs the host) small after bursts of output. The image
	// also sets GOMAXPROCS=1 in the environment, which saves more than setting it here.
	agent.TuneRuntime(1, 50, 16<<20)
	agent.Main("terminal", terminal.New(os.Getenv))
}
