package agent

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestChildrenGetTheirOwnExitStatus(t *testing.T) {
	// Many short-lived children at once: each status must reach its own Child even though
	// one loop reaps them all with wait4(-1).
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			child, err := StartChild(exec.Command("/bin/sh", "-c", "exit "+strconv.Itoa(i)))
			if err != nil {
				t.Error(err)
				return
			}
			if code := child.ExitCode(); code != i {
				t.Errorf("child %d exited %d", i, code)
			}
		}(i)
	}
	wg.Wait()
}

func TestSignalledChildAndSignalAfterExit(t *testing.T) {
	child, err := StartChild(exec.Command("/bin/sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := child.ExitCode(); code != 128+9 {
		t.Fatalf("exit %d, want 137", code)
	}
	if err := child.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal after exit: %v", err)
	}
}

func TestOrphansAreReaped(t *testing.T) {
	if err := setChildSubreaper(); err != nil {
		t.Skip("no PR_SET_CHILD_SUBREAPER:", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 0.2 & echo $!")
	cmd.Stdout = w
	child, err := StartChild(cmd)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, _ := r.Read(buf)
	r.Close()
	orphan := strings.TrimSpace(string(buf[:n]))
	if child.ExitCode() != 0 {
		t.Fatal("parent failed")
	}
	// The sleep was re-parented to us; once it exits it must not stay a zombie.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat("/proc/" + orphan); os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	stat, _ := os.ReadFile("/proc/" + orphan + "/stat")
	t.Fatalf("orphan %s still there: %s", orphan, stat)
}

func TestStartChildScrubsAndChecksStdio(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", `test -z "$BERTH_CALLBACK_TOKEN" && test "$KEEP" = 1`)
	cmd.Env = []string{"BERTH_CALLBACK_TOKEN=secret", "KEEP=1", "PATH=/usr/bin:/bin"}
	child, err := StartChild(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if code := child.ExitCode(); code != 0 {
		t.Fatalf("the child saw BERTH_* (exit %d)", code)
	}
	cmd = exec.Command("/bin/true")
	cmd.Stdout = &strings.Builder{}
	if _, err := StartChild(cmd); err == nil {
		t.Fatal("a non-file stdout was accepted (nothing would ever call Wait to copy it)")
	}
	if _, err := StartChild(exec.Command("/nonexistent")); err == nil {
		t.Fatal("starting a missing binary succeeded")
	}
}
