package executor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// escapeSource tries the ways out of a container that Docker's defaults close, each as one
// line "name result", result being "ok" or the errno's name. Argument 1 is the name of an
// abstract unix socket the host listens on.
const escapesSource = `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
static void report(const char *name, long r) {
	if (r >= 0) printf("%s ok\n", name);
	else printf("%s %s\n", name, strerrorname_np(errno));
}
static long clone_newuser(void) {
	long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0) _exit(0);
	return pid;
}
int main(int argc, char **argv) {
	char buf[64];
	report("unshare-user", syscall(SYS_unshare, CLONE_NEWUSER));
	report("unshare-net", syscall(SYS_unshare, CLONE_NEWNET));
	report("clone-user", clone_newuser());
	report("mount-tmpfs", mount("none", "/mnt", "tmpfs", 0, 0));
	report("mount-cgroup", mount("cgroup", "/mnt", "cgroup", 0, "pids"));
	report("mount-cgroup2", mount("cgroup2", "/mnt", "cgroup2", 0, 0));
	report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
	report("add_key", syscall(SYS_add_key, "user", "strata-escape", "x", 1, KEY_SPEC_SESSION_KEYRING));
	report("request_key", syscall(SYS_request_key, "user", "strata-escape", 0, KEY_SPEC_SESSION_KEYRING));
	report("bpf", syscall(SYS_bpf, 0, buf, sizeof buf));
	report("perf_event_open", syscall(SYS_perf_event_open, buf, 0, -1, -1, 0));
	report("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, buf, O_RDONLY));
	report("init_module", syscall(SYS_init_module, buf, 0, ""));
	report("ptrace-init", syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0));
	long pidfd = syscall(SYS_pidfd_open, 1, 0);
	report("pidfd_getfd-init", pidfd < 0 ? pidfd : syscall(SYS_pidfd_getfd, pidfd, 0, 0));
	struct iovec local = {buf, 8}, remote = {(void *)0x400000, 8};
	report("process_vm_writev-init", syscall(SYS_process_vm_writev, 1, &local, 1, &remote, 1, 0));
	report("open-proc1-root", open("/proc/1/root/.", O_RDONLY));
	report("open-proc1-cwd", open("/proc/1/cwd/.", O_RDONLY));
	report("open-proc1-environ", open("/proc/1/environ", O_RDONLY));
	report("open-proc1-exe", open("/proc/1/exe", O_RDONLY));
	// runc CVE-2019-5736: an O_PATH descriptor of the init's binary, reopened for writing.
	long opath = open("/proc/1/exe", O_PATH);
	if (opath >= 0) {
		snprintf(buf, sizeof buf, "/proc/self/fd/%ld", opath);
		report("reopen-proc1-exe", open(buf, O_WRONLY));
	} else {
		report("reopen-proc1-exe", opath);
	}
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(argv[1]);
	memcpy(sun.sun_path + 1, argv[1], n);
	report("abstract-socket", connect(s, (struct sockaddr *)&sun, offsetof(struct sockaddr_un, sun_path) + 1 + n));
	long mk = mknod("/blockdev", S_IFBLK | 0600, makedev(7, 0));
	report("open-block-node", mk < 0 ? mk : open("/blockdev", O_RDONLY));
	report("socket-vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
	report("socket-netlink", socket(AF_NETLINK, SOCK_RAW, 0));
	return 0;
}
`

// TestEscapesAreClosed runs the escape probe in a step and checks each attempt fails the
// way Docker's defaults make it fail; the last two lines check that the seccomp filter did
// not close what it should not.
func TestEscapesAreClosed(t *testing.T) {
	base := newBase(t)
	probe := buildStatic(t, "escapes", escapesSource)
	if err := os.MkdirAll(filepath.Join(probe, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	abstract := "strata-test-" + strconv.Itoa(os.Getpid())
	l, err := net.Listen("unix", "@"+abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := map[string]string{
		"unshare-user": "EPERM", "unshare-net": "EPERM", "clone-user": "EPERM",
		"mount-tmpfs": "EPERM", "mount-cgroup": "EPERM", "mount-cgroup2": "EPERM",
		"keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM",
		"bpf": "EPERM", "perf_event_open": "EPERM", "kexec_load": "EPERM",
		"open_by_handle_at": "EPERM", "init_module": "EPERM",
		"ptrace-init": "EPERM", "pidfd_getfd-init": "EPERM", "process_vm_writev-init": "EPERM",
		"open-proc1-root": "EACCES", "open-proc1-cwd": "EACCES", "open-proc1-environ": "EACCES",
		"open-proc1-exe": "EACCES", "reopen-proc1-exe": "EACCES",
		"abstract-socket": "ECONNREFUSED", "open-block-node": "EACCES",
		"socket-vsock": "EPERM", "socket-netlink": "ok",
	}
	for _, network := range []NetworkMode{NetworkDefault, NetworkNone} {
		s := newStep(t, []string{probe, base}, "escapes "+abstract)
		s.spec.Network = network
		got := parseProbe(s.mustRun(t, New(Options{})).out())
		for name, w := range want {
			if got[name] != w {
				t.Errorf("network %q: %s: %q, want %s", network, name, got[name], w)
			}
		}
	}
}

func parseProbe(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			m[k] = v
		}
	}
	return m
}

func TestSeccompAndCgroupNamespace(t *testing.T) {
	base := newBase(t)
	script := `grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; cut -d: -f3 /proc/self/cgroup | sort -u`
	got := newStep(t, []string{base}, script).mustRun(t, New(Options{})).out()
	// Every hierarchy's path is "/": the step sees its own cgroup as the root, never the
	// host's layout.
	if want := "NoNewPrivs:\t1\nSeccomp:\t2\n/"; got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

// hostUserland is a lower that runs the host's own Debian userland: its /etc and dpkg
// database copied in, /usr bound read-only over the image's. It lets the seccomp filter
// meet the real work of a build: a compiler, dpkg and apt.
func hostUserland(t *testing.T) (string, []Mount) {
	t.Helper()
	for _, tool := range []string{"gcc", "dpkg-deb", "apt-get"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs the host's %s", tool)
		}
	}
	dir := filepath.Join(t.TempDir(), "userland")
	for _, d := range []string{"usr", "tmp", "var/lib", "var/cache", "var/log", "root", "mnt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if target, err := os.Readlink("/" + l); err == nil {
			os.Symlink(target, filepath.Join(dir, l))
		}
	}
	for _, d := range []string{"etc", "var/lib/dpkg", "var/lib/apt", "var/cache/apt"} {
		if out, err := exec.Command("cp", "-a", "/"+d, filepath.Join(dir, d)).CombinedOutput(); err != nil {
			t.Skipf("copying the host's /%s: %v\n%s", d, err, out)
		}
	}
	return dir, []Mount{{Type: MountBind, Source: "/usr", Target: "/usr", ReadOnly: true}}
}

// TestOrdinaryWorkUnderSeccomp builds and runs a threaded C program with the host's gcc,
// installs a package with dpkg and with apt, and pings with CAP_NET_RAW, all in a step.
func TestOrdinaryWorkUnderSeccomp(t *testing.T) {
	needRoot(t)
	lower, mounts := hostUserland(t)
	pkg := filepath.Join(t.TempDir(), "pkg")
	for _, f := range []string{"DEBIAN/control", "opt/strata-test/hello"} {
		os.MkdirAll(filepath.Join(pkg, filepath.Dir(f)), 0o755)
	}
	os.WriteFile(filepath.Join(pkg, "DEBIAN/control"), []byte("Package: strata-test\nVersion: 1.0\nArchitecture: all\nMaintainer: strata <strata@example.org>\nDescription: test package\n"), 0o644)
	os.WriteFile(filepath.Join(pkg, "opt/strata-test/hello"), []byte("installed\n"), 0o644)
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", pkg, filepath.Join(lower, "tmp/strata-test.deb")).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	script := `set -e
cat > /tmp/t.c <<'EOF'
#include <pthread.h>
#include <stdio.h>
static void *work(void *p) { return p; }
int main(void) { pthread_t th; pthread_create(&th, 0, work, 0); pthread_join(th, 0); puts("threads ok"); return 0; }
EOF
gcc -O2 -pthread -o /tmp/t /tmp/t.c
/tmp/t
dpkg -i /tmp/strata-test.deb >/dev/null
cat /opt/strata-test/hello
dpkg -r strata-test >/dev/null
cd /tmp && apt-get install -y -qq ./strata-test.deb >/dev/null 2>&1
cat /opt/strata-test/hello
busybox ping -c 1 -W 5 127.0.0.1 >/dev/null && echo ping ok`
	s := newStep(t, []string{lower}, script)
	s.spec.Mounts = mounts
	s.spec.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive"}
	s.spec.Network = NetworkNone
	got := s.mustRun(t, New(Options{})).out()
	if want := "threads ok\ninstalled\ninstalled\nping ok"; got != want {
		t.Errorf("output:\n%s\nwant:\n%s\nstderr: %s", got, want, s.stderr.String())
	}
}

// netnsOf is the network namespace a link in /proc names, "net:[inode]".
func netnsOf(t *testing.T, link string) string {
	t.Helper()
	ns, err := os.Readlink(link)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestNetworkNamespaces(t *testing.T) {
	base := newBase(t)
	host := netnsOf(t, "/proc/self/ns/net")
	for _, tt := range []struct {
		mode       NetworkMode
		sameAsHost bool
		ifaces     string
	}{
		{NetworkDefault, false, "lo\ntap0"},
		{NetworkNone, false, "lo"},
		{NetworkHost, true, ""},
	} {
		s := newStep(t, []string{base}, "readlink /proc/self/ns/net; ls /sys/class/net")
		s.spec.Network = tt.mode
		ns, ifaces, _ := strings.Cut(s.mustRun(t, New(Options{})).out(), "\n")
		if (ns == host) != tt.sameAsHost {
			t.Errorf("network %q: the step's namespace is %s, the host's %s", tt.mode, ns, host)
		}
		if tt.ifaces != "" && ifaces != tt.ifaces {
			t.Errorf("network %q: interfaces %q, want %q", tt.mode, ifaces, tt.ifaces)
		}
	}
}

// TestDefaultNetworkReachesOutButNotTheHost serves HTTP from a network namespace of the
// test's own, joined to the host by a veth pair (no traffic leaves the machine), and on the
// host's 127.0.0.1; the step reaches the first and neither the second directly nor through
// slirp4netns' gateway.
func TestDefaultNetworkReachesOutButNotTheHost(t *testing.T) {
	base := newBase(t)
	if _, err := exec.LookPath(NetworkHelper); err != nil {
		t.Skipf("needs %s (run testdata/install-test-deps.sh)", NetworkHelper)
	}
	remote := remoteServer(t)
	local, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(local, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "host loopback") }))
	defer local.Close()
	port := strconv.Itoa(local.Addr().(*net.TCPAddr).Port)
	// busybox-static's wget crashes on Debian 12; nc speaks HTTP/1.0 well enough.
	get := func(addr string) string {
		host, port, _ := strings.Cut(addr, ":")
		return `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 ` + host + " " + port + ` 2>/dev/null | tail -n 1 | grep . || echo refused`
	}
	script := get(remote) + "\n" + get("127.0.0.1:"+port) + "\n" + get("10.0.2.2:"+port) + `
grep -c nameserver /etc/resolv.conf`
	s := newStep(t, []string{base}, script).mustRun(t, New(Options{}))
	if got, want := s.out(), "remote server\nrefused\nrefused\n1"; got != want {
		t.Errorf("output:\n%s\nwant:\n%s\nstderr:\n%s", got, want, s.stderr.String())
	}
}

// remoteServer runs busybox httpd in a fresh network namespace behind a veth pair and
// returns its address.
func remoteServer(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	ns := "strata-test-" + strconv.Itoa(os.Getpid())
	hostIf, nsIf := "stv"+strconv.Itoa(os.Getpid()%100000), "stn"+strconv.Itoa(os.Getpid()%100000)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	run("link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	t.Cleanup(func() { exec.Command("ip", "link", "delete", hostIf).Run() })
	run("link", "set", nsIf, "netns", ns)
	run("addr", "add", "10.231.7.1/30", "dev", hostIf)
	run("link", "set", hostIf, "up")
	run("-n", ns, "addr", "add", "10.231.7.2/30", "dev", nsIf)
	run("-n", ns, "link", "set", nsIf, "up")
	run("-n", ns, "link", "set", "lo", "up")
	www := t.TempDir()
	os.WriteFile(filepath.Join(www, "index.html"), []byte("remote server"), 0o644)
	srv := exec.Command("ip", "netns", "exec", ns, "/bin/busybox", "httpd", "-f", "-p", "10.231.7.2:8080", "-h", www)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	// Ready once it answers from the host.
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", "10.231.7.2:8080", 100*time.Millisecond); err == nil {
			c.Close()
			return "10.231.7.2:8080"
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the test's server in its network namespace does not answer")
	return ""
}

func TestMissingNetworkHelperIsNamed(t *testing.T) {
	base := newBase(t)
	e := New(Options{NetworkHelper: "/nonexistent/slirp4netns"})
	s := newStep(t, []string{base}, "true").run(context.Background(), e)
	if !errors.Is(s.err, ErrNoNetworkHelper) || !strings.Contains(s.err.Error(), "Debian package slirp4netns") {
		t.Errorf("error %v, want one naming the slirp4netns package", s.err)
	}
	if err := e.CheckNetwork(NetworkDefault); !errors.Is(err, ErrNoNetworkHelper) {
		t.Errorf("CheckNetwork: %v", err)
	}
	if err := e.CheckNetwork(NetworkNone); err != nil {
		t.Errorf("CheckNetwork(none): %v", err)
	}
	// A helper that dies at once: the step fails naming it, and leaves no mount behind.
	s = newStep(t, []string{base}, "echo should not run").run(context.Background(), New(Options{NetworkHelper: "/bin/false"}))
	if s.err == nil || !strings.Contains(s.err.Error(), "slirp4netns did not configure") || s.out() != "" {
		t.Errorf("with a failing helper: error %v, output %q", s.err, s.out())
	}
}

// TestUmaskDoesNotReachTheStep runs the same step under the caller's umask 077 and 022: what
// the step creates has the same modes.
func TestUmaskDoesNotReachTheStep(t *testing.T) {
	base := newBase(t)
	script := "mkdir -p /d/e && touch /d/f && echo > /g"
	var uppers []string
	for _, mask := range []int{0o077, 0o022} {
		old := syscall.Umask(mask)
		s := newStep(t, []string{base}, script).mustRun(t, New(Options{}))
		syscall.Umask(old)
		uppers = append(uppers, listUpper(t, s.spec.UpperDir))
	}
	if uppers[0] != uppers[1] {
		t.Errorf("under umask 077:\n%s\nunder umask 022:\n%s", uppers[0], uppers[1])
	}
	if !strings.Contains(uppers[1], "d/f file 644") {
		t.Errorf("upper under umask 022:\n%s", uppers[1])
	}
}

// TestPidsLimitBoundsForkBomb starts more processes than the limit allows: the forks beyond
// it fail, the step ends, and its cgroup is gone afterwards.
func TestPidsLimitBoundsForkBomb(t *testing.T) {
	base := newBase(t)
	e := New(Options{PidsLimit: 32})
	if e.usableCgroups() == nil {
		t.Skipf("cgroups cannot be used here: %s", e.noCgroupsWhy)
	}
	// The inner shell dies at its first failed fork; the outer one counts with builtins only.
	script := `sh -c 'for i in $(seq 100); do sleep 30 & done' 2>/dev/null; echo started; set -- /proc/[0-9]*; echo $#`
	var dir string
	e.onCgroup = func(d string) { dir = d }
	s := newStep(t, []string{base}, script).run(context.Background(), e)
	if s.err != nil {
		t.Fatal(s.err)
	}
	count, _ := strconv.Atoi(strings.TrimPrefix(s.out(), "started\n"))
	if count == 0 || count > 32 {
		t.Errorf("exit %d, output %q, stderr %q: want at most 32 processes", s.res.ExitCode, s.out(), s.stderr.String())
	}
	if dir == "" {
		t.Error("the step got no cgroup")
	} else if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("step cgroup %s left behind (%v)", dir, err)
	}
}

// TestStaleCgroupsOfLiveBuildersStay: cleaning up after killed builders never removes the
// cgroup another live builder just made (it would lose its pids limit).
func TestStaleCgroupsOfLiveBuildersStay(t *testing.T) {
	needRoot(t)
	c := detectCgroups()
	if c.base == "" {
		t.Skipf("cgroups cannot be used here: %s", c.why)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(c.base, fmt.Sprintf("step-%d-test", os.Getpid()))
	gone := filepath.Join(c.base, fmt.Sprintf("step-%d-test", dead.Process.Pid))
	for _, d := range []string{live, gone} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(d) })
	}
	c.removeStale()
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live builder's cgroup was removed: %v", err)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("a dead builder's cgroup stayed: %v", err)
	}
}

// TestStepCannotCrashItsInit: signals the Go runtime would die on, sent by the step to PID
// 1, change nothing: the step goes on and ends with its own status.
func TestStepCannotCrashItsInit(t *testing.T) {
	base := newBase(t)
	script := `for s in ABRT SEGV BUS FPE ILL TRAP SYS PIPE ALRM PROF XCPU; do kill -$s 1 2>/dev/null; done; sleep 0.2; echo alive`
	s := newStep(t, []string{base}, script).mustRun(t, New(Options{}))
	if got := s.out(); got != "alive" {
		t.Errorf("output %q, stderr %q", got, s.stderr.String())
	}
}
