package executor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// buildStatic compiles a C helper into a lower at usr/local/bin/name and returns the lower,
// skipping the test where gcc or a static libc is missing.
func buildStatic(t *testing.T, name, source string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("needs gcc to build a static helper")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, name+".c")
	if err := os.WriteFile(src, []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(dir, "layer")
	if err := os.MkdirAll(filepath.Join(layer, "usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-static", "-O", "-o", filepath.Join(layer, "usr/local/bin", name), src).CombinedOutput(); err != nil {
		t.Skipf("cannot build a static helper (libc6-dev missing?): %v\n%s", err, out)
	}
	return layer
}

func TestInheritedFDsDoNotReachTheStep(t *testing.T) {
	base := newBase(t)
	// Opened without O_CLOEXEC, as a descriptor strata itself inherited from its parent.
	fd, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// The shell's own descriptors above stdio: none, neither the init's nor strata's.
	script := `for fd in $(seq 3 1023); do [ -e /proc/$$/fd/$fd ] && echo $fd; done; true`
	if got := newStep(t, []string{base}, script).mustRun(t, New(Options{})).out(); got != "" {
		t.Errorf("descriptors open in the step beyond stdio: %s (the host's was %d)", got, fd)
	}
}

// probeSource tries every way a root step without CAP_SYS_PTRACE could take over the init
// (PID 1, which keeps more privileges than the step while it sets up) and prints each that
// works; "checked N" ends the list, N being the init's threads it tried.
const probeSource = `#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <unistd.h>
static void try_open(const char *p, int flags) {
	int fd = open(p, flags);
	if (fd >= 0) { printf("opened %s\n", p); close(fd); }
}
int main(void) {
	char p[300];
	int n = 0;
	DIR *d = opendir("/proc/1/task");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.') continue;
		n++;
		if (ptrace(PTRACE_SEIZE, atoi(e->d_name), 0, 0) == 0) printf("seized thread %s\n", e->d_name);
		snprintf(p, sizeof p, "/proc/1/task/%s/mem", e->d_name);
		try_open(p, O_RDWR);
	}
	try_open("/proc/1/mem", O_RDWR);
	try_open("/proc/1/exe", O_RDONLY);
	d = opendir("/proc/1/fd");
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.') continue;
		snprintf(p, sizeof p, "/proc/1/fd/%s", e->d_name);
		try_open(p, O_WRONLY);
	}
	printf("checked %d\n", n);
	return 0;
}
`

func TestInitCannotBeTakenOver(t *testing.T) {
	base := newBase(t)
	layer := buildStatic(t, "probe", probeSource)
	got := newStep(t, []string{layer, base}, "probe").mustRun(t, New(Options{})).out()
	if !strings.HasPrefix(got, "checked ") || got == "checked 0" {
		t.Errorf("the step reached into the sandbox init:\n%s", got)
	}
}

func TestHostDevicesUnreachable(t *testing.T) {
	base := newBase(t)
	// 1:11 is /dev/kmsg. Opening it writes nothing; being able to is the hole.
	script := `mknod /dev/kmsg2 c 1 11 && mknod /kmsg2 c 1 11 || exit 1
for f in /dev/kmsg2 /kmsg2; do
	if (: > $f) 2>/dev/null; then echo "$f opened"; else echo "$f refused"; fi
done
echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 3 /dev/urandom | wc -c`
	for _, copyMode := range []bool{false, true} {
		s := newStep(t, []string{base}, script)
		got := s.mustRun(t, New(Options{ForceCopy: copyMode})).out()
		if want := "/dev/kmsg2 refused\n/kmsg2 refused\n3\n3"; got != want {
			t.Errorf("copy=%v: output:\n%s\nwant:\n%s", copyMode, got, want)
		}
		// mknod still works for the layer: Docker's builds can make device nodes.
		if got, want := listUpper(t, s.spec.UpperDir), "kmsg2 mode 20644 rdev 267"; got != want {
			t.Errorf("copy=%v: upper dir:\n%s\nwant:\n%s", copyMode, got, want)
		}
	}
}

func TestStubCleanupDoesNotFollowSymlinks(t *testing.T) {
	base := newBase(t)
	for _, copyMode := range []bool{false, true} {
		victim := t.TempDir()
		if err := os.MkdirAll(filepath.Join(victim, "b/c"), 0o755); err != nil {
			t.Fatal(err)
		}
		// The mount point /a/b/c is made for the run; the step swaps /a for a symlink to a
		// host directory that has b/c too, hoping the host removes that in cleaning up.
		s := newStep(t, []string{base}, "mv /a /a2 && ln -s "+victim+" /a")
		s.spec.Mounts = []Mount{{Type: MountTmpfs, Target: "/a/b/c"}}
		s.mustRun(t, New(Options{ForceCopy: copyMode}))
		if _, err := os.Stat(filepath.Join(victim, "b/c")); err != nil {
			t.Errorf("copy=%v: the host directory behind the symlink was touched: %v", copyMode, err)
		}
		if got := listUpper(t, s.spec.UpperDir); !strings.Contains(got, "a symlink -> "+victim) {
			t.Errorf("copy=%v: upper dir lacks the step's symlink:\n%s", copyMode, got)
		}
	}
}

func TestSystemDirSymlinksAreRefused(t *testing.T) {
	base := newBase(t)
	for _, dir := range []string{"proc", "sys", "dev"} {
		t.Run(dir, func(t *testing.T) {
			// An absolute link resolves on the host before pivot_root; masking /proc/kcore
			// through it would miss the sandbox's /proc.
			layer := writeTree(t, map[string]string{"tmp/" + dir + "x/.keep": ""})
			if err := os.Symlink("/tmp/"+dir+"x", filepath.Join(layer, dir)); err != nil {
				t.Fatal(err)
			}
			s := newStep(t, []string{layer, base}, "cat /proc/kcore | wc -c")
			s.run(context.Background(), New(Options{}))
			var se *SetupError
			if !errors.As(s.err, &se) || se.Path != "/"+dir {
				t.Fatalf("err = %v (output %q), want a SetupError naming /%s", s.err, s.out(), dir)
			}
			if got := listUpper(t, s.spec.UpperDir); got != "" {
				t.Errorf("upper dir after the refused setup:\n%s", got)
			}
		})
	}
}

func TestReadReport(t *testing.T) {
	tests := []struct {
		name, data string
		code       int
		wantErr    bool
	}{
		{name: "one value", data: `{"ExitCode":3}` + "\n", code: 3},
		{name: "empty", data: "", wantErr: true},
		{name: "two values", data: `{"ExitCode":0}` + "\n" + `{"ExitCode":1}`, wantErr: true},
		{name: "trailing garbage", data: `{"ExitCode":0} x`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make(chan reportOrErr, 1)
			readReport(strings.NewReader(tt.data), out)
			got := <-out
			if (got.err != nil) != tt.wantErr || (!tt.wantErr && got.rep.ExitCode != tt.code) {
				t.Errorf("report %+v err %v, want exit %d error %v", got.rep, got.err, tt.code, tt.wantErr)
			}
		})
	}
}

// hostHas reports whether the host has a path, for assertions that depend on the kernel.
func hostHas(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// readonlyMountsWant is what readonlyMountsScript prints: each read-only /proc path the host
// has, with "ro" as the first mount option.
func readonlyMountsWant() string {
	var lines []string
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger"} {
		if hostHas(p) {
			lines = append(lines, p+" ro")
		}
	}
	return strings.Join(lines, "\n")
}

const readonlyMountsScript = `awk '$5 == "/proc/sys" || $5 == "/proc/sysrq-trigger" { split($6, o, ","); print $5, o[1] }' /proc/self/mountinfo`

func TestInitDropsPrivilegesOnAllThreads(t *testing.T) {
	base := newBase(t)
	// The runtime can change every thread only without cgo; strata is built (and its tests
	// run) with CGO_ENABLED=0, as the README says, so a cgo test binary is a setup error.
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_GETPID, 0, 0, 0); errno == syscall.ENOTSUP {
		t.Fatal("this test binary uses cgo: run the tests with CGO_ENABLED=0 (see README.md)")
	}
	script := `cat /proc/1/task/*/status | grep -E '^Cap(Eff|Prm)' | sort -u`
	want := "CapEff:\t00000000a80425fb\nCapPrm:\t00000000a80425fb"
	if got := newStep(t, []string{base}, script).mustRun(t, New(Options{})).out(); got != want {
		t.Errorf("the init's threads hold:\n%s\nwant:\n%s", got, want)
	}
}

func TestReadOnlyBindCoversMountsBelow(t *testing.T) {
	base := newBase(t)
	src := t.TempDir()
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs below the bind source: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	s := newStep(t, []string{base}, "touch /m/sub/x 2>/dev/null && echo written || echo refused")
	s.spec.Mounts = []Mount{{Type: MountBind, Source: src, Target: "/m", ReadOnly: true}}
	if got := s.mustRun(t, New(Options{})).out(); got != "refused" {
		t.Errorf("output %q: a mount below a read-only bind was writable", got)
	}
	if _, err := os.Stat(filepath.Join(sub, "x")); err == nil {
		t.Error("the step wrote below a read-only bind")
	}
}
