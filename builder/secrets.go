package builder

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/progress"
)

// Secrets and SSH agents reach a RUN step as BuildKit gives them: a secret as a read-only
// file (in memory: executor.MountFile) or an environment variable, an agent as a socket;
// only for the step that mounts them. Their values are never an input of anything the
// build keeps: a step's key covers the mount flags (id, target, env, mode, ...), not the
// value (nor the agent's keys), so changing a secret does not invalidate the cache
// (BuildKit's rule), though giving or not giving an optional one does; the value
// is added to the step's spec after its key is made (runKey never sees it), and lines of
// the build's output holding it are masked (redactSink).

// secretID is the id a secret mount reads, as BuildKit's dispatchSecret: id=, else
// source=, else the target's base name.
func secretID(m dockerfile.Mount) string {
	switch {
	case m.Source != "":
		return m.Source
	case m.CacheID != "":
		return m.CacheID
	}
	return path.Base(m.Target)
}

// sshID is the --ssh id an ssh mount forwards: "default" when none is given.
func sshID(m dockerfile.Mount) string {
	if m.CacheID == "" {
		return "default"
	}
	return m.CacheID
}

// given reports whether the build has what a secret or ssh mount reads; true for other
// mounts.
func (b *build) given(m dockerfile.Mount) bool {
	switch m.Type {
	case instructions.MountTypeSecret:
		_, ok := b.opts.Secrets[secretID(m)]
		return ok
	case instructions.MountTypeSSH:
		_, ok := b.opts.SSH[sshID(m)]
		return ok
	}
	return true
}

// checkSecrets refuses a step that requires a secret or an agent the build was not given
// (required=true), naming the flag that would give it.
func (b *build) checkSecrets(st dockerfile.Step) error {
	for _, m := range st.Mounts {
		switch {
		case m.Type == instructions.MountTypeSecret && m.Required:
			if _, ok := b.opts.Secrets[secretID(m)]; !ok {
				return fmt.Errorf("secret %s is required but was not given: pass --secret id=%s,src=FILE (or env=VAR)", secretID(m), secretID(m))
			}
		case m.Type == instructions.MountTypeSSH && m.Required:
			if _, ok := b.opts.SSH[sshID(m)]; !ok {
				return fmt.Errorf("ssh agent %s is required but was not given: pass --ssh %s (the agent of $SSH_AUTH_SOCK) or --ssh %s=KEYFILE", sshID(m), sshID(m), sshID(m))
			}
		}
	}
	return nil
}

// secretMount is a secret's file mount; ok is false when the step gets no file: the
// secret is not given and not required, or the mount names only an env= variable.
func (b *build) secretMount(m dockerfile.Mount) (em executor.Mount, ok bool, err error) {
	value, given := b.opts.Secrets[secretID(m)]
	if !given {
		return em, false, b.checkSecrets(dockerfile.Step{Mounts: []dockerfile.Mount{m}})
	}
	target := m.Target
	if m.Env != nil && target == "" {
		return em, false, nil
	}
	if target == "" {
		target = "/run/secrets/" + path.Base(secretID(m))
	}
	em = executor.Mount{Type: executor.MountFile, Target: target, ReadOnly: true, Data: value, Mode: 0o400}
	if m.Mode != nil {
		em.Mode = uint32(*m.Mode)
	}
	if m.UID != nil {
		em.UID = int(*m.UID)
	}
	if m.GID != nil {
		em.GID = int(*m.GID)
	}
	return em, true, nil
}

// secretEnv is the variables of the step's env= secret mounts that were given.
func (b *build) secretEnv(st dockerfile.Step) []string {
	var env []string
	for _, m := range st.Mounts {
		if m.Type != instructions.MountTypeSecret || m.Env == nil {
			continue
		}
		value, ok := b.opts.Secrets[secretID(m)]
		if !ok {
			continue
		}
		name := *m.Env
		if name == "" {
			// BuildKit's default for env= with no name: the id.
			name = secretID(m)
		}
		env = append(env, name+"="+string(value))
	}
	return env
}

// withEnv is env with set's variables replacing any of the same name.
func withEnv(env, set []string) []string {
	if len(set) == 0 {
		return env
	}
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.ContainsFunc(set, func(s string) bool { return strings.HasPrefix(s, k+"=") })
	})
	return append(out, set...)
}

// sshMount serves the agent of an ssh mount on a socket of its own for the step: the
// default target is BuildKit's /run/buildkit/ssh_agent.N (N counts the step's ssh
// mounts). ok is false when the agent is not given and not required.
func (b *build) sshMount(m dockerfile.Mount, n int) (em executor.Mount, closer io.Closer, ok bool, err error) {
	src, given := b.opts.SSH[sshID(m)]
	if !given {
		return em, nil, false, b.checkSecrets(dockerfile.Step{Mounts: []dockerfile.Mount{m}})
	}
	target := sshTarget(m, n)
	uid, gid, mode := 0, 0, os.FileMode(0o600)
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode) & 0o777
	}
	dir, err := b.socketDir()
	if err != nil {
		return em, nil, false, err
	}
	// A name of its own: stages run concurrently, and a name shared by two steps' mounts
	// (ssh-N) would hand one step the other's agent, or unlink it under it.
	sock := filepath.Join(dir, "ssh-"+strconv.FormatUint(sockSeq.Add(1), 10))
	closer, err = src.Listen(sock, uid, gid, mode)
	if err != nil {
		return em, nil, false, fmt.Errorf("RUN --mount=type=ssh,id=%s: %w", sshID(m), err)
	}
	return executor.Mount{Type: executor.MountBind, Source: sock, Target: target, ReadOnly: true}, closer, true, nil
}

// sockSeq numbers agent sockets, unique within the process.
var sockSeq atomic.Uint64

// socketDir is a directory for agent sockets, made once per build: under the build's
// work directory when the path fits a unix socket's 108 bytes (chroot isolation links
// the socket into the step's copy, which needs the same filesystem), else in $TMPDIR.
func (b *build) socketDir() (string, error) {
	b.sockOnce.Do(func() {
		dir := filepath.Join(b.tmp, "sock")
		if len(dir)+len("/ssh-0000000") < 100 {
			b.sockDir, b.sockErr = dir, os.Mkdir(dir, 0o700)
			if b.sockErr == nil {
				return
			}
		}
		// Removed by Build when it ends.
		b.sockDir, b.sockErr = os.MkdirTemp("", "strata-ssh-")
	})
	if b.sockErr != nil {
		return "", fmt.Errorf("making a directory for ssh agent sockets: %w", b.sockErr)
	}
	return b.sockDir, nil
}

// withSSHAuthSock points SSH_AUTH_SOCK at the step's first agent given, as BuildKit
// does, unless the step's environment sets it.
func (b *build) withSSHAuthSock(env []string, st dockerfile.Step) []string {
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "SSH_AUTH_SOCK=") }) {
		return env
	}
	n := 0
	for _, m := range st.Mounts {
		if m.Type != instructions.MountTypeSSH {
			continue
		}
		if _, ok := b.opts.SSH[sshID(m)]; ok {
			return append(env, "SSH_AUTH_SOCK="+sshTarget(m, n))
		}
		n++
	}
	return env
}

// sshTarget is where an ssh mount's socket is in the step: BuildKit's
// /run/buildkit/ssh_agent.N unless target= says, N counting the step's ssh mounts.
func sshTarget(m dockerfile.Mount, n int) string {
	if m.Target != "" {
		return m.Target
	}
	return "/run/buildkit/ssh_agent." + strconv.Itoa(n)
}

// redactSink masks the build's secret values in everything it forwards that carries
// text a step or a library wrote: a step that prints a secret shows "****" instead.
// Each line of a multi-line secret (a key file) is masked on its own, as output comes
// a line at a time; lines shorter than minRedact are not, or every short word would be.
type redactSink struct {
	next   progress.Sink
	values []string
}

const minRedact = 4

func newRedactSink(next progress.Sink, secrets map[string][]byte) progress.Sink {
	var values []string
	for _, v := range secrets {
		for _, line := range strings.Split(string(v), "\n") {
			line = strings.TrimRight(line, "\r")
			if len(strings.TrimSpace(line)) < minRedact {
				continue
			}
			values = append(values, line, progress.Inert(line))
		}
	}
	if len(values) == 0 || next == nil {
		return next
	}
	// Longest first, so a value that contains another is masked whole.
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	return &redactSink{next: next, values: slices.Compact(values)}
}

func (r *redactSink) redact(s string) string {
	for _, v := range r.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "****")
		}
	}
	return s
}

func (r *redactSink) Event(e progress.Event) {
	switch ev := e.(type) {
	case progress.VertexLog:
		ev.Line = r.redact(ev.Line)
		e = ev
	case progress.Warning:
		ev.Message = r.redact(ev.Message)
		e = ev
	case progress.Message:
		ev.Text = r.redact(ev.Text)
		e = ev
	case progress.VertexError:
		ev.Message = r.redact(ev.Message)
		e = ev
	}
	r.next.Event(e)
}
