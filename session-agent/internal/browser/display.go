package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"berth/session-agent/internal/agent"
)

// display is the virtual screen of a headful session: Xvfb, and x11vnc sharing it.
type display struct {
	name   string // ":0"
	xvfb   *agent.Child
	x11vnc *agent.Child
	socket string // x11vnc's unix socket
}

// startXvfb starts the X server and returns once it accepts connections (Xvfb writes the
// display number to -displayfd when ready, so there is nothing to poll).
//
// -nolisten tcp -nolisten local leaves only the socket in /tmp/.X11-unix: with host
// networking the abstract-namespace socket would be reachable from every container on the
// host. /tmp is the container's own tmpfs, so the display is private.
func startXvfb(ctx context.Context, vp Viewport) (*display, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	screen := fmt.Sprintf("%dx%dx24", vp.Width, vp.Height)
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", screen,
		"-nolisten", "tcp", "-nolisten", "local", "-noreset", "-dpi", "96",
		// Chromium draws in software (--disable-gpu); without GLX, Xvfb does not load Mesa
		// and LLVM at all.
		"-extension", "GLX")
	cmd.ExtraFiles = []*os.File{w}
	child, err := startChild("xvfb", cmd)
	w.Close()
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	num, err := readLine(r, deadline)
	if _, convErr := strconv.Atoi(num); err != nil || convErr != nil {
		stopChild(child, 0)
		return nil, fmt.Errorf("Xvfb did not start (display %q, %v)", num, err)
	}
	return &display{name: ":" + num, xvfb: child}, nil
}

// startVNC starts x11vnc on a unix socket only. -rfbport 0 disables its IPv4 listener, but
// Debian's x11vnc still opens [::]:5900 unless -rfbportv6 -1: with host networking that
// port would be reachable by anything on the host, without the session secret.
func (d *display) startVNC(socket string) error {
	d.socket = socket
	_ = os.Remove(socket)
	cmd := exec.Command("x11vnc",
		"-display", d.name,
		"-unixsock", socket, "-rfbport", "0", "-rfbportv6", "-1",
		"-shared", "-forever", // many viewers, and survive each one leaving
		"-nopw", "-norc", "-noremote", "-nocmds", // no password file, rc file or remote control
		"-nolookup", "-noxrecord", "-nowireframe", "-xkb",
		"-quiet")
	cmd.Env = append(agent.ScrubbedEnv(), "DISPLAY="+d.name)
	child, err := startChild("x11vnc", cmd)
	if err != nil {
		return err
	}
	d.x11vnc = child
	return nil
}

// waitVNC returns once x11vnc's socket exists.
func (d *display) waitVNC(ctx context.Context) error {
	if err := waitForPath(ctx, d.socket, d.x11vnc.Done()); err != nil {
		return fmt.Errorf("x11vnc: %w", err)
	}
	return nil
}

func (d *display) stop(grace time.Duration) {
	stopChild(d.x11vnc, grace)
	stopChild(d.xvfb, grace)
}
