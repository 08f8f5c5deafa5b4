package executor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestChrootGivesTheSandboxUpper: under chroot isolation a step's changes are the ones the
// namespaced sandbox records, with the mounts' content and the system files left out.
func TestChrootGivesTheSandboxUpper(t *testing.T) {
	unguardAfter(t)
	base := newBase(t)
	layer := writeTree(t, map[string]string{
		"a/file": "x", "a/keep": "k", "d/x": "x", "d/y": "y", "e/z": "z", "f/g/h": "h",
		"mod/file": "old\n", "chmod/file": "c", "link/target": "t", "ren/dir/x": "x",
		"typ/file2dir": "f", "typ/dir2file/x": "x", "same/file": "same\n", "untouched/file": "u",
	})
	cache := t.TempDir()
	ro := writeTree(t, map[string]string{"in-ro": "read only\n"})
	script := equivalenceScript + `
echo scratch > /tmp/t/f
cat /ro/in-ro > /from-ro
echo cached >> /cache/log
echo junk >> /etc/hosts
ls /dev/null /dev/zero /dev/urandom >/dev/null
stat -c '%a %u %g' /run/secrets/s > /secret-meta; cat /run/secrets/s > /secret-copy
`
	var uppers [2]string
	for i, iso := range []Isolation{IsolationSandbox, IsolationChroot} {
		s := newStep(t, []string{layer, base}, script)
		s.spec.Network = NetworkHost
		s.spec.Mounts = []Mount{
			{Type: MountTmpfs, Target: "/tmp/t"},
			{Type: MountBind, Source: ro, Target: "/ro", ReadOnly: true},
			{Type: MountBind, Source: cache, Target: "/cache"},
			{Type: MountFile, Target: "/run/secrets/s", Data: []byte("the secret"), Mode: 0o440, UID: 1000, GID: 50},
		}
		s.mustRun(t, New(Options{Isolation: iso}))
		for f, want := range map[string]string{"secret-meta": "440 1000 50\n", "secret-copy": "the secret"} {
			if b, err := os.ReadFile(filepath.Join(s.spec.UpperDir, f)); string(b) != want {
				t.Errorf("%s: /%s holds %q (%v), want %q", iso, f, b, err, want)
			}
		}
		uppers[i] = listUpper(t, s.spec.UpperDir)
	}
	if uppers[0] != uppers[1] {
		t.Errorf("sandbox and chroot isolation differ:\nsandbox:\n%s\nchroot:\n%s", uppers[0], uppers[1])
	}
	if b, err := os.ReadFile(filepath.Join(cache, "log")); err != nil || string(b) != "cached\ncached\n" {
		t.Errorf("the cache holds %q (%v), want both steps' lines", b, err)
	}
	for _, absent := range []string{"dev", "etc", "tmp", "ro", "cache", "run"} {
		if strings.Contains("\n"+uppers[1], "\n"+absent) {
			t.Errorf("the upper holds %s:\n%s", absent, uppers[1])
		}
	}
}

// TestChrootStepStaysInside: the step cannot chroot out, its leftovers die with it, and the
// symlinks it leaves where its mounts were do not lead strata to host files.
func TestChrootStepStaysInside(t *testing.T) {
	unguardAfter(t)
	base := newBase(t)
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "hosts"), []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(victim, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	marker := "strata-chroot-leftover-" + filepath.Base(t.TempDir())
	script := `mkdir -p /x/bin && cp /bin/busybox /x/bin/ && if chroot /x /bin/busybox true 2>/dev/null; then echo escaped; else echo refused; fi
rm -rf /etc /m && ln -s ` + victim + ` /etc && ln -s ` + victim + ` /m
(sh -c "sleep 60; : ` + marker + `") &
true`
	s := newStep(t, []string{base}, script)
	s.spec.Network = NetworkHost
	s.spec.Mounts = []Mount{{Type: MountBind, Source: cache, Target: "/m/c"}}
	s.mustRun(t, New(Options{Isolation: IsolationChroot}))
	if s.out() != "refused" {
		t.Errorf("chroot inside the step: %q, want refused", s.out())
	}
	if b, _ := os.ReadFile(filepath.Join(victim, "hosts")); string(b) != "precious\n" {
		t.Errorf("a host file behind the step's symlink changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(victim, "c")); err != nil {
		t.Errorf("a host directory behind the step's symlink moved: %v", err)
	}
	if fi, err := os.Stat(cache); err != nil || !fi.IsDir() {
		t.Errorf("the cache directory is gone: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(processesWith(t, marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the step's background process outlived it: %v", processesWith(t, marker))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestChrootStepCannotOutliveItself: a step cannot kill its own init (which would leave
// processes the init never reaps); none of its processes may live on once the step is done
// (they could hold a cache directory as it moves back to the store, outside any chroot),
// and the /dev of a step is usable by any user.
func TestChrootStepCannotOutliveItself(t *testing.T) {
	unguardAfter(t)
	base := newBase(t)
	marker := "strata-chroot-orphan-" + filepath.Base(t.TempDir())
	s := newStep(t, []string{base}, `ls -l /dev/null /dev/shm -d | cut -c1-10 >&2
(setsid sh -c "sleep 60; : `+marker+`" </dev/null >/dev/null 2>&1 &)
sleep 0.2; if kill -9 $PPID 2>/dev/null; then echo init-killed; else echo init-safe; fi`)
	s.spec.Network = NetworkHost
	s.spec.Mounts = []Mount{{Type: MountBind, Source: t.TempDir(), Target: "/c"}}
	// As in an unprivileged container: no cgroup to kill the step's processes with.
	e := New(Options{Isolation: IsolationChroot})
	e.cgroupsOnce.Do(func() {})
	s.run(context.Background(), e)
	if s.err != nil || s.out() != "init-safe" {
		t.Errorf("the step's kill of its init: %q (%v), want it refused", s.out(), s.err)
	}
	if left := processesWith(t, marker); len(left) > 0 {
		t.Errorf("processes of the step outlived it: %v", left)
	}
	if got := s.stderr.String(); !strings.Contains(got, "crw-rw-rw-") || !strings.Contains(got, "drwxrwxrwt") {
		t.Errorf("/dev/null and /dev/shm are\n%s\nwant crw-rw-rw- and drwxrwxrwt", got)
	}
}

// TestChrootStepsTakeTurns: two chroot steps never run at once (they share the container's
// network namespace, where one could pass the other a descriptor of its root over an
// abstract unix socket): the second one's command starts only when the first is done.
func TestChrootStepsTakeTurns(t *testing.T) {
	unguardAfter(t)
	base := newBase(t)
	e := New(Options{Isolation: IsolationChroot})
	var ends [2]time.Time
	done := make(chan int)
	for i := range 2 {
		go func() {
			if i == 1 {
				time.Sleep(100 * time.Millisecond)
			}
			s := newStep(t, []string{base}, "sleep 0.5")
			s.spec.Network = NetworkHost
			s.run(context.Background(), e)
			if s.err != nil || s.res.ExitCode != 0 {
				t.Errorf("step %d: %v, exit %d", i, s.err, s.res.ExitCode)
			}
			ends[i] = time.Now()
			done <- i
		}()
	}
	<-done
	<-done
	if gap := ends[1].Sub(ends[0]); gap < 400*time.Millisecond {
		t.Errorf("the second step ended %v after the first: it ran alongside", gap)
	}
}

// hiderSource outlives its step three ways once the step kills its own init: a thread group
// whose leader thread exits ("thread"), a non-dumpable process ("nodump": strata without
// CAP_SYS_PTRACE cannot read its root), a process that forks and exits without end ("hop").
// Each keeps argv[2], the test's marker, in its command line.
const hiderSource = `#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
static void *sleeper(void *a) { (void)a; for (;;) sleep(1); return 0; }
int main(int argc, char **argv) {
	if (argc < 3) return 2;
	if (fork()) return 0;
	setsid();
	if (fork()) return 0;
	if (!strcmp(argv[1], "thread")) {
		pthread_t t;
		pthread_create(&t, 0, sleeper, 0);
		syscall(SYS_exit, 0);
	}
	if (!strcmp(argv[1], "nodump")) {
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		for (;;) sleep(1);
	}
	for (;;) {
		if (fork()) _exit(0);
	}
}
`

// TestChrootStepCannotHide: the step can signal neither strata nor its init, and the
// processes it leaves die with the step however they hide, where strata has no cgroup to
// kill them with (an unprivileged container).
func TestChrootStepCannotHide(t *testing.T) {
	unguardAfter(t)
	base := newBase(t)
	hider := buildStatic(t, "hider", hiderSource)
	for _, mode := range []string{"thread", "nodump", "hop"} {
		t.Run(mode, func(t *testing.T) {
			marker := "strata-chroot-hider-" + mode + "-" + filepath.Base(t.TempDir())
			s := newStep(t, []string{hider, base}, "hider "+mode+" "+marker+"; sleep 0.3; kill -9 $PPID "+strconv.Itoa(os.Getpid())+" 2>/dev/null || echo refused")
			s.spec.Network = NetworkHost
			e := New(Options{Isolation: IsolationChroot})
			e.cgroupsOnce.Do(func() {})
			s.run(context.Background(), e)
			if s.err != nil || s.out() != "refused" {
				t.Errorf("the step's kill of its init and strata: %q (%v), want both refused", s.out(), s.err)
			}
			if left := survivors(marker); len(left) > 0 {
				for range 50 {
					for _, pid := range survivors(marker) {
						unix.Kill(pid, unix.SIGKILL)
					}
				}
				t.Errorf("processes of the step outlived it: %v", left)
			}
		})
	}
}

// survivors looks for marker in the command line of every thread on the host, a few times
// over 200 ms: a thread group whose leader exited shows it in its other threads only, and a
// process that forks and exits without end is a new PID at every look.
func survivors(marker string) []int {
	var found []int
	for range 20 {
		tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/cmdline")
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil || !strings.Contains(string(b), marker) {
				continue
			}
			if pid, err := strconv.Atoi(strings.Split(f, "/")[2]); err == nil {
				found = append(found, pid)
			}
		}
		if found != nil {
			return found
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// unguardAfter gives the test process its real uid back when t ends: running a chroot step
// set it apart from the steps' (guardFromSteps), which tests of other tools do not expect.
func unguardAfter(t *testing.T) {
	t.Cleanup(func() {
		if err := unix.Setresuid(0, 0, 0); err != nil {
			t.Errorf("restoring the real uid: %v", err)
		}
	})
}

// sigioSource tries what would let a root step signal the process argv[1] names despite
// the guard: asking for SIGKILL to be sent to it whenever its output pipe drains (F_SETSIG,
// F_SETOWN, O_ASYNC: checked against the setter's effective uid alone), also with high bits
// set in the 64-bit command, and taking strata's own real uid (GuardUID, argv[2]). It
// prints "refused" when each is refused.
const sigioSource = `#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
	if (argc < 3) return 2;
	int guard = atoi(argv[2]);
	if (setresuid(guard, -1, -1) == 0 || syscall(SYS_setresuid, 0x100000000L | guard, -1L, -1L) == 0 ||
	    setuid(guard) == 0 || setreuid(-1, guard) == 0) { printf("took the guard uid\n"); return 0; }
	if (syscall(SYS_fcntl, 1, F_SETSIG | 0x100000000L, SIGKILL) == 0) { printf("set with high bits\n"); return 0; }
	if (fcntl(1, F_SETSIG, SIGKILL) != 0) { printf("refused\n"); return 0; }
	fcntl(1, F_SETOWN, atoi(argv[1]));
	fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_ASYNC);
	for (int i = 0; i < 50; i++) { printf("x\n"); fflush(stdout); usleep(10000); }
	printf("armed\n");
	return 0;
}
`

// TestChrootStepCannotSignalThroughItsOutput: a step cannot have the kernel signal strata
// for it through its output pipe, nor take strata's real uid to signal it.
func TestChrootStepCannotSignalThroughItsOutput(t *testing.T) {
	unguardAfter(t)
	lower := buildStatic(t, "sigio", sigioSource)
	s := newStep(t, []string{lower, newBase(t)}, "sigio "+strconv.Itoa(os.Getpid())+" "+strconv.Itoa(GuardUID))
	s.spec.Network = NetworkHost
	s.mustRun(t, New(Options{Isolation: IsolationChroot}))
	if s.out() != "refused" {
		t.Errorf("output %q, want F_SETSIG refused", s.out())
	}
}
