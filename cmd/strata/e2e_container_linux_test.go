package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// dockerCaps are the capabilities Docker gives a container by default (no --privileged,
// no --cap-add): what a Kubernetes pod or a GitLab job gets.
var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// containerCases are the cases built inside an unprivileged container; they need no
// registry base but the seeded ones and no shared tarball.
var containerCases = []string{
	"hello-example", "scratch-busybox", "user-run", "multistage", "heredoc", "whiteouts",
	"chown-chmod", "add-local-tar", "copy-from-image", "workdir-copy", "metadata", "add-devices",
}

// testUnprivilegedContainer builds cases with strata inside a container started by runc as
// Docker starts one by default: root of the container with Docker's capabilities (no
// CAP_SYS_ADMIN), Docker's seccomp profile (no unshare, no mount), no user namespace, the
// proc and sys masks. With --isolation=chroot each image must be the one the sandbox
// builds on the host, digest for digest; without it, a COPY/ADD-only build works and a
// build with RUN is refused before its first step, with a line saying what to pass.
func (e *e2eEnv) testUnprivilegedContainer(t *testing.T) {
	cases := map[string]e2eCase{}
	for _, c := range e2eCases() {
		cases[c.name] = c
	}
	hostStore := filepath.Join(t.TempDir(), "store")
	for _, name := range containerCases {
		c, ok := cases[name]
		if !ok {
			t.Fatalf("no e2e case %q", name)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := c.dir
			if dir == "" {
				dir = c.name
			}
			ctxDir := e.context(t, dir, c.needs)
			want := e.hostDigest(t, c, hostStore, ctxDir)
			r := e.inContainer(t, ctxDir, append(containerArgs(e.caseArgs(c, "/var/lib/strata")), "--isolation=chroot"))
			if r.err != nil {
				t.Fatalf("build in the container: %v\n%s", r.err, r.stderr)
			}
			if got := strings.TrimSpace(r.stdout); got != want {
				t.Errorf("built in an unprivileged container: %s; on the host: %s\n%s", got, want, r.stderr)
			}
		})
	}
	t.Run("copy-only-needs-no-flag", func(t *testing.T) {
		t.Parallel()
		c := cases["chown-chmod"]
		ctxDir := e.context(t, c.name, c.needs)
		want := e.hostDigest(t, c, hostStore, ctxDir)
		r := e.inContainer(t, ctxDir, containerArgs(e.caseArgs(c, "/var/lib/strata")))
		if r.err != nil {
			t.Fatalf("COPY-only build in the container: %v\n%s", r.err, r.stderr)
		}
		if got := strings.TrimSpace(r.stdout); got != want {
			t.Errorf("built in an unprivileged container: %s; on the host: %s", got, want)
		}
	})
	t.Run("run-without-flag-is-refused", func(t *testing.T) {
		t.Parallel()
		c := cases["user-run"]
		ctxDir := e.context(t, c.name, c.needs)
		r := e.inContainer(t, ctxDir, containerArgs(e.caseArgs(c, "/var/lib/strata")))
		if r.err == nil {
			t.Fatalf("a build with RUN succeeded in the container without --isolation=chroot")
		}
		last := lastLine(r.stderr)
		if !strings.Contains(last, "Dockerfile:") || !strings.Contains(last, "--isolation=chroot") {
			t.Errorf("last line %q should name the step and --isolation=chroot", last)
		}
		if strings.Contains(r.stderr, "#2 [") {
			t.Errorf("a step ran before the refusal:\n%s", r.stderr)
		}
	})
}

// containerArgs are a case's build flags for a build in the container, which prints the
// image ID on stdout.
func containerArgs(caseArgs []string) []string {
	return append([]string{"build", "--progress", "plain", "--iidfile", "/dev/stdout", "-o", "type=oci,dest=/tmp/image.tar"}, caseArgs...)
}

// hostDigest builds c on the host, in the sandbox, and returns the image ID.
func (e *e2eEnv) hostDigest(t *testing.T, c e2eCase, store, ctxDir string) string {
	t.Helper()
	iid := filepath.Join(t.TempDir(), "iid")
	e.mustBuild(t, append(e.caseArgs(c, store), "--iidfile", iid, "-o", "type=oci,dest="+filepath.Join(t.TempDir(), "image.tar"), ctxDir)...)
	return readDigest(t, iid)
}

// inContainer runs strata with args and the context at /ctx in a fresh container.
func (e *e2eEnv) inContainer(t *testing.T, ctxDir string, args []string) result {
	t.Helper()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xzf", e.busybox, "-C", rootfs).CombinedOutput(); err != nil {
		t.Fatalf("unpacking the container's rootfs: %v\n%s", err, out)
	}
	spec, err := unprivilegedSpec(append([]string{"/usr/local/bin/strata"}, append(args, "/ctx")...), e.strata, ctxDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bundle, "config.json"), string(b))
	id := fmt.Sprintf("strata-ctr-%x", sha256.Sum256([]byte(t.Name()+bundle)))[:27]
	cmd := exec.Command("runc", "--root", filepath.Join(bundle, "runc"), "run", "--bundle", bundle, id)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

// unprivilegedSpec is the OCI runtime config of a default `docker run` of args, as far as
// privilege goes: Docker's capabilities and seccomp profile, no user namespace, masked and
// read-only /proc and /sys paths, read-only cgroups. The host's network is shared so the
// build reaches the test registry on 127.0.0.1; that grants no privilege.
func unprivilegedSpec(args []string, strata, ctxDir string) (*specs.Spec, error) {
	caps := &specs.LinuxCapabilities{Bounding: dockerCaps, Effective: dockerCaps, Permitted: dockerCaps}
	spec := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args:         args,
			Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
			Cwd:          "/",
			Capabilities: caps,
		},
		Hostname: "ci-job",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
			{Destination: "/usr/local/bin/strata", Type: "bind", Source: strata, Options: []string{"rbind", "ro"}},
			{Destination: "/ctx", Type: "bind", Source: ctxDir, Options: []string{"rbind", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}, {Type: "cgroup"}},
			MaskedPaths: []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	var err error
	if spec.Linux.Seccomp, err = seccomp.GetDefaultProfile(spec); err != nil {
		return nil, fmt.Errorf("Docker's seccomp profile: %w", err)
	}
	return spec, nil
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
