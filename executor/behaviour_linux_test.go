package executor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestExitCodes(t *testing.T) {
	base := newBase(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		signal syscall.Signal
	}{
		{name: "success", args: ShellArgs(nil, "exit 0"), code: 0},
		{name: "failure", args: ShellArgs(nil, "exit 1"), code: 1},
		{name: "shell command not found", args: ShellArgs(nil, "no-such-command"), code: 127},
		{name: "exec form not found", args: []string{"no-such-command"}, code: 127},
		{name: "exec form not executable", args: []string{"/etc/passwd"}, code: 126},
		{name: "killed by a signal", args: ShellArgs(nil, "kill -9 $$"), code: 137, signal: syscall.SIGKILL},
		{name: "custom shell", args: ShellArgs([]string{"/bin/sh", "-ec"}, "false; exit 0"), code: 1},
	}
	e := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStep(t, []string{base}, "")
			s.spec.Args = tt.args
			s.run(context.Background(), e)
			if s.err != nil {
				t.Fatalf("Run: %v", s.err)
			}
			if s.res.ExitCode != tt.code || s.res.Signal != tt.signal {
				t.Errorf("exit %d signal %v, want %d signal %v; stderr: %s", s.res.ExitCode, s.res.Signal, tt.code, tt.signal, s.stderr.String())
			}
		})
	}
}

func TestEnvWorkdirUser(t *testing.T) {
	base := newBase(t)
	tests := []struct {
		name   string
		modify func(*Spec)
		script string
		want   string
	}{
		{name: "env", modify: func(s *Spec) { s.Env = []string{"FOO=bar baz", "PATH=/bin:/usr/bin"} },
			script: `echo "$FOO|$PATH|$HOME"`, want: "bar baz|/bin:/usr/bin|/root"},
		{name: "default env", modify: func(s *Spec) {},
			script: `echo "$PATH|$HOME"`, want: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root"},
		{name: "missing workdir created", modify: func(s *Spec) { s.Cwd = "/srv/app/src" },
			script: "pwd; stat -c '%U %a' .", want: "/srv/app/src\nroot 755"},
		{name: "uid:gid", modify: func(s *Spec) { s.User = "1000:1000" },
			script: "id -u; id -g; id -G", want: "1000\n1000\n1000"},
		{name: "name with supplementary group", modify: func(s *Spec) { s.User = "app" },
			script: `id -u; id -G; echo $HOME`, want: "1000\n1000 50\n/home/app"},
		{name: "uid without passwd entry", modify: func(s *Spec) { s.User = "4242" },
			script: "id -u; id -g", want: "4242\n0"},
		{name: "name:group", modify: func(s *Spec) { s.User = "app:nogroup" },
			script: "id -u; id -G", want: "1000\n65534"},
		{name: "user cannot write root's files", modify: func(s *Spec) { s.User = "nobody" },
			script: "touch /etc/x 2>/dev/null && echo wrote || echo denied", want: "denied"},
	}
	e := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStep(t, []string{base}, tt.script)
			tt.modify(&s.spec)
			if got := s.mustRun(t, e).out(); got != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestUnknownUserIsAnError(t *testing.T) {
	s := newStep(t, []string{newBase(t)}, "true")
	s.spec.User = "ghost"
	s.run(context.Background(), New(Options{}))
	if s.err == nil || !strings.Contains(s.err.Error(), "unable to find user ghost") {
		t.Errorf("err = %v, want one naming the missing user", s.err)
	}
}

func TestMounts(t *testing.T) {
	base := newBase(t)
	cache := t.TempDir()
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStep(t, []string{base}, `
		echo cached > /root/.cache/x
		cat /run/secrets/token; echo
		echo no 2>/dev/null > /run/secrets/token || echo secret read-only
		echo scratch > /tmp/t/file && echo tmpfs writable`)
	s.spec.Mounts = []Mount{
		{Type: MountBind, Source: cache, Target: "/root/.cache"},
		{Type: MountBind, Source: secret, Target: "/run/secrets/token", ReadOnly: true},
		{Type: MountTmpfs, Target: "/tmp/t", Size: 1 << 20},
	}
	got := s.mustRun(t, New(Options{})).out()
	if want := "s3cret\nsecret read-only\ntmpfs writable"; got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if data, _ := os.ReadFile(filepath.Join(cache, "x")); string(data) != "cached\n" {
		t.Errorf("the cache mount did not reach the host: %q", data)
	}
	// Mount points and what was written through them stay out of the layer.
	if got := listUpper(t, s.spec.UpperDir); got != "" {
		t.Errorf("upper dir holds mount points:\n%s", got)
	}
}

func TestUpperHoldsExactlyTheChanges(t *testing.T) {
	base := newBase(t)
	layer := writeTree(t, map[string]string{
		"a/file": "x", "a/keep": "k", "d/x": "x", "d/y": "y", "e/z": "z", "etc/motd": "hi",
	})
	s := newStep(t, []string{layer, base}, `rm a/file && rm -rf d && mkdir d && touch d/new &&
		rm -rf e && echo hi > newfile && cat /etc/motd /etc/passwd >/dev/null`)
	s.spec.Cwd = "/"
	s.mustRun(t, New(Options{}))
	want := strings.Join([]string{
		"a/ dir 755",
		"a/file whiteout",
		"d/ dir 755 opaque",
		"d/new file 644",
		"e whiteout",
		`newfile file 644 "hi\n"`,
	}, "\n")
	if got := listUpper(t, s.spec.UpperDir); got != want {
		t.Errorf("upper dir:\n%s\nwant:\n%s", got, want)
	}
}

func TestNothingChangedGivesEmptyUpper(t *testing.T) {
	base := newBase(t)
	// The base lacks /etc/hosts and /etc/hostname, and the layer makes /etc/resolv.conf a
	// symlink to a missing file, as systemd-resolved images do: the mount points made for them
	// (the link's target and its missing parents) must not end up in the layer, nor a copy-up
	// of /etc.
	layer := filepath.Join(t.TempDir(), "layer")
	if err := os.MkdirAll(filepath.Join(layer, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(layer, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	for _, copyMode := range []bool{false, true} {
		s := newStep(t, []string{layer, base}, "cat /etc/hosts /etc/resolv.conf /etc/hostname >/dev/null")
		s.mustRun(t, New(Options{ForceCopy: copyMode}))
		if got := listUpper(t, s.spec.UpperDir); got != "" {
			t.Errorf("copy=%v: upper dir of a step that changed nothing:\n%s", copyMode, got)
		}
	}
}

func TestBackgroundProcessIsKilled(t *testing.T) {
	s := newStep(t, []string{newBase(t)}, "sleep 3141592 & echo started")
	if got := s.mustRun(t, New(Options{})).out(); got != "started" {
		t.Fatalf("output %q", got)
	}
	if pids := processesWith(t, "3141592"); len(pids) > 0 {
		t.Errorf("background process still running after the step: pids %v", pids)
	}
}

func TestInitReapsOrphans(t *testing.T) {
	// The subshell exits at once, so its background child is reparented to PID 1; a PID 1
	// that does not reap would leave it a zombie for good. The orphan's own pid is watched
	// until it is gone: a zombie keeps its /proc entry.
	script := `orphan=$( (sleep 0.2 >/dev/null & echo $!) ); for i in $(seq 300); do
		[ -e /proc/$orphan ] || { echo reaped; exit 0; }; sleep 0.1
	done; echo zombie; grep State /proc/$orphan/status`
	if got := newStep(t, []string{newBase(t)}, script).mustRun(t, New(Options{})).out(); got != "reaped" {
		t.Errorf("output %q, want reaped", got)
	}
}

func TestInitForwardsSignals(t *testing.T) {
	s := newStep(t, []string{newBase(t)}, `trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done`)
	done := make(chan struct{})
	go func() {
		s.run(context.Background(), New(Options{}))
		close(done)
	}()
	waitFor(t, func() bool { return strings.Contains(s.stdout.String(), "ready") })
	inits := ownSandboxInits(t)
	if len(inits) != 1 {
		t.Fatalf("found sandbox inits %v, want exactly one", inits)
	}
	pid, _ := strconv.Atoi(inits[0])
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-done
	if s.err != nil || s.res.ExitCode != 0 || s.out() != "ready\ngot TERM" {
		t.Errorf("err %v exit %d output %q, want the trap to run", s.err, s.res.ExitCode, s.out())
	}
}

func TestScratchWithoutLowers(t *testing.T) {
	needRoot(t)
	for _, copyMode := range []bool{false, true} {
		// Nothing to run on scratch: the step fails like a shell would, and the mount points
		// it needed (/proc, /dev, /sys, /etc/...) leave no trace.
		s := newStep(t, nil, "")
		s.spec.Args = []string{"/bin/sh"}
		var warnings strings.Builder
		s.run(context.Background(), New(Options{ForceCopy: copyMode, Warnings: &warnings}))
		if s.err != nil || s.res.ExitCode != 127 {
			t.Fatalf("copy=%v: err %v exit %d, want exit 127", copyMode, s.err, s.res.ExitCode)
		}
		if !strings.Contains(s.stderr.String(), "/bin/sh") {
			t.Errorf("copy=%v: stderr %q does not name the missing command", copyMode, s.stderr.String())
		}
		if got := listUpper(t, s.spec.UpperDir); got != "" {
			t.Errorf("copy=%v: upper dir:\n%s", copyMode, got)
		}
		if warnings.Len() > 0 {
			t.Errorf("copy=%v: unexpected warning %q", copyMode, warnings.String())
		}
	}
}

func TestSetupErrorsAreStructured(t *testing.T) {
	s := newStep(t, []string{newBase(t)}, "true")
	missing := filepath.Join(t.TempDir(), "missing")
	s.spec.Mounts = []Mount{{Type: MountBind, Source: missing, Target: "/mnt"}}
	s.run(context.Background(), New(Options{}))
	var se *SetupError
	if !errors.As(s.err, &se) || !errors.Is(s.err, syscall.ENOENT) || se.Path != missing {
		t.Errorf("err = %#v, want a SetupError for %s with ENOENT", s.err, missing)
	}
	if got := listUpper(t, s.spec.UpperDir); got != "" {
		t.Errorf("upper dir after a failed setup:\n%s", got)
	}
}
