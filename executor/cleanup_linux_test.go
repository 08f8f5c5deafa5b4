package executor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// assertNothingLeft checks that no mount, process or work dir of the step is left on the host.
func assertNothingLeft(t *testing.T, s *step, marker string) {
	t.Helper()
	dir := filepath.Dir(s.spec.WorkDir)
	if m := mountsUnder(t, dir); len(m) > 0 {
		t.Errorf("mounts left on the host:\n%s", strings.Join(m, "\n"))
	}
	if pids := processesWith(t, marker); len(pids) > 0 {
		t.Errorf("processes left on the host: %v", pids)
	}
	if pids := ownSandboxInits(t); len(pids) > 0 {
		t.Errorf("sandbox inits left on the host: %v", pids)
	}
	if _, err := os.Stat(s.spec.WorkDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work dir left behind: %v", err)
	}
}

func TestCleanupAfterEveryOutcome(t *testing.T) {
	base := newBase(t)
	tests := []struct {
		name    string
		script  string
		user    string
		wantErr bool
		code    int
	}{
		{name: "success", script: "sleep 2718281 & true"},
		{name: "failure", script: "sleep 2718282 & exit 3", code: 3},
		{name: "setup error", script: "true 2718283", user: "ghost", wantErr: true},
	}
	e := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStep(t, []string{base}, tt.script)
			s.spec.User = tt.user
			s.run(context.Background(), e)
			if (s.err != nil) != tt.wantErr || s.res.ExitCode != tt.code {
				t.Fatalf("err %v exit %d, want error %v exit %d", s.err, s.res.ExitCode, tt.wantErr, tt.code)
			}
			assertNothingLeft(t, s, strings.Fields(tt.script)[1])
		})
	}
}

func TestCancelKillsTheStep(t *testing.T) {
	for _, copyMode := range []bool{false, true} {
		t.Run(map[bool]string{false: "overlay", true: "copy"}[copyMode], func(t *testing.T) {
			s := newStep(t, []string{newBase(t)}, "sleep 1618033 & echo ready; sleep 1618033")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() {
				s.run(ctx, New(Options{ForceCopy: copyMode}))
				close(done)
			}()
			waitFor(t, func() bool { return strings.Contains(s.stdout.String(), "ready") })
			// The step's mounts exist only in its own namespace.
			if m := mountsUnder(t, filepath.Dir(s.spec.WorkDir)); len(m) > 0 {
				t.Errorf("the step's mounts are visible on the host:\n%s", strings.Join(m, "\n"))
			}
			cancel()
			<-done
			if !errors.Is(s.err, context.Canceled) {
				t.Errorf("Run after cancel: err %v, want context.Canceled", s.err)
			}
			assertNothingLeft(t, s, "1618033")
		})
	}
}

// waitFor polls cond; the long limit only keeps a broken sandbox from hanging the test run.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met after 30s")
}
