package rootless

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain lets this test binary be the probe's children, as main does for strata.
func TestMain(m *testing.M) {
	ProbeChild()
	os.Exit(m.Run())
}

func findCheck(t *testing.T, r Report, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, r.Checks)
	return Check{}
}

// TestProbeAsRoot: root with every capability and no seccomp filter gets the full sandbox,
// found by really making its namespaces and overlay, and the probe leaves nothing behind.
func TestProbeAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	p := newProber()
	if !p.hasCaps(unix.CAP_SYS_ADMIN) || p.status["Seccomp"] == "2" {
		t.Skip("root here lacks CAP_SYS_ADMIN or runs under seccomp (a container?)")
	}
	base := p.overlayBase()
	r := Probe()
	if u := findCheck(t, r, "user"); u.Status != StatusOK || !strings.Contains(u.Detail, "(uid 0)") || strings.Contains(u.Detail, "not root") {
		t.Errorf("user check: %+v", u)
	}
	if r.Mode != "sandbox: namespaces, overlayfs (root)" {
		t.Errorf("mode %q, want the root sandbox; checks:\n%s", r.Mode, dump(r))
	}
	for _, name := range []string{"CAP_SYS_ADMIN", "namespaces", "overlayfs", "seccomp"} {
		if c := findCheck(t, r, name); c.Status != StatusOK {
			t.Errorf("%s: %+v", name, c)
		}
	}
	for _, name := range []string{"subids", "uidmap"} {
		if c := findCheck(t, r, name); c.Status != StatusNA {
			t.Errorf("%s as root: %+v, want n/a", name, c)
		}
	}
	for _, c := range r.Checks {
		if c.Status == StatusMissing && c.Fix == "" {
			t.Errorf("%s is missing without a fix", c.Name)
		}
	}
	for _, dir := range []string{base, os.TempDir()} {
		if left, _ := filepath.Glob(filepath.Join(dir, ".strata-doctor-*")); len(left) > 0 {
			t.Errorf("the probe left %v behind", left)
		}
	}
}

func dump(r Report) string {
	var b strings.Builder
	for _, c := range r.Checks {
		b.WriteString(c.Status + " " + c.Name + " " + c.Detail + "\n")
	}
	return b.String()
}

// TestProbeChildReportsErrno: a child's failure comes back as what it tried and its errno.
func TestProbeChildReportsErrno(t *testing.T) {
	flags := uintptr(syscall.CLONE_NEWNS)
	if os.Geteuid() != 0 {
		flags |= syscall.CLONE_NEWUSER
	}
	missing := filepath.Join(t.TempDir(), "missing")
	err := runChild(flags|syscall.CLONE_NEWPID, "sandbox", missing)
	var pe *probeError
	if !errors.As(err, &pe) {
		if errnoOf(err) == unix.EPERM {
			t.Skipf("namespaces refused here: %v", err)
		}
		t.Fatalf("got %v (%T), want a probeError", err, err)
	}
	if pe.errno != unix.ENOENT || !strings.HasPrefix(pe.Error(), "mounting proc: ") || !strings.Contains(pe.Error(), "ENOENT") {
		t.Errorf("got %q (errno %d), want mounting proc: ... ENOENT", pe, pe.errno)
	}
	if err := runChild(flags, "exit"); err != nil {
		t.Errorf("the exit probe failed: %v", err)
	}
}

func TestProbeDecideMode(t *testing.T) {
	sandbox := modeFacts{root: true, sysAdmin: true, chrootCaps: true, userns: true, namespaces: true, pidsLimit: true}
	rootless := modeFacts{userns: true, namespaces: true, uid: 1000, ranges: "100000-165535"}
	with := func(f modeFacts, change func(*modeFacts)) modeFacts { change(&f); return f }
	for _, tc := range []struct {
		name         string
		facts        modeFacts
		mode, caveat string // caveat: a prefix; "" for none
	}{
		{"root", sandbox, "sandbox: namespaces, overlayfs (root)", ""},
		{"root without cgroups", with(sandbox, func(f *modeFacts) { f.pidsLimit = false }), "sandbox: namespaces, overlayfs (root)", "weaker than the full sandbox: no pids limit"},
		{"root without CAP_SYS_ADMIN", with(sandbox, func(f *modeFacts) { f.sysAdmin = false }),
			"chroot: pass --isolation=chroot (RUN steps share this container's network and processes)", "weaker than the sandbox: no mount, PID"},
		{"root where namespaces fail", with(sandbox, func(f *modeFacts) { f.namespaces = false }),
			"chroot: pass --isolation=chroot (RUN steps share this container's network and processes)", "weaker than the sandbox"},
		{"root without chroot's capabilities", with(sandbox, func(f *modeFacts) { f.sysAdmin, f.chrootCaps = false, false }),
			"chroot: pass --isolation=chroot (RUN steps share this container's network and processes)", "RUN steps fail here"},
		{"subordinate IDs", with(rootless, func(f *modeFacts) { f.ids = true }),
			"rootless: user namespace with subordinate IDs 100000-165535", "weaker than the root sandbox: no pids limit"},
		{"newuidmap refuses", with(rootless, func(f *modeFacts) { f.ids, f.mappingFails = true, true }),
			"rootless: user namespace with subordinate IDs 100000-165535", "builds fail here"},
		{"single", rootless,
			"rootless: user namespace mapping only uid 1000 (no subordinate IDs: RUN cannot use other users; COPY --chown is recorded in the layers)", "weaker than the root sandbox"},
		{"no user namespaces", with(rootless, func(f *modeFacts) { f.userns = false }),
			"COPY/ADD only: RUN steps cannot run (no user namespaces, not root)", "no sandbox"},
	} {
		mode, caveat := decideMode(tc.facts)
		if mode != tc.mode {
			t.Errorf("%s: mode %q, want %q", tc.name, mode, tc.mode)
		}
		if tc.caveat == "" && caveat != "" || !strings.HasPrefix(caveat, tc.caveat) {
			t.Errorf("%s: caveat %q, want %q...", tc.name, caveat, tc.caveat)
		}
	}
}

func TestProbeUsernsAdvice(t *testing.T) {
	for _, tc := range []struct {
		errno           unix.Errno
		sysctls         map[string]string
		seccomp         string
		inDetail, inFix string
	}{
		{unix.ENOSPC, map[string]string{sysctlMaxUserNS: "0"}, "0", sysctlMaxUserNS + " is 0", "user.max_user_namespaces="},
		{unix.EPERM, map[string]string{sysctlUnprivClone: "0"}, "0", sysctlUnprivClone + " is 0", "kernel.unprivileged_userns_clone=1"},
		{unix.EPERM, map[string]string{sysctlUnprivClone: "1"}, "2", "seccomp", "seccomp=unconfined"},
		{unix.EPERM, nil, "0", "EPERM", sysctlMaxUserNS},
	} {
		detail, fix := usernsAdvice(describe("creating a user namespace", tc.errno), tc.sysctls, tc.seccomp)
		if !strings.Contains(detail, tc.inDetail) || !strings.Contains(fix, tc.inFix) {
			t.Errorf("%v %v seccomp %s: detail %q, fix %q; want %q and %q", tc.errno, tc.sysctls, tc.seccomp, detail, fix, tc.inDetail, tc.inFix)
		}
	}
}

func TestProbeMappedRanges(t *testing.T) {
	same := Mapping{SubUID: []Range{{100000, 65536}}, SubGID: []Range{{100000, 65536}}}
	if got := mappedRanges(same); got != "100000-165535" {
		t.Errorf("same ranges: %q", got)
	}
	apart := Mapping{SubUID: []Range{{100000, 10}, {300000, 5}}, SubGID: []Range{{200000, 65536}}}
	if got := mappedRanges(apart); got != "uids 100000-100009,300000-300004, gids 200000-265535" {
		t.Errorf("different ranges: %q", got)
	}
}

// TestRemoveTree: what overlayfs leaves in its work directory (a mode 0 directory with a
// file in it) goes too.
func TestProbeRemoveTree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "probe")
	work := filepath.Join(dir, "work", "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "#1"), nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0); err != nil {
		t.Fatal(err)
	}
	removeTree(dir)
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there (%v)", dir, err)
	}
}
