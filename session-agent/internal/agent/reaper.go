package agent

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
)

// The agent is PID 1 (and a child subreaper when it is not), so orphaned processes are
// re-parented to it and must be reaped. Reaping means wait4(-1), which would also collect
// the exit status of a child the kind is waiting for: exec.Cmd.Wait would then fail with
// ECHILD, or worse, the status would be lost. So every child the agent or a kind starts goes
// through StartChild, and this file owns all waiting: one loop reaps everything and hands
// the status of registered children to their Child.
//
// The lock is held across fork+register and across each reaping pass, so a child that exits
// immediately cannot be reaped before it is registered, and Child.Signal cannot hit a pid
// that was reaped (and maybe reused) a moment ago.
var reaper = struct {
	once     sync.Once
	mu       sync.Mutex
	children map[int]*Child
	orphans  int
}{children: map[int]*Child{}}

// Child is a process started with StartChild.
type Child struct {
	Pid    int
	done   chan struct{}
	status syscall.WaitStatus // valid once done is closed
}

// StartChild starts cmd and registers it with the agent's reaper. Use it instead of
// cmd.Start, and never call cmd.Wait (the reaper collects the status: use Done/Wait here).
// Because nothing calls cmd.Wait, stdio must be nil or *os.File (use os.Pipe to capture
// output), and cmd must not come from exec.CommandContext. cmd.Env defaults to
// ScrubbedEnv(), and BERTH_* entries are removed from an explicit cmd.Env too.
func StartChild(cmd *exec.Cmd) (*Child, error) {
	for _, stream := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		if stream == nil {
			continue
		}
		if _, ok := stream.(*os.File); !ok {
			return nil, errors.New("agent.StartChild: stdin, stdout and stderr must be nil or *os.File")
		}
	}
	if cmd.Env == nil {
		cmd.Env = ScrubbedEnv()
	} else {
		cmd.Env = scrubEnv(cmd.Env)
	}
	startReaper()

	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{Pid: cmd.Process.Pid, done: make(chan struct{})}
	reaper.children[c.Pid] = c
	return c, nil
}

// Done is closed once the child has exited and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Wait blocks until the child has exited and returns its wait status.
func (c *Child) Wait() syscall.WaitStatus {
	<-c.done
	return c.status
}

// ExitCode blocks until the child has exited and returns its code in the shell's
// convention: killed by signal N reads as 128+N.
func (c *Child) ExitCode() int {
	ws := c.Wait()
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Signal sends sig to the child; after it has been reaped it returns os.ErrProcessDone
// instead of signalling whatever process now has that pid.
func (c *Child) Signal(sig syscall.Signal) error {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	select {
	case <-c.done:
		return os.ErrProcessDone
	default:
		return syscall.Kill(c.Pid, sig)
	}
}

// SignalGroup sends sig to the process group the child leads (it must have been started with
// Setsid or Setpgid). It works after the leader exited too, to reach the jobs it left behind:
// the kernel does not reuse a pid while it still names a process group.
func (c *Child) SignalGroup(sig syscall.Signal) error {
	return syscall.Kill(-c.Pid, sig)
}

func startReaper() {
	reaper.once.Do(func() {
		sigs := make(chan os.Signal, 1) // SIGCHLDs coalesce; one pending wake-up is enough
		signal.Notify(sigs, syscall.SIGCHLD)
		go func() {
			for range sigs {
				reapAll()
			}
		}()
		reapAll() // orphans that exited before we listened
	})
}

// reapAll collects every exited child without blocking.
func reapAll() {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children at all; 0: none exited yet
			return
		}
		if c, ok := reaper.children[pid]; ok {
			delete(reaper.children, pid)
			c.status = ws
			close(c.done)
		} else {
			reaper.orphans++ // re-parented to us: reaping it was the point
		}
	}
}
