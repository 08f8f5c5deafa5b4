package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsolation(t *testing.T) {
	base := newBase(t)
	marker := filepath.Join(t.TempDir(), "host-marker")
	if err := os.WriteFile(marker, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostname, _ := os.Hostname()
	tests := []struct {
		name, script, want string
		network            NetworkMode
	}{
		// The shell is PID 2, the child of the init, and sees no other process.
		{name: "pid namespace", script: "set -- /proc/[0-9]*; echo $# $PPID; test -d /proc/$$ && echo self", want: "2 1\nself"},
		{name: "host file invisible", script: "test -e " + marker + " && echo visible || echo hidden", want: "hidden"},
		{name: "hostname", script: "hostname; cat /etc/hostname", want: "strata\nstrata"},
		{name: "network none", script: "ls /sys/class/net; cat /sys/class/net/lo/flags", network: NetworkNone, want: "lo\n0x9"},
		{name: "proc/sys and sysrq-trigger mounted read-only", script: readonlyMountsScript, want: readonlyMountsWant()},
		// The UTS namespace's hostname is writable by root through /proc/sys but for the mount.
		{name: "proc/sys read-only", script: "if echo x 2>/dev/null >/proc/sys/kernel/hostname; then echo written; else echo refused; fi; hostname", want: "refused\nstrata"},
		{name: "kernel files masked", script: maskScript, want: maskWant(t)},
		// Docker's default set, 0xa80425fb, and no way to gain more.
		{name: "capabilities", script: "grep -E '^(CapEff|CapBnd|CapInh|NoNewPrivs)' /proc/self/status", want: "CapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1"},
		{name: "no mounting", script: "mkdir -p /mnt; mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo refused", want: "refused"},
		// Through a user namespace of its own, the step would hold every capability there.
		{name: "no mounting in a user namespace", script: "mkdir -p /mnt; unshare -Urm mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo refused", want: "refused"},
	}
	e := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStep(t, []string{base}, tt.script)
			s.spec.Network = tt.network
			if got := s.mustRun(t, e).out(); got != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
	if hostname == "strata" {
		t.Log("the host is called strata too; the hostname case proved little")
	}
}

const maskScript = `for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do
	[ -e $f ] && echo "$f $(cat $f | wc -c)"
done; true`

// maskWant is what maskScript prints: the masked files the host has, each empty.
func maskWant(t *testing.T) string {
	var lines []string
	for _, f := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"} {
		if _, err := os.Stat(f); err == nil {
			lines = append(lines, f+" 0")
		}
	}
	if len(lines) == 0 {
		t.Log("the host has none of the masked /proc files")
	}
	return strings.Join(lines, "\n")
}

// escapeSource is the classic chroot escape: chroot into a subdirectory without entering it,
// climb out with "..", then chroot to where the climb ended. After a plain chroot that is the
// host's root; after pivot_root and a detached old root it is the sandbox's own.
const escapeSource = `#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
	mkdir("/jail", 0755);
	if (chroot("/jail") != 0) { perror("chroot"); return 2; }
	for (int i = 0; i < 64; i++) chdir("..");
	if (chroot(".") != 0) { perror("chroot ."); return 3; }
	execl("/bin/sh", "sh", "-c", "ls /", (char *)0);
	perror("exec");
	return 4;
}
`

func TestChrootEscapeFindsSandboxRoot(t *testing.T) {
	base := newBase(t)
	layer := buildStatic(t, "escape", escapeSource)
	if err := os.WriteFile(filepath.Join(layer, "sandbox-root-marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got := newStep(t, []string{layer, base}, "escape").mustRun(t, New(Options{})).out()
	if !strings.Contains(got, "sandbox-root-marker") {
		t.Errorf("the escape reached a root without the sandbox's marker:\n%s", got)
	}
}
