package builder

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// gitRepo is a repository served over git's dumb HTTP protocol.
type gitRepo struct {
	t    *testing.T
	work string // the working tree commits are made in
	URL  string // https://.../repo.git as ADD names it
}

// newGitRepo makes a repository with files committed on main and serves
// a bare copy of it over dumb HTTP.
func newGitRepo(t *testing.T, files map[string]string) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root := t.TempDir()
	r := &gitRepo{t: t, work: filepath.Join(root, "work")}
	r.git("", "init", "-q", "-b", "main", r.work)
	r.commit(files)
	r.git("", "clone", "-q", "--bare", r.work, filepath.Join(root, "srv", "repo.git"))
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(root, "srv"))))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/repo.git"
	r.publish()
	return r
}

func (r *gitRepo) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x",
		"GIT_AUTHOR_DATE=2021-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2021-01-01T00:00:00Z", "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files ("->target" makes a symlink, "#x" an executable) and
// commits them; it returns the commit.
func (r *gitRepo) commit(files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.Remove(p)
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else if body, ok := strings.CutPrefix(content, "#x"); ok {
			err = os.WriteFile(p, []byte(body), 0o755)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			r.t.Fatal(err)
		}
	}
	r.git(r.work, "add", "-A")
	r.git(r.work, "commit", "-q", "-m", "c")
	return r.git(r.work, "rev-parse", "HEAD")
}

// publish pushes main and tags to the served copy and updates the files
// the dumb protocol reads.
func (r *gitRepo) publish() {
	r.t.Helper()
	bare := filepath.Join(filepath.Dir(r.work), "srv", "repo.git")
	r.git(r.work, "push", "-q", "--force", "--tags", bare, "main")
	r.git(bare, "update-server-info")
}

func TestAddGit(t *testing.T) {
	repo := newGitRepo(t, map[string]string{
		"README":          "hello\n",
		"bin/run":         "#x#!/bin/sh\n",
		"docs/guide.txt":  "guide\n",
		"link-out":        "->/etc/passwd",
		"docs/up":         "->../../../..",
		".dockerignore":   "README\n",
		"docs/.gitignore": "x\n",
	})
	epoch := time.Unix(1000, 0).UTC()
	tb := newTestBuild(t, baseFiles)
	tb.epoch = &epoch
	res, out := tb.mustBuild(baseDockerfile + "ADD " + repo.URL + " /src\nADD " + repo.URL + "#main:docs /docs/\n")
	root := rootfs(t, res.Image)
	for p, want := range map[string]string{"src/README": "hello\n", "src/docs/guide.txt": "guide\n", "docs/guide.txt": "guide\n"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	for p, mode := range map[string]os.FileMode{"src/README": 0o644, "src/bin/run": 0o755, "src/bin": 0o755 | os.ModeDir} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode || !fi.ModTime().Equal(epoch) {
			t.Errorf("%s: mode %v mtime %v, want %v and SOURCE_DATE_EPOCH", p, fi.Mode(), fi.ModTime(), mode)
		}
		if uid, gid := ownerIDs(fi); uid != 0 || gid != 0 {
			t.Errorf("%s owned by %d:%d, want root", p, uid, gid)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "src/link-out")); err != nil || target != "/etc/passwd" {
		t.Errorf("symlink: %q %v, want it kept as written", target, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "src/.git")); err == nil {
		t.Error("ADD without --keep-git-dir left .git")
	}
	if _, err := os.Lstat(filepath.Join(root, "docs/docs")); err == nil {
		t.Error("subdir: the whole repository landed")
	}

	// Reproducible: another store, another clone, the same image.
	tb2 := newTestBuild(t, baseFiles)
	tb2.epoch = &epoch
	res2, _ := tb2.mustBuild(baseDockerfile + "ADD " + repo.URL + " /src\nADD " + repo.URL + "#main:docs /docs/\n")
	if d1, d2 := digestOf(t, res.Image), digestOf(t, res2.Image); d1 != d2 {
		t.Errorf("two builds of one commit: %s and %s", d1, d2)
	}

	// The same commit hits the cache; a new commit on the branch misses.
	again := func() (string, string) {
		res, out := tb.mustBuild(baseDockerfile + "ADD " + repo.URL + " /src\n")
		b, _ := readImageFile(t, res, "src/README")
		return out, b
	}
	if out, readme := again(); !strings.Contains(out, "#3 CACHED") || readme != "hello\n" {
		t.Errorf("same commit: README %q, not cached:\n%s", readme, out)
	}
	repo.commit(map[string]string{"README": "changed\n"})
	repo.publish()
	if out, readme := again(); strings.Contains(out, "#3 CACHED") || readme != "changed\n" {
		t.Errorf("new commit: README %q, cached:\n%s", readme, out)
	}
	if !strings.Contains(out, "#4 DONE") {
		t.Errorf("first build:\n%s", out)
	}
}

func TestAddGitKeepGitDirAndChecksum(t *testing.T) {
	repo := newGitRepo(t, map[string]string{"a": "a\n"})
	head := repo.git(repo.work, "rev-parse", "HEAD")
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile + "ADD --keep-git-dir=true --chown=app " + repo.URL + "#main /src\n")
	root := rootfs(t, res.Image)
	fi, err := os.Stat(filepath.Join(root, "src/.git"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("--keep-git-dir: .git %v %v", fi, err)
	}
	if uid, _ := ownerIDs(fi); uid != 1000 {
		t.Errorf(".git owned by %d, want --chown's 1000", uid)
	}
	cmd := exec.Command("git", "--git-dir", filepath.Join(root, "src/.git"), "rev-parse", "HEAD")
	if got, err := cmd.Output(); err != nil || strings.TrimSpace(string(got)) != head {
		t.Errorf("the kept .git's HEAD is %q (%v), want %s", got, err, head)
	}

	res, _ = tb.mustBuild(baseDockerfile + "ADD " + repo.URL + "?mtime=commit /src\n")
	if fi, err := os.Stat(filepath.Join(rootfs(t, res.Image), "src/a")); err != nil || !fi.ModTime().Equal(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("?mtime=commit: %v %v, want the commit's time", fi, err)
	}

	tb.mustBuild(baseDockerfile + "ADD --checksum=" + head[:12] + " " + repo.URL + " /src\n")
	_, _, err = tb.build(baseDockerfile + "ADD --checksum=0000000 " + repo.URL + " /src\n")
	if err == nil || !strings.Contains(err.Error(), "expected checksum to match 0000000, got "+head) {
		t.Errorf("wrong checksum: %v", err)
	}
	_, _, err = tb.build(baseDockerfile + "ADD " + repo.URL + "#nope /src\n")
	if err == nil || !strings.Contains(err.Error(), "does not contain ref nope") {
		t.Errorf("missing ref: %v", err)
	}
}

// TestGitCloneErrors checks a failing clone says, in one line, the URL
// without its credentials and git's last stderr line.
func TestGitCloneErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/missing.git"
	ref, ok, err := parseGitSource(u + "#main")
	if !ok || err != nil {
		t.Fatalf("parse: %v %v", ok, err)
	}
	_, err = resolveGit(t.Context(), ref, "", nil, t.TempDir())
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "user:xxxxx@") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("error %q: want one line, the URL redacted, git's reason", err)
	}
}

// TestGitSubmoduleProtocols checks a submodule cannot be fetched with
// file:// or ext:: (a hostile repository reading the host), whatever git
// allows by default.
func TestGitSubmoduleProtocols(t *testing.T) {
	secret := newGitRepo(t, map[string]string{"secret": "host file\n"})
	repo := newGitRepo(t, map[string]string{"a": "a\n"})
	repo.git(repo.work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "file://"+secret.work, "sub")
	repo.git(repo.work, "commit", "-q", "-m", "sub")
	repo.publish()
	tb := newTestBuild(t, baseFiles)
	_, _, err := tb.build(baseDockerfile + "ADD " + repo.URL + " /src\n")
	if err == nil || !strings.Contains(err.Error(), "transport 'file' not allowed") {
		t.Errorf("file:// submodule: %v, want it refused", err)
	}
	tb.mustBuild(baseDockerfile + "ADD " + repo.URL + "?submodules=false /src\n")
}

// TestAddGitHostileTree checks trees git itself would never write, made
// by hand (a ".." entry; a symlink and a directory of one name, the
// directory's file meant to land through the symlink), write nothing
// outside the build: the step fails or lands them inside the layer.
func TestAddGitHostileTree(t *testing.T) {
	outside := t.TempDir()
	repo := newGitRepo(t, map[string]string{"a": "a\n"})
	hash := func(input string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Stdin = repo.work, strings.NewReader(input)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	blob := hash("pwned\n", "hash-object", "-w", "--stdin")
	sub := hash("100644 blob "+blob+"\tx\n", "mktree")
	link := hash(outside, "hash-object", "-w", "--stdin")
	for _, tree := range []string{
		"040000 tree " + sub + "\t..\n",
		"120000 blob " + link + "\tesc\n040000 tree " + sub + "\tesc\n",
	} {
		commit := hash("", "commit-tree", "-m", "hostile", hash(tree, "mktree"))
		repo.git(repo.work, "update-ref", "refs/heads/main", commit)
		repo.publish()
		tb := newTestBuild(t, baseFiles)
		res, _, err := tb.build(baseDockerfile + "ADD " + repo.URL + " /src\n")
		t.Logf("%q: %v", tree, err)
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Fatalf("%q: wrote %v outside the build", tree, entries)
		}
		if err == nil {
			root := rootfs(t, res.Image)
			if _, err := os.Stat(filepath.Join(root, "x")); err == nil {
				t.Errorf("%q: x landed above the destination", tree)
			}
		}
	}
}

func digestOf(t *testing.T, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}
