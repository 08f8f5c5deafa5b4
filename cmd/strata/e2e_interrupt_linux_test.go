package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sleeperCmdline is the command line of the interrupted RUN's sleep, unique to this test.
const sleeperCmdline = "sleep\x003117\x00"

// testInterrupt sends sig to a build while its RUN sleeps. On SIGINT strata must exit non-zero
// with one error line; on SIGKILL it has no say, and the sandbox must die with it (its init's
// parent-death signal). Either way the RUN is killed, nothing stays mounted, and the store is
// usable by the next build.
func (e *e2eEnv) testInterrupt(t *testing.T, sig syscall.Signal) {
	store := filepath.Join(t.TempDir(), "store")
	ctxDir := e.context(t, "interrupt", nil)
	mounts := mountPoints(t)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.strata, "build", "--progress", "plain", "--root", store,
		"--build-arg", "BASE="+e.base("busybox:latest"), ctxDir)
	cmd.Env = append(cleanEnv(), "TMPDIR="+e.tmp)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(stderrPipe)
	stderr := waitForLine(t, br, "sleeper started")
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	r := result{stdout: stdout.String(), stderr: stderr + string(rest), err: cmd.Wait()}
	if sig == syscall.SIGKILL {
		if r.err == nil {
			t.Fatal("strata exited 0 after SIGKILL")
		}
		// The kernel delivers the parent-death signal as the builder dies; give the
		// sandbox's processes a moment to go before looking.
		waitGone(sleeperCmdline)
	} else {
		checkFailure(t, r, []string{`.`})
	}
	e.checkLeftovers(t, mounts)
	if pids := processesWithCmdline(sleeperCmdline); len(pids) > 0 {
		t.Errorf("the interrupted RUN's sleep is still running: pids %v", pids)
		killAll(pids)
	}
	e.checkStoreUsable(t, store)
}

// waitGone polls for up to 10 seconds until no process has cmdline.
func waitGone(cmdline string) {
	for i := 0; i < 100 && len(processesWithCmdline(cmdline)) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForLine reads r until a line contains marker (and is not the step header that echoes it)
// and returns what it read; the test fails if r ends first.
func waitForLine(t *testing.T, r *bufio.Reader, marker string) string {
	t.Helper()
	var seen strings.Builder
	for {
		line, err := r.ReadString('\n')
		seen.WriteString(line)
		if strings.Contains(line, marker) && !strings.Contains(line, "echo") {
			return seen.String()
		}
		if err != nil {
			t.Fatalf("the build ended before printing %q:\n%s", marker, seen.String())
		}
	}
}

// processesWithCmdline lists the pids whose /proc/<pid>/cmdline is exactly cmdline.
func processesWithCmdline(cmdline string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, d := range entries {
		if b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil && string(b) == cmdline {
			pids = append(pids, d.Name())
		}
	}
	return pids
}

// killAll kills leftover processes so that one failure does not outlive the test.
func killAll(pids []string) {
	for _, p := range pids {
		if pid, err := strconv.Atoi(p); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
