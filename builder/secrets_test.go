package builder

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/internal/sshforward"
)

// Steps of concurrent stages mount agents with the same per-step index (the first ssh
// mount of each): each must reach its own --ssh id's agent, never the other's.
func TestSSHMountsOfConcurrentStepsKeepTheirAgents(t *testing.T) {
	dir := t.TempDir()
	b := &build{tmp: dir, opts: Options{SSH: map[string]*sshforward.Source{}}}
	for _, id := range []string{"one", "two"} {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		blk, err := ssh.MarshalPrivateKey(priv, id)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, id+".key")
		if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
		if b.opts.SSH[id], err = sshforward.Parse(id + "=" + p); err != nil {
			t.Fatal(err)
		}
	}
	sources := map[string]string{}
	for _, id := range []string{"one", "two"} {
		em, c, ok, err := b.sshMount(dockerfile.Mount{Mount: &instructions.Mount{Type: instructions.MountTypeSSH, CacheID: id}}, 0)
		if err != nil || !ok {
			t.Fatalf("sshMount %s: %v %v", id, ok, err)
		}
		defer c.Close()
		sources[id] = em.Source
	}
	for id, sock := range sources {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("the socket of %s: %v", id, err)
		}
		keys, err := agent.NewClient(conn).List()
		conn.Close()
		if err != nil || len(keys) != 1 || keys[0].Comment != filepath.Join(dir, id+".key") {
			t.Errorf("the step mounting --ssh %s reaches keys %v (%v), want only its own", id, keys, err)
		}
	}
}
