package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startBuild starts `strata build` with args and returns once a line of its output holds
// marker; wait ends the build and returns its result.
func (e *e2eEnv) startBuild(t *testing.T, marker string, args ...string) (wait func() result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	cmd := exec.CommandContext(ctx, e.strata, append([]string{"build", "--progress", "plain"}, args...)...)
	cmd.Env = append(cleanEnv(), "TMPDIR="+e.tmp)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(pipe)
	seen := waitForLine(t, br, marker)
	return func() result {
		rest, _ := io.ReadAll(br)
		err := cmd.Wait()
		cancel()
		return result{stdout: stdout.String(), stderr: seen + string(rest), err: err}
	}
}

// testStorePrivate plants a setuid shell, a world-writable block device node and a setuid
// file in a cache mount, in a store left 0755 as an older strata made it, and checks as
// user nobody that nothing of the store can be opened or run, while the build runs and after.
func (e *e2eEnv) testStorePrivate(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	// Parents any user can traverse: the store's own modes are what is tested.
	parent, err := os.MkdirTemp("", "strata-store-private-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	store := filepath.Join(parent, "store")
	for _, d := range []string{"snapshots/sha256", "tmp", "build-tmp", "cache-mounts"} {
		if err := os.MkdirAll(filepath.Join(store, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(parent, 0o755)
	wait := e.startBuild(t, "planted", "--root", store, "--build-arg", "BASE="+e.base("busybox:latest"), e.context(t, "store-private", nil))
	checkPrivate(t, store, "while the build runs")
	if r := wait(); r.err != nil {
		t.Fatalf("build: %v\n%s", r.err, r.output())
	}
	checkPrivate(t, store, "after the build")
}

// checkPrivate lists every path of the store as root and has user nobody try to open each
// and to run each planted setuid shell.
func checkPrivate(t *testing.T, store, when string) {
	t.Helper()
	var paths, shells []string
	filepath.WalkDir(store, func(p string, d os.DirEntry, err error) error {
		if err == nil {
			paths = append(paths, p)
			if d.Name() == "rootsh" {
				shells = append(shells, p)
			}
		}
		return nil
	})
	if len(shells) == 0 {
		t.Fatalf("%s: no planted shell found in the store", when)
	}
	// The redirection is on a compound command: one failing on a special builtin (":")
	// would end the shell.
	script := `while IFS= read -r f; do if { true; } 2>/dev/null < "$f"; then echo "opened $f"; fi; done
for f in "$@"; do "$f" true 2>/dev/null && echo "ran $f"; done; true`
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"/bin/busybox", "sh", "-c", script, "sh")
	cmd.Args = append(cmd.Args, shells...)
	cmd.Stdin = strings.NewReader(strings.Join(paths, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: probing as nobody: %v\n%s", when, err, out)
	}
	if len(out) > 0 {
		t.Errorf("%s: user nobody reached the store (%d paths tried):\n%s", when, len(paths), out)
	}
	for _, d := range []string{".", "snapshots", "tmp", "build-tmp", "cache-mounts"} {
		if fi, err := os.Stat(filepath.Join(store, d)); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %s is %v (%v), want 0700", when, d, fi.Mode().Perm(), err)
		}
	}
}

// testUmask builds the same Dockerfile under umask 077 and 022, in two stores: the images
// are the same.
func (e *e2eEnv) testUmask(t *testing.T) {
	ctxDir := e.context(t, "umask", nil)
	var digests []string
	for _, mask := range []string{"077", "022"} {
		iid := filepath.Join(t.TempDir(), "iid")
		args := []string{"build", "--progress", "plain", "--root", filepath.Join(t.TempDir(), "store"),
			"--source-date-epoch", epoch, "--build-arg", "BASE=" + e.base("busybox:latest"), "--iidfile", iid, ctxDir}
		cmd := exec.Command("/bin/sh", append([]string{"-c", `umask ` + mask + `; exec "$0" "$@"`, e.strata}, args...)...)
		cmd.Env = append(cleanEnv(), "TMPDIR="+e.tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build under umask %s: %v\n%s", mask, err, out)
		}
		digests = append(digests, readDigest(t, iid))
	}
	if digests[0] != digests[1] {
		t.Errorf("umask 077 gives %s, umask 022 gives %s", digests[0], digests[1])
	}
}

// testPruneDuringBuild runs prune while a build is in a RUN: with --force it fails at once
// naming the cause, without it waits for the build, which succeeds; the store builds after.
func (e *e2eEnv) testPruneDuringBuild(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	wait := e.startBuild(t, "prune me now", "--root", store, "--build-arg", "BASE="+e.base("busybox:latest"),
		e.context(t, "prune-during-build", nil))
	r := e.run(nil, nil, "prune", "--force", "--root", store)
	checkFailure(t, r, []string{`in use by another strata process`})
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	prune := exec.CommandContext(ctx, e.strata, "prune", "--root", store)
	prune.Env = cleanEnv()
	var pruneOut strings.Builder
	prune.Stdout = &pruneOut
	pipe, err := prune.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := prune.Start(); err != nil {
		t.Fatal(err)
	}
	waitForLine(t, bufio.NewReader(pipe), "waiting for the builds using the store")
	pruned := make(chan error, 1)
	go func() { pruned <- prune.Wait() }()
	build := wait()
	if build.err != nil {
		t.Fatalf("the build failed while prune waited: %v\n%s", build.err, build.output())
	}
	select {
	case err := <-pruned:
		if err != nil {
			t.Fatalf("prune: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("prune still waits after the build ended")
	}
	if !strings.Contains(pruneOut.String(), "removed") {
		t.Errorf("prune printed %q", pruneOut.String())
	}
	e.checkStoreUsable(t, store)
}

// testOutputsOnTheHost: outputs never follow a symlink planted where they go, and a local
// export of an image holding a setuid-root shell and a 0666 block device gives the host
// neither (files owned by the caller, no setuid bit, no device node).
func (e *e2eEnv) testOutputsOnTheHost(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	writeFile(t, victim, "precious\n")
	for _, name := range []string{"iid", "meta.json", "image.tar"} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	local := filepath.Join(dir, "rootfs")
	ctxDir := e.context(t, "store-private", nil)
	e.mustBuild(t, "--root", filepath.Join(t.TempDir(), "store"), "--build-arg", "BASE="+e.base("busybox:latest"),
		"--iidfile", filepath.Join(dir, "iid"), "--metadata-file", filepath.Join(dir, "meta.json"),
		"-o", "type=oci,dest="+filepath.Join(dir, "image.tar"), "-o", "type=local,dest="+local, ctxDir)
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
		t.Errorf("the symlinks' target was written: %q, %v", b, err)
	}
	for _, name := range []string{"iid", "meta.json", "image.tar"} {
		if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v (%v), want a regular 0644 file", name, fi.Mode(), err)
		}
	}
	filepath.WalkDir(local, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		if fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeDevice) != 0 {
			t.Errorf("the local export holds %s with mode %v", p, fi.Mode())
		}
		if uid, _ := fileOwner(fi); uid != os.Geteuid() {
			t.Errorf("the local export holds %s owned by %d", p, uid)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(local, "rootsh")); err != nil {
		t.Errorf("the planted file itself is missing from the export: %v", err)
	}
}

func fileOwner(fi os.FileInfo) (int, int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}
