package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"
)

// A git source is what BuildKit clones rather than downloads: an ADD source
// or a build context such as https://host/repo.git#ref:subdir,
// git@host:repo.git or git://host/repo. It is parsed by BuildKit's own
// parser (dfgitutil), so exactly the sources docker build clones are cloned.

// gitSource is an ADD of a git repository. Its exported fields are what the
// step's key covers: the resolved commit fixes the tree, the others how it
// is laid out. The files are listed only when the step runs, like a
// stage's: a cache hit costs one ls-remote and no clone.
type gitSource struct {
	// Remote is the repository, credentials stripped.
	Remote string `json:"remote"`
	// Ref is the ref the commit was resolved from (refs/heads/main), kept
	// in the key only with .git, whose HEAD names it.
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit"`
	Subdir string `json:"subdir,omitempty"`
	// KeepGitDir: the repository's .git lands too (only without Subdir, as
	// in BuildKit).
	KeepGitDir bool `json:"keepGitDir,omitempty"`
	Submodules bool `json:"submodules"`
	// MTime is "commit" for the commit's time on every file, else the step
	// time (BuildKit's "checkout": SOURCE_DATE_EPOCH with it set).
	MTime string `json:"mtime,omitempty"`

	// remote is the repository as written, with its credentials.
	remote string
	// ref is the ref to fetch: the resolved one, or the commit.
	ref string
	tmp string // where the clone is made
	// commitAt is the commit's time, read by clone for MTime "commit".
	commitAt time.Time
}

// parseGitSource is BuildKit's test and parse of a git source. ok is false
// for anything else (a local path, a plain URL). A source BuildKit takes for
// git but cannot parse is an error.
func parseGitSource(src string) (*dfgitutil.GitRef, bool, error) {
	ref, isGit, err := dfgitutil.ParseGitRef(src)
	if err != nil {
		if isGit {
			return nil, true, fmt.Errorf("git source %s: %w", redactURL(src), err)
		}
		return nil, false, nil
	}
	if ref.IndistinguishableFromLocal {
		// github.com/org/repo: a local path too; BuildKit's ADD takes it as one.
		return nil, false, nil
	}
	return ref, true, nil
}

// GitContext clones a build context argument docker build would clone
// (github.com/org/repo included, which the caller tries as a local path
// first) into a new directory below tmp: the context directory, and the
// directory to remove after the build, and the commit cloned (provenance
// records it). ok is false for anything else.
func GitContext(ctx context.Context, arg, tmp string) (dir, cleanup, commit string, ok bool, err error) {
	ref, isGit, err := dfgitutil.ParseGitRef(arg)
	if err != nil {
		if isGit {
			return "", "", "", true, fmt.Errorf("build context %s: %w", redactURL(arg), err)
		}
		return "", "", "", false, nil
	}
	if ref.IndistinguishableFromLocal {
		ref.Remote = "https://" + ref.Remote
	}
	g, err := resolveGit(ctx, ref, "", nil, tmp)
	if err != nil {
		return "", "", "", true, fmt.Errorf("build context: %w", err)
	}
	dir, cleanup, err = g.clone(ctx)
	if err != nil {
		return "", "", "", true, fmt.Errorf("build context: %w", err)
	}
	if g.Subdir != "" {
		sub, err := gitSubdir(dir, g.Subdir)
		if err != nil {
			os.RemoveAll(cleanup)
			return "", "", "", true, fmt.Errorf("build context %s: %w", g.Remote, err)
		}
		dir = sub
	}
	return dir, cleanup, g.Commit, true, nil
}

// planGit resolves an ADD git source's ref to a commit (git ls-remote),
// checking --checksum; the clone waits for the step to run.
func (op *copyOp) planGit(ctx context.Context, ref *dfgitutil.GitRef, dest string) (planned, error) {
	g, err := op.dl.resolveGit(ctx, ref, op.checksum, op.keepGitDir)
	if err != nil {
		return planned{}, err
	}
	algo := "sha1"
	if len(g.Commit) == 64 {
		algo = "sha256"
	}
	op.dl.sources.add(Source{Kind: "git", Ref: g.Remote, Digest: algo + ":" + g.Commit})
	return planned{Dst: dest, Git: g, srcPath: g.Remote}, nil
}

// resolveGit makes the gitSource of ref. checksum is ADD --checksum (a
// commit prefix); keep is --keep-git-dir (nil: not given).
func resolveGit(ctx context.Context, ref *dfgitutil.GitRef, checksum string, keep *bool, tmp string) (*gitSource, error) {
	if checksum != "" && ref.Checksum != "" && checksum != ref.Checksum {
		return nil, fmt.Errorf("checksum mismatch %q != %q", checksum, ref.Checksum)
	}
	if checksum == "" {
		checksum = ref.Checksum
	}
	if checksum != "" && !hexRE.MatchString(checksum) {
		return nil, fmt.Errorf("invalid checksum %s for Git URL, expected hex commit hash", checksum)
	}
	if keep != nil && ref.KeepGitDir != nil && *keep != *ref.KeepGitDir {
		return nil, errors.New("inconsistent keep-git-dir configuration")
	}
	if ref.KeepGitDir != nil {
		keep = ref.KeepGitDir
	}
	g := &gitSource{
		Remote:     redactURL(ref.Remote),
		Subdir:     strings.TrimPrefix(path.Join("/", ref.SubDir), "/"),
		Submodules: ref.Submodules == nil || *ref.Submodules,
		MTime:      ref.MTime,
		remote:     ref.Remote,
		tmp:        tmp,
	}
	if g.MTime == "checkout" {
		g.MTime = ""
	}
	// .git only with the whole repository, as in BuildKit.
	g.KeepGitDir = keep != nil && *keep && g.Subdir == ""
	switch {
	case isCommitSHA(ref.Ref):
		g.Commit, g.ref, g.Ref = ref.Ref, ref.Ref, ref.Ref
	case ref.FetchByCommit:
		// The commit is fetched by its hash; the ref only names it in .git.
		if !isCommitSHA(checksum) {
			return nil, fmt.Errorf("%s: fetch-by-commit requires a full commit SHA checksum, got %q", g.Remote, checksum)
		}
		g.Commit, g.ref, g.Ref = checksum, checksum, ref.Ref
		if g.Ref != "" && !strings.HasPrefix(g.Ref, "refs/") {
			g.Ref = "refs/heads/" + g.Ref
		}
	default:
		if err := g.lsRemote(ctx, ref.Ref); err != nil {
			return nil, err
		}
	}
	if checksum != "" && !strings.HasPrefix(g.Commit, checksum) {
		return nil, fmt.Errorf("%s: expected checksum to match %s, got %s", g.Remote, checksum, g.Commit)
	}
	if !g.KeepGitDir {
		g.Ref = ""
	}
	return g, nil
}

var (
	hexRE           = regexp.MustCompile(`^[a-fA-F0-9]+$`)
	commitRE        = regexp.MustCompile(`^([a-f0-9]{40}|[a-f0-9]{64})$`)
	defaultBranchRE = regexp.MustCompile(`(?m)^ref: (refs/heads/\S+)\tHEAD$`)
)

func isCommitSHA(s string) bool { return commitRE.MatchString(s) }

// lsRemote resolves ref (the default branch when empty) as BuildKit does: a
// full ref, then a branch, then a tag (an annotated tag to its commit).
func (g *gitSource) lsRemote(ctx context.Context, ref string) error {
	home, err := os.MkdirTemp(g.tmp, "git-home-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	run := gitRunner{home: home, remote: g.Remote}
	if ref == "" {
		out, err := run.git(ctx, "", "ls-remote", "--symref", "--", g.remote, "HEAD")
		if err != nil {
			return err
		}
		m := defaultBranchRE.FindStringSubmatch(string(out))
		if m == nil {
			return fmt.Errorf("%s: could not find the default branch", g.Remote)
		}
		ref = m[1]
	}
	if strings.HasPrefix(ref, "-") {
		return fmt.Errorf("%s: invalid ref %q", g.Remote, ref)
	}
	out, err := run.git(ctx, "", "ls-remote", "--", g.remote, ref, ref+"^{}")
	if err != nil {
		return err
	}
	full := "refs/" + strings.TrimPrefix(ref, "refs/")
	head := "refs/heads/" + strings.TrimPrefix(ref, "refs/heads/")
	tag := "refs/tags/" + strings.TrimPrefix(ref, "refs/tags/")
	found := map[string]string{}
	for line := range strings.SplitSeq(string(out), "\n") {
		sha, name, _ := strings.Cut(line, "\t")
		found[name] = sha
	}
	switch {
	case found[full] != "":
		g.Ref, g.Commit = full, found[full]
	case found[head] != "":
		g.Ref, g.Commit = head, found[head]
	case found[tag+"^{}"] != "":
		// An annotated tag: the commit it points at.
		g.Ref, g.Commit = tag, found[tag+"^{}"]
	case found[tag] != "":
		g.Ref, g.Commit = tag, found[tag]
	default:
		return fmt.Errorf("%s: repository does not contain ref %s", g.Remote, ref)
	}
	if !isCommitSHA(g.Commit) {
		return fmt.Errorf("%s: invalid commit %q for ref %s", g.Remote, g.Commit, ref)
	}
	g.ref = g.Ref
	return nil
}

// clone checks the commit out into a fresh directory below g.tmp, outside
// any rootfs, and returns the tree to copy (the subdirectory when one is
// asked for) and the directory to remove.
func (g *gitSource) clone(ctx context.Context) (tree, cleanup string, err error) {
	dir, err := os.MkdirTemp(g.tmp, "git-")
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	home := filepath.Join(dir, "home")
	work := filepath.Join(dir, "tree")
	gitDir := filepath.Join(dir, "git")
	if g.KeepGitDir {
		gitDir = filepath.Join(work, ".git")
	}
	for _, d := range []string{home, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", "", err
		}
	}
	run := gitRunner{home: home, remote: g.Remote}
	init := []string{"-c", "init.defaultBranch=master", "init", "-q"}
	if len(g.Commit) == 64 {
		init = append(init, "--object-format=sha256")
	}
	// .git kept: an ordinary repository in the tree; else a bare one
	// beside it, so the tree holds only the checkout.
	if g.KeepGitDir {
		init = append(init, work)
	} else {
		init = append(init, "--bare", gitDir)
	}
	if _, err := run.git(ctx, "", init...); err != nil {
		return "", "", err
	}
	rg := run
	rg.gitDir, rg.work = gitDir, work
	if _, err := rg.git(ctx, work, "remote", "add", "origin", g.remote); err != nil {
		return "", "", err
	}
	if err := g.fetch(ctx, rg); err != nil {
		return "", "", err
	}
	if _, err := rg.git(ctx, work, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", g.Commit); err != nil {
		return "", "", err
	}
	if g.Submodules {
		if _, err := rg.git(ctx, work, "submodule", "update", "--init", "--recursive", "--depth=1"); err != nil {
			return "", "", err
		}
	}
	if g.KeepGitDir {
		// What the image keeps of the remote: no credentials, no reflog.
		if _, err := rg.git(ctx, work, "remote", "set-url", "origin", g.Remote); err != nil {
			return "", "", err
		}
		// The branch may have moved between ls-remote and the fetch: its ref names the
		// commit the key holds, and the refs of the whole-history fallback go.
		if g.ref != g.Commit && strings.HasPrefix(g.ref, "refs/") {
			if _, err := rg.git(ctx, work, "update-ref", "--no-deref", g.ref, g.Commit); err != nil {
				return "", "", err
			}
		}
		out, err := rg.git(ctx, work, "for-each-ref", "--format=%(refname)", "refs/remotes")
		if err != nil {
			return "", "", err
		}
		for _, r := range strings.Fields(string(out)) {
			if _, err := rg.git(ctx, work, "update-ref", "-d", r); err != nil {
				return "", "", err
			}
		}
		if _, err := rg.git(ctx, work, "reflog", "expire", "--all", "--expire=now"); err != nil {
			return "", "", err
		}
		os.Remove(filepath.Join(gitDir, "FETCH_HEAD"))
	}
	if g.Submodules {
		// A submodule's .git file names this clone's temporary directory.
		if err := removeSubmoduleGitFiles(work, g.KeepGitDir); err != nil {
			return "", "", err
		}
	}
	if g.MTime == "commit" {
		if g.commitAt, err = g.commitTime(ctx, rg); err != nil {
			return "", "", err
		}
	}
	if err := normalizeModes(work); err != nil {
		return "", "", err
	}
	return work, dir, nil
}

// normalizeModes gives the checked-out files the modes git means, whatever
// strata's umask: 0755 for directories and executables, 0644 for the rest
// (the .git directory is left as git made it).
func normalizeModes(work string) error {
	return filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p == filepath.Join(work, ".git") {
			return filepath.SkipDir
		}
		mode := fs.FileMode(0o644)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return nil
		case d.IsDir():
			mode = 0o755
		default:
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Mode()&0o111 != 0 {
				mode = 0o755
			}
		}
		return os.Chmod(p, mode)
	})
}

// gitSubdir is the directory sub of the checkout work: every component a
// directory, not a symlink, as BuildKit requires, so it cannot lead out of
// the checkout.
func gitSubdir(work, sub string) (string, error) {
	cur := work
	for c := range strings.SplitSeq(sub, "/") {
		if c == "" {
			continue
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", fmt.Errorf("subdirectory %s: %w", sub, errors.Unwrap(err))
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("subdirectory %s: %s is not a directory", sub, c)
		}
	}
	return cur, nil
}

// fetch brings the commit into the clone's repository: the ref it was
// resolved from (shallow where the server allows), or the commit itself.
func (g *gitSource) fetch(ctx context.Context, rg gitRunner) error {
	spec := g.Commit
	if g.ref != g.Commit {
		spec = "+" + g.ref + ":" + g.ref
	}
	_, err := rg.git(ctx, rg.work, "fetch", "-q", "--no-tags", "--depth=1", "origin", spec)
	if err == nil && rg.has(ctx, g.Commit) {
		return nil
	}
	if g.ref != g.Commit {
		// The branch moved since ls-remote, or the server refused: the
		// whole history, where the resolved commit must be.
		_, err = rg.git(ctx, rg.work, "fetch", "-q", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
	}
	if err != nil {
		return err
	}
	if !rg.has(ctx, g.Commit) {
		return fmt.Errorf("%s: commit %s not found after fetching %s", g.Remote, g.Commit, g.ref)
	}
	return nil
}

// removeSubmoduleGitFiles removes the .git files checked-out submodules
// have (the top .git too unless keep).
func removeSubmoduleGitFiles(work string, keep bool) error {
	return filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() != ".git" || (keep && p == filepath.Join(work, ".git")) {
			return nil
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}

// commitTime is the committer time of the commit, for ?mtime=commit.
func (g *gitSource) commitTime(ctx context.Context, rg gitRunner) (time.Time, error) {
	out, err := rg.git(ctx, rg.work, "log", "-1", "--format=%ct", g.Commit+"^{commit}")
	if err != nil {
		return time.Time{}, err
	}
	s, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: commit time %q: %w", g.Remote, out, err)
	}
	return time.Unix(s, 0).UTC(), nil
}

// gitRunner runs the git binary, as BuildKit does, in a clean environment:
// no system or user configuration (HOME is an empty directory of the
// clone's), no prompt for credentials, and only the network protocols
// (no file:// or ext:: for a hostile submodule URL to read the host).
type gitRunner struct {
	home, remote string
	gitDir, work string
}

// gitProtocols are the transports git may use, for the repository and its
// submodules alike.
const gitProtocols = "http:https:ssh:git"

func (r gitRunner) git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	full := []string{"-c", "core.hooksPath=" + os.DevNull}
	if r.gitDir != "" {
		full = append(full, "--git-dir", r.gitDir, "--work-tree", r.work)
	}
	full = append(full, args...)
	for {
		cmd := exec.CommandContext(ctx, "git", full...)
		cmd.Dir = dir
		cmd.Env = gitEnv(r.home)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil {
			return stdout.Bytes(), nil
		}
		// Dumb HTTP and some servers refuse shallow fetches: again, whole.
		if msg := stderr.String(); strings.Contains(msg, "shallow") || strings.Contains(msg, "--depth") {
			if trimmed := without(full, "--depth=1"); len(trimmed) < len(full) {
				full = trimmed
				continue
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: git %s: %s", r.remote, gitVerb(args), lastLine(redactText(stderr.String(), err)))
	}
}

// has reports whether the clone holds the commit.
func (r gitRunner) has(ctx context.Context, commit string) bool {
	_, err := r.git(ctx, r.work, "cat-file", "-e", commit+"^{commit}")
	return err == nil
}

func gitEnv(home string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ALLOW_PROTOCOL=" + gitProtocols,
		"GIT_SSH_COMMAND=ssh -F " + os.DevNull + " -o StrictHostKeyChecking=accept-new -o BatchMode=yes",
		"LC_ALL=C",
	}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy", "SSH_AUTH_SOCK"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// gitVerb names the git command of args for a message.
func gitVerb(args []string) string {
	for i := 0; i < len(args); i++ {
		if args[i] == "-c" {
			i++
			continue
		}
		if !strings.HasPrefix(args[i], "-") {
			return args[i]
		}
	}
	return ""
}

func without(args []string, drop string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a != drop {
			out = append(out, a)
		}
	}
	return out
}

// lastLine is the stderr line of git's that says why: its first "fatal:"
// line (a submodule's clone retries and ends in "aborting"), else its last.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "fatal: ") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// redactText strips credentials of URLs git printed; with no output, the
// exit status.
func redactText(s string, err error) string {
	if strings.TrimSpace(s) == "" {
		return err.Error()
	}
	return credentialsRE.ReplaceAllString(s, "$1xxxxx@")
}

var credentialsRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@`)

// RedactURL is redactURL for the build command's messages about a context
// URL.
func RedactURL(s string) string { return redactURL(s) }

// redactURL is a URL without its password or token, for keys and
// messages. An scp-like address (git@host:repo) has no secret to strip.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else if u.Scheme == "http" || u.Scheme == "https" {
		// A token alone in the user field.
		u.User = url.User("xxxxx")
	}
	return u.String()
}

// describe is the git source as an explain record shows it.
func (g *gitSource) describe() string {
	s := "commit " + g.Commit
	if g.Subdir != "" {
		s += ", subdir " + g.Subdir
	}
	if g.KeepGitDir {
		s += ", .git of " + g.Ref
	}
	if !g.Submodules {
		s += ", no submodules"
	}
	if g.MTime != "" {
		s += ", mtime " + g.MTime
	}
	return s
}
