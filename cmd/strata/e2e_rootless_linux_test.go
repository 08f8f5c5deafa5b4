package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The users the rootless tests build as. They are made when missing and kept: the first has
// subordinate ID ranges (its builds map them through newuidmap and own files as any ID), the
// second has none (its builds map it alone, as root of its namespace).
const (
	rootlessIDsUser    = "strata-e2e-ids"
	rootlessSingleUser = "strata-e2e-single"
	// rootlessIDsUser gets rootlessSubIDCount IDs from rootlessSubIDStart, or from past
	// the ranges other users have there, when it has none (Debian's useradd gives some).
	rootlessSubIDStart = 300000
	rootlessSubIDCount = 65536
)

// rootlessCases are the cases built by the user with subordinate IDs, which must give the
// image a root build gives: all of e2eCases(), none needing anything only root has.
var rootlessCases = []string{
	"hello-example", "scratch-busybox", "user-run", "multistage", "multistage-target", "metadata",
	"heredoc", "whiteouts", "dockerignore", "copy-symlink-dir", "chown-chmod", "add-local-tar",
	"args-env", "workdir-copy", "network", "add-url", "copy-from-image", "add-devices",
	"scratch-alpine", "scratch-busybox-hardlinks", "registry-alpine", "registry-glibc",
}

// singleCases are also built by the user without subordinate IDs: no RUN of theirs needs an
// ID other than root's, so the image is the root build's too (owners recorded, not set).
var singleCases = []string{
	"hello-example", "chown-chmod", "whiteouts", "add-local-tar", "copy-from-image", "workdir-copy", "scratch-busybox",
}

// rootlessUser is an unprivileged user and the HOME this run gives it: its store is
// HOME/.local/share/strata, as for anyone who runs strata without root.
type rootlessUser struct {
	name     string
	uid, gid int
	home     string // this run's HOME of the user, owned by it
	tmp      string // its TMPDIR, owned by it
	strata   string // a copy of the binary any user can run
}

// testRootless builds cases as root and as users without root, who must get the same image,
// then checks what the rootless builds leave: a private store, no mount, no process, even
// when the builder is killed in the middle of a RUN.
func (e *e2eEnv) testRootless(t *testing.T) {
	ids, single := e.rootlessUsers(t)
	rootStore := filepath.Join(t.TempDir(), "store")
	byName := map[string]e2eCase{}
	for _, c := range e2eCases() {
		byName[c.name] = c
	}
	t.Run("builds", func(t *testing.T) {
		for _, name := range rootlessCases {
			c, ok := byName[name]
			if !ok {
				t.Errorf("e2eCases() has no case %s", name)
				continue
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e.checkRootlessCase(t, c, rootStore, ids, single)
			})
		}
		t.Run("single-user-run", func(t *testing.T) {
			t.Parallel()
			e.checkSingleUserRun(t, single)
		})
	})
	for _, u := range []*rootlessUser{ids, single} {
		u.checkAfterBuilds(t)
	}
	t.Run("killed", func(t *testing.T) { e.testRootlessKilled(t, ids) })
}

// rootlessUsers makes the two users when missing, gives the first subordinate IDs and takes
// them from the second, and gives each a HOME of this run. It skips when this machine cannot
// run a rootless build, and fails when it could but is not set up for the tests to.
func (e *e2eEnv) rootlessUsers(t *testing.T) (ids, single *rootlessUser) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"useradd", "usermod", "newuidmap", "newgidmap", "setpriv", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Skipf("rootless tests need %s (passwd, uidmap, util-linux)", strings.Join(missing, ", "))
	}
	func() {
		// Two runs of the suite at once must not both add a user or rewrite /etc/subuid.
		unlock := flockFile(t, filepath.Join(os.TempDir(), "strata-e2e-rootless-users.lock"))
		defer unlock()
		ensureUser(t, rootlessIDsUser)
		ensureUser(t, rootlessSingleUser)
		u, err := user.Lookup(rootlessIDsUser)
		if err != nil {
			t.Fatal(err)
		}
		var add []string
		if len(subIDLines(t, "/etc/subuid", u)) == 0 {
			add = append(add, "--add-subuids", freeSubIDs(t, "/etc/subuid"))
		}
		if len(subIDLines(t, "/etc/subgid", u)) == 0 {
			add = append(add, "--add-subgids", freeSubIDs(t, "/etc/subgid"))
		}
		if len(add) > 0 {
			if out, err := exec.Command("usermod", append(add, rootlessIDsUser)...).CombinedOutput(); err != nil {
				t.Fatalf("usermod %s: %v\n%s", strings.Join(add, " "), err, out)
			}
		}
		s, err := user.Lookup(rootlessSingleUser)
		if err != nil {
			t.Fatal(err)
		}
		removeSubIDs(t, "/etc/subuid", s)
		removeSubIDs(t, "/etc/subgid", s)
	}()

	// A directory any user can traverse, holding the users' HOMEs and the binary they run
	// (the suite's own directories are root's alone).
	base, err := os.MkdirTemp("", "strata-e2e-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "strata")
	copyExecutable(t, e.strata, bin)
	ids = newRootlessUser(t, rootlessIDsUser, base, bin)
	single = newRootlessUser(t, rootlessSingleUser, base, bin)

	if out, err := ids.command(context.Background(), "unshare", "--user", "--map-root-user", "true").CombinedOutput(); err != nil {
		t.Skipf("user namespaces are refused to users without root (unshare --user: %v: %s)", err, bytes.TrimSpace(out))
	}
	// slirp4netns, RUN's default network, opens /dev/net/tun as the user.
	if out, err := ids.command(context.Background(), "/bin/sh", "-c", "exec 3<>/dev/net/tun").CombinedOutput(); err != nil {
		t.Fatalf("a user without root cannot open /dev/net/tun (%v: %s), which a rootless RUN's network needs: run testdata/install-test-deps.sh (it makes the node 0666, as Debian does)",
			err, bytes.TrimSpace(out))
	}
	return ids, single
}

// ensureUser adds name with useradd -m unless it exists.
func ensureUser(t *testing.T, name string) {
	t.Helper()
	if _, err := user.Lookup(name); err == nil {
		return
	}
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd -m %s: %v\n%s", name, err, out)
	}
}

// subIDLines returns the lines of an /etc/subuid-like file that give u ranges, by name or uid
// as newuidmap matches them.
func subIDLines(t *testing.T, file string, u *user.User) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if subIDLineOf(l, u) {
			lines = append(lines, l)
		}
	}
	return lines
}

// freeSubIDs is a range of rootlessSubIDCount IDs, as usermod --add-subuids takes it, from
// rootlessSubIDStart or past every range of file that would overlap it.
func freeSubIDs(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	start := rootlessSubIDStart
	for moved := true; moved; {
		moved = false
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Split(strings.TrimSpace(l), ":")
			if len(f) != 3 {
				continue
			}
			s, err1 := strconv.Atoi(f[1])
			n, err2 := strconv.Atoi(f[2])
			if err1 == nil && err2 == nil && s < start+rootlessSubIDCount && start < s+n {
				start, moved = s+n, true
			}
		}
	}
	return fmt.Sprintf("%d-%d", start, start+rootlessSubIDCount-1)
}

func subIDLineOf(line string, u *user.User) bool {
	owner, _, ok := strings.Cut(strings.TrimSpace(line), ":")
	return ok && (owner == u.Username || owner == u.Uid)
}

// removeSubIDs takes u's lines out of file (Debian's useradd gives new users ranges): the file
// is written beside itself with its mode and owner and renamed over, every other byte kept,
// under shadow's own lock so that useradd or usermod cannot change it meanwhile.
func removeSubIDs(t *testing.T, file string, u *user.User) {
	t.Helper()
	if len(subIDLines(t, file, u)) == 0 {
		return
	}
	unlock := shadowLock(t, file)
	defer unlock()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	lines := strings.SplitAfter(string(b), "\n")
	for _, l := range lines {
		if !subIDLineOf(l, u) {
			kept = append(kept, l)
		}
	}
	tmp := file + ".strata-e2e"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.WriteString(f, strings.Join(kept, ""))
	if err == nil {
		uid, gid := fileOwner(fi)
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Chmod(fi.Mode().Perm())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		t.Fatalf("removing %s's ranges from %s: %v", u.Username, file, err)
	}
	t.Logf("removed %d line(s) of %s from %s", len(lines)-len(kept), u.Username, file)
}

// shadowLock takes the lock shadow's tools (useradd, usermod) take on file: file.lock made
// exclusively, holding the pid of its owner.
func shadowLock(t *testing.T, file string) (unlock func()) {
	t.Helper()
	lock := file + ".lock"
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%d", os.Getpid())
			f.Close()
			return func() { os.Remove(lock) }
		}
		if !os.IsExist(err) || time.Now().After(deadline) {
			t.Fatalf("locking %s: %v", file, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// flockFile holds an exclusive flock on path until unlock.
func flockFile(t *testing.T, path string) (unlock func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() }
}

func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatal(err)
	}
}

// newRootlessUser gives the user a HOME of this run under base: 0755 as useradd makes them,
// with ~/.local/share made as a desktop session would, so that the store's own mode is what
// keeps other users out of it.
func newRootlessUser(t *testing.T, name, base, bin string) *rootlessUser {
	t.Helper()
	pw, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	u := &rootlessUser{name: name, strata: bin, home: filepath.Join(base, name)}
	u.uid, _ = strconv.Atoi(pw.Uid)
	u.gid, _ = strconv.Atoi(pw.Gid)
	u.tmp = filepath.Join(u.home, "tmp")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{u.home, 0o755}, {filepath.Join(u.home, ".local"), 0o755}, {filepath.Join(u.home, ".local", "share"), 0o755}, {u.tmp, 0o700}} {
		u.mkdir(t, d.path, d.mode)
	}
	return u
}

// mkdir makes a directory the user owns.
func (u *rootlessUser) mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// tempDir makes a fresh directory of the user's, under its HOME.
func (u *rootlessUser) tempDir(t *testing.T, what string) string {
	t.Helper()
	parent := filepath.Join(u.home, "work")
	u.mkdir(t, parent, 0o755)
	dir, err := os.MkdirTemp(parent, what+"-")
	if err != nil {
		t.Fatal(err)
	}
	u.mkdir(t, dir, 0o755)
	return dir
}

// giveContext copies a build context into a directory of the user's, owned by it, as the
// user's own checkout would be.
func (u *rootlessUser) giveContext(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(u.tempDir(t, "context"), "context")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := normaliseModes(dst); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.gid)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// store is the store strata uses for the user: the default one under its HOME.
func (u *rootlessUser) store() string { return filepath.Join(u.home, ".local", "share", "strata") }

// command runs name as the user, with the environment of a login of its (HOME, PATH) plus
// SOURCE_DATE_EPOCH, as the suite's builds have, and a TMPDIR of the user's.
func (u *rootlessUser) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=" + strconv.Itoa(u.uid),
		"--regid=" + strconv.Itoa(u.gid), "--init-groups", "--", name}, args...)...)
	cmd.Env = []string{"HOME=" + u.home, "USER=" + u.name, "LOGNAME=" + u.name,
		"PATH=/usr/local/bin:/usr/bin:/bin", "SOURCE_DATE_EPOCH=" + epoch, "TMPDIR=" + u.tmp}
	cmd.Dir = u.home
	return cmd
}

// build runs `strata build --progress plain args` as the user.
func (u *rootlessUser) build(args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := u.command(ctx, u.strata, append([]string{"build", "--progress", "plain"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

// buildCase builds c as the user, into its default store, and returns the image's digest
// and the OCI archive it wrote.
func (u *rootlessUser) buildCase(t *testing.T, e *e2eEnv, c e2eCase, ctxDir string) (digest, archive string) {
	t.Helper()
	out := u.tempDir(t, "out")
	archive = filepath.Join(out, "image.tar")
	args := withoutRoot(e.caseArgs(c, ""))
	args = append(args, "-o", "type=oci,dest="+archive, "--iidfile", filepath.Join(out, "iid"), u.giveContext(t, ctxDir))
	if r := u.build(args...); r.err != nil {
		t.Fatalf("strata build as %s %s: %v\nstdout:\n%s\nstderr:\n%s", u.name, strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return readDigest(t, filepath.Join(out, "iid")), archive
}

// withoutRoot drops --root and its value from build flags: a rootless build uses the
// default store.
func withoutRoot(args []string) []string {
	if i := slices.Index(args, "--root"); i >= 0 {
		return slices.Delete(slices.Clone(args), i, i+2)
	}
	return args
}

// checkRootlessCase builds c as root and as the user with subordinate IDs, and as the user
// without when c is one of singleCases: every build must give the root build's manifest, and
// the image the user with subordinate IDs built must run as c says.
func (e *e2eEnv) checkRootlessCase(t *testing.T, c e2eCase, rootStore string, ids, single *rootlessUser) {
	dir := c.dir
	if dir == "" {
		dir = c.name
	}
	ctxDir := e.context(t, dir, c.needs)
	out := t.TempDir()
	rootArchive, iid := filepath.Join(out, "image.tar"), filepath.Join(out, "iid")
	e.mustBuild(t, append(e.caseArgs(c, rootStore), "-o", "type=oci,dest="+rootArchive, "--iidfile", iid, ctxDir)...)
	want := readDigest(t, iid)
	got, archive := ids.buildCase(t, e, c, ctxDir)
	if got != want {
		t.Errorf("built as %s (subordinate IDs) the image is %s, built as root %s%s", ids.name, got, want, imageDiff(t, rootArchive, archive))
	}
	if out := runImage(t, archive); out != c.want {
		t.Errorf("running the image %s built printed:\n%s\nwant:\n%s", ids.name, out, c.want)
	}
	if slices.Contains(singleCases, c.name) {
		if got, archive := single.buildCase(t, e, c, ctxDir); got != want {
			t.Errorf("built as %s (no subordinate IDs) the image is %s, built as root %s%s", single.name, got, want, imageDiff(t, rootArchive, archive))
		}
	}
}

// imageDiff says how the layers of two OCI archives' images differ, entry by entry (name,
// owner, mode, type, size, link), for a failure message: the root build's entries missing
// from the other's, then the other's not in the root build's.
func imageDiff(t *testing.T, rootArchive, archive string) string {
	t.Helper()
	entries := func(archive string) []string {
		img, _ := ociArchiveImage(t, archive)
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		var all []string
		for i := range layers {
			forEachEntry(t, img, i, func(h *tar.Header) {
				all = append(all, fmt.Sprintf("layer %d: %s %d:%d %o %c %d %s", i, h.Name, h.Uid, h.Gid, h.Mode, h.Typeflag, h.Size, h.Linkname))
			})
		}
		return all
	}
	root, other := entries(rootArchive), entries(archive)
	var b strings.Builder
	for _, d := range []struct {
		sign     string
		from, in []string
	}{{"-", root, other}, {"+", other, root}} {
		n := 0
		for _, e := range d.from {
			if !slices.Contains(d.in, e) {
				if n++; n <= 10 {
					fmt.Fprintf(&b, "\n%s %s", d.sign, e)
				}
			}
		}
		if n > 10 {
			fmt.Fprintf(&b, "\n%s ... %d more", d.sign, n-10)
		}
	}
	if b.Len() == 0 {
		return "\n(the layers' entries are the same: the difference is in the config or the compression)"
	}
	return "\nlayer entries (name uid:gid mode type size link), - root's, + the rootless build's:" + b.String()
}

// checkSingleUserRun builds user-run, whose RUN is user app's, as the user without
// subordinate IDs: its namespace maps no ID but root, so the build must fail with one line
// naming the step and the cause.
func (e *e2eEnv) checkSingleUserRun(t *testing.T, single *rootlessUser) {
	c := e2eCase{name: "user-run", base: "busybox:latest"}
	ctxDir := single.giveContext(t, e.context(t, c.name, nil))
	df, err := os.ReadFile(filepath.Join(ctxDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	line := slices.IndexFunc(strings.Split(string(df), "\n"), func(l string) bool { return strings.HasPrefix(l, "RUN ") }) + 1
	if line == 0 {
		t.Fatal("user-run's Dockerfile has no RUN")
	}
	out := single.tempDir(t, "out")
	r := single.build(append(withoutRoot(e.caseArgs(c, "")), "-o", "type=oci,dest="+filepath.Join(out, "image.tar"), ctxDir)...)
	// A rootless RUN warns that it has no cgroup: the warning is no error line.
	var warnings []string
	r.stderr, warnings = withoutWarnings(r.stderr)
	for _, w := range warnings {
		t.Logf("warning: %s", w)
	}
	checkFailure(t, r, []string{fmt.Sprintf(`Dockerfile:%d\b`, line), `subordinate IDs`})
	if _, err := os.Stat(filepath.Join(out, "image.tar")); err == nil {
		t.Errorf("the failed build wrote its output")
	}
}

// withoutWarnings takes strata's warning lines out of stderr and returns them apart.
func withoutWarnings(stderr string) (string, []string) {
	var kept, warnings []string
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if w, ok := strings.CutPrefix(l, "strata: warning: "); ok {
			warnings = append(warnings, strings.TrimSpace(w))
			continue
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, ""), warnings
}

// checkAfterBuilds checks the user's builds left its store closed to other users, no mount
// on the host and no process.
func (u *rootlessUser) checkAfterBuilds(t *testing.T) {
	t.Helper()
	store := u.store()
	fi, err := os.Stat(store)
	if err != nil {
		t.Fatalf("%s's builds made no store at %s: %v", u.name, store, err)
	}
	if uid, _ := fileOwner(fi); uid != u.uid || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("%s's store %s is %v owned by %d, want 0700 owned by %d", u.name, store, fi.Mode().Perm(), uid, u.uid)
	}
	var paths []string
	filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err == nil && len(paths) < 2000 {
			paths = append(paths, p)
		}
		return nil
	})
	// User nobody tries to list the store and to open any of its paths.
	script := `ls "$1" >/dev/null 2>&1 && echo "listed $1"
while IFS= read -r f; do if { true; } 2>/dev/null < "$f"; then echo "opened $f"; fi; done; true`
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/busybox", "sh", "-c", script, "sh", store)
	cmd.Stdin = strings.NewReader(strings.Join(paths[1:], "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probing %s's store as nobody: %v\n%s", u.name, err, out)
	}
	if len(out) > 0 {
		t.Errorf("user nobody reached %s's store (%d paths tried):\n%s", u.name, len(paths), out)
	}
	if mounts := mountsUnder(t, u.home); len(mounts) > 0 {
		t.Errorf("mounts under %s's HOME left on the host after its builds:\n%s", u.name, strings.Join(mounts, "\n"))
	}
	if pids := processesOf(u.strata); len(pids) > 0 {
		t.Errorf("strata processes still running after the builds: %v", describeProcesses(pids))
	}
}

// mountsUnder lists the lines of this process's mountinfo that mention dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, dir) {
			lines = append(lines, l)
		}
	}
	return lines
}

// testRootlessKilled kills -9 a rootless build in a RUN: the builder outside the namespace is
// the process killed, and everything inside (the build, the RUN's sandbox and its sleep,
// slirp4netns) must die with it. The user's next build on the same store then succeeds.
func (e *e2eEnv) testRootlessKilled(t *testing.T, u *rootlessUser) {
	const marker = "rootless sleeper started"
	ctxDir := u.tempDir(t, "killed")
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"),
		"ARG BASE\nFROM $BASE\nRUN echo \""+marker+"\" && sleep 2917\n")
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := u.command(ctx, u.strata, "build", "--progress", "plain", "--build-arg", "BASE="+e.base("busybox:latest"), ctxDir)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// setpriv execs strata: the process started is the builder outside the namespace.
	parent := cmd.Process.Pid
	br := bufio.NewReader(pipe)
	seen := waitForLine(t, br, marker)
	userns := namespaceOfChild(t, parent, u.strata)
	// The check below sees the RUN's processes: the sleep (the shell forks it after the echo)
	// is in the namespace.
	sleeping := func() bool {
		return slices.ContainsFunc(buildProcesses(u.strata, userns), func(p string) bool {
			b, _ := os.ReadFile(filepath.Join("/proc", p, "cmdline"))
			return string(b) == "sleep\x002917\x00"
		})
	}
	for deadline := time.Now().Add(10 * time.Second); !sleeping(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the RUN's sleep is not among the processes in the build's namespace %s: %v", userns, describeProcesses(buildProcesses(u.strata, userns)))
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if err := cmd.Wait(); err == nil {
		t.Fatalf("strata exited 0 after SIGKILL:\n%s%s", seen, rest)
	}
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left = buildProcesses(u.strata, userns)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("5s after the builder was killed, processes of its build still run: %v", describeProcesses(left))
		killAll(left)
	}
	if mounts := mountsUnder(t, u.home); len(mounts) > 0 {
		t.Errorf("mounts left on the host after the killed build:\n%s", strings.Join(mounts, "\n"))
	}
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), "ARG BASE\nFROM $BASE\nRUN echo after the kill > /after\n")
	out := u.tempDir(t, "out")
	if r := u.build("--build-arg", "BASE="+e.base("busybox:latest"), "--iidfile", filepath.Join(out, "iid"), ctxDir); r.err != nil {
		t.Fatalf("the build after the killed one failed on the same store: %v\n%s", r.err, r.output())
	}
	readDigest(t, filepath.Join(out, "iid"))
}

// namespaceOfChild returns the user namespace (as /proc/<pid>/ns/user reads) of the child
// that the builder parent started in its namespace.
func namespaceOfChild(t *testing.T, parent int, exe string) string {
	t.Helper()
	for _, p := range processesOf(exe) {
		if procField(p, "PPid") == strconv.Itoa(parent) {
			if ns, err := os.Readlink(filepath.Join("/proc", p, "ns", "user")); err == nil {
				return ns
			}
		}
	}
	t.Fatalf("no child of the builder (pid %d) runs %s", parent, exe)
	return ""
}

// buildProcesses lists the live processes of a build: those running the strata binary exe
// and those in its user namespace userns. Zombies, dead already, are not counted.
func buildProcesses(exe, userns string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, d := range entries {
		p := d.Name()
		if p[0] < '0' || p[0] > '9' || strings.HasPrefix(procField(p, "State"), "Z") {
			continue
		}
		target, _ := os.Readlink(filepath.Join("/proc", p, "exe"))
		ns, _ := os.Readlink(filepath.Join("/proc", p, "ns", "user"))
		if target == exe || ns == userns {
			pids = append(pids, p)
		}
	}
	return pids
}

// procField is a field of /proc/<pid>/status; empty when the process is gone.
func procField(pid, field string) string {
	b, _ := os.ReadFile(filepath.Join("/proc", pid, "status"))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// describeProcesses names each pid with its uid and command line, for a failure message.
func describeProcesses(pids []string) []string {
	var out []string
	for _, p := range pids {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", p, "cmdline"))
		uid := strings.Fields(procField(p, "Uid") + " ?")[0]
		out = append(out, fmt.Sprintf("%s (uid %s): %s", p, uid, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))))
	}
	return out
}
