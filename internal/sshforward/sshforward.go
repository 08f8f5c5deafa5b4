// Package sshforward gives RUN --mount=type=ssh steps an SSH agent: the user's own
// (--ssh default, or a socket path) or one strata serves from key files (--ssh id=KEY,...),
// as `docker build --ssh` does. Steps reach it through a socket of their own, served here,
// that only lists keys and signs: a step cannot add, remove or lock the user's keys, as
// BuildKit's read-only agent allows no more.
package sshforward

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Source is where one --ssh id's agent comes from.
type Source struct {
	ID string
	// socket is the agent to forward to; keys are served when it is empty.
	socket  string
	keyring agent.ExtendedAgent
}

// Parse reads one --ssh value: ID, ID=SOCKET or ID=KEY[,KEY...], as docker build does.
// A bare ID means the agent of $SSH_AUTH_SOCK. Key files are read here, so a missing,
// unreadable or passphrase-protected key is reported before the build starts.
func Parse(value string) (*Source, error) {
	id, paths, hasPaths := strings.Cut(value, "=")
	if id == "" {
		return nil, fmt.Errorf("--ssh %q: no id (want ID[=SOCKET|KEY[,KEY...]], e.g. default)", value)
	}
	if !hasPaths || paths == "" {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, fmt.Errorf("--ssh %s: SSH_AUTH_SOCK is not set: start an agent (eval $(ssh-agent); ssh-add) or give %s=PATH to a key or socket", id, id)
		}
		paths = sock
	}
	s := &Source{ID: id}
	var keys []string
	for _, p := range strings.Split(paths, ",") {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("--ssh %s: %w", id, err)
		}
		if fi.Mode()&os.ModeSocket != 0 {
			if s.socket != "" || len(strings.Split(paths, ",")) > 1 {
				return nil, fmt.Errorf("--ssh %s: an agent socket (%s) must be the only path", id, p)
			}
			s.socket = p
			continue
		}
		keys = append(keys, p)
	}
	if s.socket != "" {
		c, err := net.Dial("unix", s.socket)
		if err != nil {
			return nil, fmt.Errorf("--ssh %s: the agent at %s does not answer: %w", id, s.socket, err)
		}
		c.Close()
		return s, nil
	}
	ring := agent.NewKeyring()
	for _, p := range keys {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--ssh %s: %w", id, err)
		}
		key, err := ssh.ParseRawPrivateKey(data)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("--ssh %s: %s is protected by a passphrase: add it to an agent (ssh-add) and pass --ssh %s", id, p, id)
		}
		if err != nil {
			return nil, fmt.Errorf("--ssh %s: %s: %w", id, p, err)
		}
		if err := ring.Add(agent.AddedKey{PrivateKey: key, Comment: p}); err != nil {
			return nil, fmt.Errorf("--ssh %s: %s: %w", id, p, err)
		}
	}
	// NewKeyring's agent signs with flags too (rsa-sha2-256/512, which servers require).
	s.keyring = ring.(agent.ExtendedAgent)
	return s, nil
}

// Listen serves the agent on a new unix socket at path, owned by uid:gid with mode, until
// the returned Closer is called; connections still open are closed then too.
func (s *Source) Listen(path string, uid, gid int, mode os.FileMode) (io.Closer, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("ssh agent socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	err = os.Lchown(path, uid, gid)
	if errors.Is(err, syscall.EINVAL) {
		// The kernel's answer for an ID outside the user namespace's map.
		err = fmt.Errorf("uid=%d,gid=%d is not mapped in this user namespace: the user running strata has no subordinate IDs (run strata doctor)", uid, gid)
	}
	if err == nil {
		err = os.Chmod(path, mode)
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("ssh agent socket: %w", err)
	}
	srv := &server{src: s, l: l, conns: map[net.Conn]bool{}}
	srv.wg.Add(1)
	go srv.accept()
	return srv, nil
}

type server struct {
	src   *Source
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool
}

func (srv *server) accept() {
	defer srv.wg.Done()
	for {
		c, err := srv.l.Accept()
		if err != nil {
			return
		}
		srv.mu.Lock()
		if srv.done {
			srv.mu.Unlock()
			c.Close()
			return
		}
		srv.conns[c] = true
		srv.mu.Unlock()
		srv.wg.Add(1)
		go func() {
			defer srv.wg.Done()
			srv.serve(c)
			srv.mu.Lock()
			delete(srv.conns, c)
			srv.mu.Unlock()
			c.Close()
		}()
	}
}

// serve answers one connection of a step: with the keyring, or through a connection of
// its own to the user's agent.
func (srv *server) serve(c net.Conn) {
	a := srv.src.keyring
	if srv.src.socket != "" {
		up, err := net.Dial("unix", srv.src.socket)
		if err != nil {
			return
		}
		defer up.Close()
		srv.mu.Lock()
		if srv.done {
			srv.mu.Unlock()
			return
		}
		srv.conns[up] = true
		srv.mu.Unlock()
		a = agent.NewClient(up)
	}
	_ = agent.ServeAgent(readOnly{a}, c)
}

func (srv *server) Close() error {
	srv.mu.Lock()
	srv.done = true
	err := srv.l.Close()
	for c := range srv.conns {
		c.Close()
	}
	srv.mu.Unlock()
	srv.wg.Wait()
	return err
}

// errReadOnly answers a step that tries to change the agent.
var errReadOnly = errors.New("strata forwards this agent read-only: keys cannot be added, removed or locked from a build step")

// readOnly lets a step list keys and sign with them, nothing else. It keeps the
// extended agent's SignWithFlags: without it RSA keys sign with SHA-1 only, which
// current OpenSSH servers refuse.
type readOnly struct{ agent.ExtendedAgent }

func (readOnly) Extension(string, []byte) ([]byte, error) {
	return nil, agent.ErrExtensionUnsupported
}

func (readOnly) Add(agent.AddedKey) error   { return errReadOnly }
func (readOnly) Remove(ssh.PublicKey) error { return errReadOnly }
func (readOnly) RemoveAll() error           { return errReadOnly }
func (readOnly) Lock([]byte) error          { return errReadOnly }
func (readOnly) Unlock([]byte) error        { return errReadOnly }
