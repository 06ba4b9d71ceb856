// Package terminal is the terminal kind of the session agent: one shell on a PTY per
// container, shared by every attached WebSocket (like tmux attach), served with xterm.js.
package terminal

import (
	"errors"
	"fmt"
	"strconv"
)

// Config is the terminal's own environment (the agent's BERTH_* are in package agent).
type Config struct {
	Shell      string // BERTH_SHELL: started as a login shell ("-bash")
	Home       string // HOME and working directory of the shell
	StaticDir  string // BERTH_STATIC_DIR: index.html, app.js, xterm.js, xterm.css, addon-fit.js
	Scrollback int    // BERTH_SCROLLBACK_BYTES: output replayed to (re)connecting clients; 0 = off
}

const (
	defaultShell      = "/bin/bash"
	defaultHome       = "/home/berth"
	defaultStaticDir  = "/opt/berth/terminal/static"
	defaultScrollback = 64 << 10
	maxScrollback     = 16 << 20
)

// ConfigFromEnv reads the terminal's variables through getenv.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{
		Shell:      getenv("BERTH_SHELL"),
		Home:       defaultHome,
		StaticDir:  getenv("BERTH_STATIC_DIR"),
		Scrollback: defaultScrollback,
	}
	if cfg.Shell == "" {
		cfg.Shell = defaultShell
	}
	if cfg.StaticDir == "" {
		cfg.StaticDir = defaultStaticDir
	}
	if raw := getenv("BERTH_SCROLLBACK_BYTES"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil {
			return cfg, errors.New("BERTH_SCROLLBACK_BYTES is not an integer")
		}
		if n < 0 || n > maxScrollback {
			return cfg, fmt.Errorf("BERTH_SCROLLBACK_BYTES must be within 0..%d", maxScrollback)
		}
		cfg.Scrollback = n
	}
	return cfg, nil
}
