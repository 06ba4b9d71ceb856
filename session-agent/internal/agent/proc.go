package agent

import (
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	prSetDumpable       = 4  // PR_SET_DUMPABLE
	prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER
)

// setNotDumpable marks the whole process non-dumpable. The user's processes run as our uid;
// without this they could read /proc/1/environ (the callback token) or ptrace the agent.
// Non-dumpable makes both need CAP_SYS_PTRACE, which the container does not have.
func setNotDumpable() error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// setChildSubreaper makes orphaned descendants re-parent to us even when we are not PID 1
// (run on a host, or under an init shim), so the reaper sees them either way.
func setChildSubreaper() error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// ScrubbedEnv is os.Environ() without any BERTH_* variable: the environment for anything the
// agent starts. BERTH_* carries the callback token and session data the user must not see.
func ScrubbedEnv() []string { return scrubEnv(os.Environ()) }

func scrubEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "BERTH_") {
			out = append(out, kv)
		}
	}
	return out
}

// TuneRuntime sets Go runtime limits suited to a small agent that idles most of its life:
// fewer Ps (fewer threads and per-P caches), a lower GC target and a soft memory limit, so
// an idle container stays small. Each setting is skipped when the operator set the matching
// GOMAXPROCS / GOGC / GOMEMLIMIT variable; zero leaves the runtime default.
func TuneRuntime(maxProcs, gcPercent int, memoryLimit int64) {
	if maxProcs > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(maxProcs)
	}
	if gcPercent > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if memoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

// After a burst (a big `cat` through the terminal, a screenshot) the Go heap keeps its
// high-water mark for minutes before the scavenger returns it; with many idle sessions per
// host that is real memory. NoteBurst lets a kind report allocation; once at least
// trimThreshold bytes were noted and trimQuiet passes without more, the agent returns
// free memory to the kernel at once. Cheap: one GC of a small heap, only after bursts.
const (
	trimThreshold = 1 << 20
	trimQuiet     = 5 * time.Second
)

var trimmer struct {
	mu    sync.Mutex
	noted int
	timer *time.Timer
}

// NoteBurst records n bytes allocated for transient work (see above).
func NoteBurst(n int) {
	trimmer.mu.Lock()
	defer trimmer.mu.Unlock()
	trimmer.noted += n
	if trimmer.noted < trimThreshold {
		return
	}
	if trimmer.timer == nil {
		trimmer.timer = time.AfterFunc(trimQuiet, trimMemory)
	} else {
		trimmer.timer.Reset(trimQuiet) // debounce: trim once the burst is over
	}
}

func trimMemory() {
	trimmer.mu.Lock()
	trimmer.noted = 0
	trimmer.mu.Unlock()
	debug.FreeOSMemory()
}
