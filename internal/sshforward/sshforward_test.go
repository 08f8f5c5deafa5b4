package sshforward

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func TestMain(m *testing.M) {
	// As cmd/strata does: the agent server's log lines are not the user's business.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

func writeKey(t *testing.T, dir string, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var blk *pem.Block
	if passphrase == "" {
		blk, err = ssh.MarshalPrivateKey(priv, "test key")
	} else {
		blk, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "id_test"+passphrase)
	if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sp
}

// client connects to the socket a step would see.
func client(t *testing.T, path string) agent.ExtendedAgent {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return agent.NewClient(c)
}

func checkSigns(t *testing.T, a agent.ExtendedAgent, want ssh.PublicKey) {
	t.Helper()
	keys, err := a.List()
	if err != nil || len(keys) != 1 || string(keys[0].Marshal()) != string(want.Marshal()) {
		t.Fatalf("List = %v, %v; want the one key", keys, err)
	}
	sig, err := a.Sign(want, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := want.Verify([]byte("data"), sig); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
}

func TestKeysServedReadOnly(t *testing.T) {
	dir := t.TempDir()
	p, pub := writeKey(t, dir, "")
	src, err := Parse("git=" + p)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	srv, err := src.Listen(sock, os.Getuid(), os.Getgid(), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v, want mode 0600", fi, err)
	}
	a := client(t, sock)
	checkSigns(t, a, pub)
	if err := a.RemoveAll(); err == nil {
		t.Error("RemoveAll through the step's socket succeeded")
	}
	if err := a.Lock([]byte("x")); err == nil {
		t.Error("Lock through the step's socket succeeded")
	}
	checkSigns(t, a, pub)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
}

func TestUserAgentForwardedReadOnly(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ring := agent.NewKeyring()
	if err := ring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	up := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", up)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); agent.ServeAgent(ring, c) }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", up)
	src, err := Parse("default")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "step.sock")
	srv, err := src.Listen(sock, os.Getuid(), os.Getgid(), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pub, _ := ssh.NewPublicKey(priv.Public())
	a := client(t, sock)
	checkSigns(t, a, pub)
	if err := a.RemoveAll(); err == nil {
		t.Error("RemoveAll through the step's socket succeeded")
	}
	if keys, _ := ring.List(); len(keys) != 1 {
		t.Errorf("the user's agent has %d keys after a step's RemoveAll, want 1", len(keys))
	}
}

func TestParseRefusals(t *testing.T) {
	dir := t.TempDir()
	locked, _ := writeKey(t, dir, "pw")
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	for _, c := range []struct{ value, want string }{
		{"default", "SSH_AUTH_SOCK is not set"},
		{"=x", "no id"},
		{"k=" + filepath.Join(dir, "missing"), "no such file"},
		{"k=" + locked, "protected by a passphrase"},
		{"k=" + junk, "no key found"},
	} {
		_, err := Parse(c.value)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", c.value, err, c.want)
		}
	}
}
