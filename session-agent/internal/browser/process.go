package browser

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"berth/session-agent/internal/agent"
)

// maxLoggedLines caps how much of one helper's output reaches the log. Chromium in a
// container complains about D-Bus and the like; past the cap the output is still read (a
// full pipe would block the helper) but only counted.
const maxLoggedLines = 200

// startChild starts a helper (Xvfb, x11vnc, Chromium) under the agent's reaper with its
// stdout and stderr forwarded to the JSON log, one line per entry.
func startChild(name string, cmd *exec.Cmd) (*agent.Child, error) {
	return startChildFiltered(name, cmd, nil)
}

// startChildFiltered is startChild with known-harmless lines (noise) counted, not logged.
func startChildFiltered(name string, cmd *exec.Cmd, noise func(line []byte) bool) (*agent.Child, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	child, err := agent.StartChild(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go forwardOutput(name, r, noise)
	return child, nil
}

func forwardOutput(name string, r *os.File, noise func([]byte) bool) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 1024)
	logged, dropped, quiet := 0, 0, 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Over-long line: log its start (copied: the next read reuses the buffer), skip the rest.
			line = append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		switch {
		case len(line) == 0:
		case noise != nil && noise(line):
			quiet++
		default:
			if logged < maxLoggedLines {
				logged++
				agent.Log("info", string(trimNewline(line)), map[string]any{"source": name})
			} else {
				dropped++
			}
		}
		if err != nil {
			break
		}
	}
	if dropped > 0 || quiet > 0 {
		agent.Log("info", "output lines not logged", map[string]any{"source": name, "over_cap": dropped, "noise": quiet})
	}
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// stopChild asks a helper to exit with SIGTERM and kills it (and its process group) if it
// has not within grace.
func stopChild(child *agent.Child, grace time.Duration) {
	if child == nil {
		return
	}
	_ = child.Signal(syscall.SIGTERM)
	select {
	case <-child.Done():
	case <-time.After(grace):
		_ = child.SignalGroup(syscall.SIGKILL)
		_ = child.Signal(syscall.SIGKILL)
		<-child.Done()
	}
}

// waitForPath returns once path exists. It watches the directory with inotify rather than
// polling, and gives up when ctx ends or the process that should create it exits.
func waitForPath(ctx context.Context, path string, died <-chan struct{}) error {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: reads go through Go's poller
	defer f.Close()
	if _, err := syscall.InotifyAddWatch(fd, filepath.Dir(path), syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		return err
	}
	events := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				events <- err
				return
			}
			if _, err := os.Stat(path); err == nil {
				events <- nil
				return
			}
		}
	}()
	// The watch is in place: anything created from now on wakes us, so this check cannot miss it.
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	select {
	case err := <-events:
		return err
	case <-died:
		return fmt.Errorf("exited before creating %s", path)
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s: %w", path, ctx.Err())
	}
}

// readLine reads one newline-terminated line (Xvfb's -displayfd answer) before deadline.
func readLine(f *os.File, deadline time.Time) (string, error) {
	_ = f.SetReadDeadline(deadline)
	var line []byte
	buf := make([]byte, 32)
	for len(line) < 64 {
		n, err := f.Read(buf)
		line = append(line, buf[:n]...)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			return string(line[:i]), nil
		}
		if err == io.EOF && len(line) > 0 {
			return string(line), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", errors.New("line too long")
}
