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
	// the idle heap (what every idle session costs the host) small.
	agent.TuneRuntime(1, 50, 16<<20)
	agent.Main("terminal", terminal.New(os.Getenv))
}
