//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/rootless"
)

// TestDoctorText: columns aligned, a fix under each missing check only, the mode last, and
// no control character of a detail reaching the terminal.
func TestDoctorText(t *testing.T) {
	r := rootless.Report{
		Checks: []rootless.Check{
			{Name: "user", Status: rootless.StatusOK, Detail: "root (uid 0)"},
			{Name: "namespaces", Status: rootless.StatusMissing, Detail: "refused \x1b[2J", Fix: "run it elsewhere"},
			{Name: "subids", Status: rootless.StatusNA, Detail: "root", Fix: "not shown"},
		},
		Mode:   rootless.ModeChroot,
		Caveat: "weaker",
	}
	var b bytes.Buffer
	if err := writeDoctorText(&b, r); err != nil {
		t.Fatal(err)
	}
	want := "ok       user        root (uid 0)\n" +
		"missing  namespaces  refused \\x1b[2J\n" +
		"         fix: run it elsewhere\n" +
		"n/a      subids      root\n" +
		"mode: " + rootless.ModeChroot + "\n" +
		"      weaker\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// doctorJSON is what --format json prints.
type doctorJSON struct {
	Checks []struct {
		Name, Status, Detail, Fix string
		OK                        bool
	}
	Mode, Caveat string
}

func (d doctorJSON) check(t *testing.T, name string) (status, detail, fix string) {
	t.Helper()
	for _, c := range d.Checks {
		if c.Name == name {
			if c.OK != (c.Status != rootless.StatusMissing) {
				t.Errorf("%s: ok %t with status %s", name, c.OK, c.Status)
			}
			return c.Status, c.Detail, c.Fix
		}
	}
	t.Fatalf("no check %q in %+v", name, d.Checks)
	return
}

// TestDoctorModes runs the built binary as root, as root without CAP_SYS_ADMIN, and as
// users with and without subordinate IDs and user namespaces, and checks the mode each
// report ends with: the doctor must find them by trying, as the build will.
func TestDoctorModes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs strata as other users")
	}
	for _, tool := range []string{"setpriv", "useradd", "usermod"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	caps := procStatus(t, "CapEff")
	if eff, _ := strconv.ParseUint(caps, 16, 64); eff&(1<<unix.CAP_SYS_ADMIN) == 0 || procStatus(t, "Seccomp") == "2" {
		t.Skip("root here lacks CAP_SYS_ADMIN or runs under seccomp (a container?)")
	}
	bin := buildDoctorBinary(t)

	t.Run("root", func(t *testing.T) {
		r := runDoctor(t, exec.Command(bin, "doctor", "--format", "json"))
		if r.Mode != "sandbox: namespaces, overlayfs (root)" {
			t.Errorf("mode %q", r.Mode)
		}
		if _, detail, _ := r.check(t, "user"); !strings.Contains(detail, "(uid 0)") {
			t.Errorf("user: %q", detail)
		}
		checkDoctorText(t, exec.Command(bin, "doctor"), r.Mode)
	})

	t.Run("root without CAP_SYS_ADMIN", func(t *testing.T) {
		r := runDoctor(t, exec.Command("setpriv", "--bounding-set=-sys_admin", bin, "doctor", "--format", "json"))
		if r.Mode != "chroot: pass --isolation=chroot (RUN steps share this container's network and processes)" {
			t.Errorf("mode %q", r.Mode)
		}
		if status, _, fix := r.check(t, "CAP_SYS_ADMIN"); status != rootless.StatusMissing || !strings.Contains(fix, "--isolation=chroot") {
			t.Errorf("CAP_SYS_ADMIN: %s, fix %q", status, fix)
		}
		if status, detail, _ := r.check(t, "namespaces"); status != rootless.StatusMissing || !strings.Contains(detail, "EPERM") {
			t.Errorf("namespaces: %s %q", status, detail)
		}
	})

	plain := testUser(t, "strata-doctor-t", "")
	if out, err := asUser(plain, "unshare", "--user", "true").CombinedOutput(); err != nil {
		t.Skipf("user namespaces are not allowed for users here (unshare: %v %s)", err, out)
	}

	t.Run("user without subordinate IDs", func(t *testing.T) {
		r := runDoctor(t, asUser(plain, bin, "doctor", "--format", "json"))
		want := fmt.Sprintf("rootless: user namespace mapping only uid %d (no subordinate IDs: RUN cannot use other users; COPY --chown is recorded in the layers)", plain.uid)
		if r.Mode != want {
			t.Errorf("mode %q, want %q", r.Mode, want)
		}
		if status, _, fix := r.check(t, "subids"); status != rootless.StatusMissing || !strings.Contains(fix, "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 strata-doctor-t") {
			t.Errorf("subids: %s, fix %q", status, fix)
		}
		if status, detail, _ := r.check(t, "overlayfs"); status == rootless.StatusOK && !strings.Contains(detail, plain.home) {
			t.Errorf("overlayfs was tried away from the store: %q", detail)
		}
		checkDoctorText(t, asUser(plain, bin, "doctor"), r.Mode)
		checkNothingLeft(t, plain)
	})

	t.Run("user with subordinate IDs", func(t *testing.T) {
		if _, err := exec.LookPath("newuidmap"); err != nil {
			t.Skip("needs newuidmap (Debian's uidmap)")
		}
		u := testUser(t, "strata-doctor-s", "524288-589823")
		r := runDoctor(t, asUser(u, bin, "doctor", "--format", "json"))
		if r.Mode != "rootless: user namespace with subordinate IDs 524288-589823" {
			t.Errorf("mode %q", r.Mode)
		}
		if status, detail, _ := r.check(t, "uidmap"); status != rootless.StatusOK || !strings.Contains(detail, "the ranges map") {
			t.Errorf("uidmap: %s %q", status, detail)
		}
		checkNothingLeft(t, u)
	})

	// A user namespace whose max_user_namespaces is 0 stands for a host that allows none.
	t.Run("user without user namespaces", func(t *testing.T) {
		cmd := asUser(plain, bin, "doctor", "--format", "json")
		cmd.Args = append([]string{"sh", "-c", `echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"`, "sh"}, cmd.Args...)
		cmd.Path = "/bin/sh"
		ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1 << 20}}
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids, GidMappingsEnableSetgroups: true}
		r := runDoctor(t, cmd)
		if r.Mode != "COPY/ADD only: RUN steps cannot run (no user namespaces, not root)" {
			t.Errorf("mode %q", r.Mode)
		}
		if status, detail, fix := r.check(t, "userns"); status != rootless.StatusMissing || !strings.Contains(detail, "ENOSPC") || !strings.Contains(fix, "user.max_user_namespaces") {
			t.Errorf("userns: %s %q, fix %q", status, detail, fix)
		}
	})
}

// checkNothingLeft: the overlay probe's directories are gone, also its work directory,
// which overlayfs leaves mode 0 and owned by the user.
func checkNothingLeft(t *testing.T, a testAccount) {
	t.Helper()
	for _, dir := range []string{a.home, filepath.Join(a.home, ".local/share/strata"), os.TempDir()} {
		if left, _ := filepath.Glob(filepath.Join(dir, ".strata-doctor-*")); len(left) > 0 {
			t.Errorf("the doctor left %v behind", left)
		}
	}
}

func procStatus(t *testing.T, field string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// buildDoctorBinary builds strata where other users can run it.
func buildDoctorBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "strata-doctor-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := goBuild(t, dir, "github.com/strata-build/strata/cmd/strata")
	for _, d := range []string{dir, filepath.Dir(bin)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

type testAccount struct {
	name, home string
	uid, gid   int
}

// testUser makes (once: it is left for the next run) a user with exactly the subordinate
// range subids ("" for none) in /etc/subuid and /etc/subgid.
func testUser(t *testing.T, name, subids string) testAccount {
	t.Helper()
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", "-m", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v\n%s", name, err, out)
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	a := testAccount{name: name, home: u.HomeDir}
	a.uid, _ = strconv.Atoi(u.Uid)
	a.gid, _ = strconv.Atoi(u.Gid)
	for _, f := range []struct{ file, add, del string }{{"/etc/subuid", "--add-subuids", "--del-subuids"}, {"/etc/subgid", "--add-subgids", "--del-subgids"}} {
		have := subRanges(t, f.file, name)
		for _, r := range have {
			if r != subids {
				runUsermod(t, f.del, r, name)
			}
		}
		if subids != "" && !contains(have, subids) {
			runUsermod(t, f.add, subids, name)
		}
	}
	return a
}

func runUsermod(t *testing.T, flag, ranges, name string) {
	t.Helper()
	if out, err := exec.Command("usermod", flag, ranges, name).CombinedOutput(); err != nil {
		t.Fatalf("usermod %s %s %s: %v\n%s", flag, ranges, name, err, out)
	}
}

// subRanges is name's ranges in file, as usermod takes them (first-last).
func subRanges(t *testing.T, file, name string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || f[0] != name {
			continue
		}
		start, _ := strconv.Atoi(f[1])
		count, _ := strconv.Atoi(f[2])
		out = append(out, fmt.Sprintf("%d-%d", start, start+count-1))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// asUser runs args as a, with a's home and a plain PATH, nothing else of the test's
// environment.
func asUser(a testAccount, args ...string) *exec.Cmd {
	cmd := exec.Command("setpriv", append([]string{"--reuid=" + strconv.Itoa(a.uid), "--regid=" + strconv.Itoa(a.gid), "--init-groups",
		"env", "HOME=" + a.home}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	return cmd
}

// runDoctor runs a doctor with --format json: it exits 0 and prints one JSON object.
func runDoctor(t *testing.T, cmd *exec.Cmd) doctorJSON {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s%s", cmd.Args, err, out, stderr.Bytes())
	}
	var r doctorJSON
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	if stderr.Len() > 0 {
		t.Errorf("%v wrote to stderr: %s", cmd.Args, stderr.Bytes())
	}
	return r
}

var (
	checkLine = regexp.MustCompile(`^(ok|missing|n/a) +\S+ +\S.*$`)
	fixLine   = regexp.MustCompile(`^ +fix: \S.*$`)
)

// checkDoctorText runs the text report and checks its shape: check lines, a fix line after
// each missing one, and the mode last (then at most the caveat).
func checkDoctorText(t *testing.T, cmd *exec.Cmd, mode string) {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	i := 0
	for ; i < len(lines) && checkLine.MatchString(lines[i]); i++ {
		if strings.HasPrefix(lines[i], "missing") {
			if i+1 >= len(lines) || !fixLine.MatchString(lines[i+1]) {
				t.Errorf("no fix line after %q", lines[i])
				continue
			}
			i++
		}
	}
	rest := lines[i:]
	if i == 0 || len(rest) == 0 || rest[0] != "mode: "+mode {
		t.Errorf("want check lines then %q, got:\n%s", "mode: "+mode, out)
		return
	}
	// Then at most the caveat, then the emulation section.
	rest = rest[1:]
	if len(rest) > 0 && strings.HasPrefix(rest[0], "      ") {
		rest = rest[1:]
	}
	if len(rest) < 3 || rest[0] != "emulation:" || !strings.HasPrefix(rest[1], "  binfmt_misc: ") || !slices.ContainsFunc(rest, func(l string) bool { return strings.HasPrefix(l, "RUN steps run for: ") }) {
		t.Errorf("want the emulation section after the mode, got:\n%s", out)
	}
}
