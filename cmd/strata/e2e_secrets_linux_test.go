package main

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// testSecrets builds testdata/e2e/secrets, which uses secrets every way a Dockerfile can,
// checks what the steps saw, then scans every byte the builds left (the image archive,
// the store, the cache export, the metadata file, the logs, strata's TMPDIR) for the
// values, compressed layers decompressed first.
func (e *e2eEnv) testSecrets(t *testing.T) {
	dir := t.TempDir()
	store, out := filepath.Join(dir, "store"), filepath.Join(dir, "out")
	token := "strata-file-secret-" + randHex(t, 12)
	envTok := "strata-env-secret-" + randHex(t, 12)
	key := "-----BEGIN TEST KEY-----\nkey-line-one-" + randHex(t, 10) + "\nkey-line-two-" + randHex(t, 10) + "\n-----END TEST KEY-----\n"
	tokenFile, keyFile := filepath.Join(dir, "token"), filepath.Join(dir, "key")
	writeFile(t, tokenFile, token)
	writeFile(t, keyFile, key)
	ctxDir := e.context(t, "secrets", nil)
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// The epoch makes the attestations byte-stable, so the rebuild below can be compared.
	env := []string{"STRATA_E2E_TOKEN=" + envTok, "SOURCE_DATE_EPOCH=1700000000"}
	// Attestations at their fullest (mode=max records the build's secret ids and the
	// Dockerfile): the scan below covers them too.
	common := []string{"build", "--root", store, "--build-arg", "BASE=" + e.base("busybox:latest"), "--provenance=mode=max", "--sbom=true",
		"--secret", "id=token,src=" + tokenFile, "--secret", "id=envtok,env=STRATA_E2E_TOKEN", "--secret", "id=key,src=" + keyFile}
	archive := filepath.Join(out, "image.tar")
	r := e.run(nil, env, append(common, "--progress", "plain", "-o", "type=oci,dest="+archive,
		"--cache-to", "type=local,dest="+filepath.Join(out, "cache")+",mode=max",
		"--metadata-file", filepath.Join(out, "meta.json"), "--iidfile", filepath.Join(out, "iid"), ctxDir)...)
	if r.err != nil {
		t.Fatalf("build: %v\n%s", r.err, r.output())
	}
	logs := r.output()
	digest := readDigest(t, filepath.Join(out, "iid"))
	want := "440 1000 50\n4\nno file\ngone\nno /etc/app\nno run/secrets\n" + sha256Hex(token) + "\n" + sha256Hex(envTok) + "\n"
	if got := runImage(t, archive); got != want {
		t.Errorf("the image printed:\n%s\nwant:\n%s", got, want)
	}
	// The steps printed the values: the log shows them masked.
	for _, line := range []string{"token is ****", "key-line-one-****"} {
		if !strings.Contains(logs, line) && !strings.Contains(logs, strings.Replace(line, "key-line-one-****", "****", 1)) {
			t.Errorf("the log lacks the masked line %q:\n%s", line, logs)
		}
	}
	// The same build as rawjson, all cached, with another value of the file secret:
	// BuildKit's rule, a secret's value is no input of a step's key.
	writeFile(t, tokenFile, "another value of the secret, "+randHex(t, 8))
	r = e.run(nil, env, append(common, "--progress", "rawjson", "--iidfile", filepath.Join(out, "iid2"), ctxDir)...)
	if r.err != nil {
		t.Fatalf("second build: %v\n%s", r.err, r.output())
	}
	logs += r.output()
	if got := readDigest(t, filepath.Join(out, "iid2")); got != digest {
		t.Errorf("a changed secret value gave %s, want the cached %s", got, digest)
	}
	writeFile(t, tokenFile, token)
	// A step that prints the secret and fails: its output and the error.
	failing := filepath.Join(dir, "failing")
	if err := os.MkdirAll(failing, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(failing, "Dockerfile"), "ARG BASE\nFROM ${BASE}\nRUN --mount=type=secret,id=token,env=T sh -c 'cat /run/secrets/token; echo \"$T\" >&2; exit 3'\n")
	r = e.run(nil, env, append(common, "--progress", "plain", failing)...)
	if r.err == nil {
		t.Error("the failing build succeeded")
	}
	logs += r.output()
	// A required secret not given: refused before any step, naming the line and the flag.
	r = e.run(nil, env, "build", "--root", store, "--progress", "plain", "--build-arg", "BASE="+e.base("busybox:latest"),
		"--secret", "id=token,src="+tokenFile, "--secret", "id=envtok,env=STRATA_E2E_TOKEN", ctxDir)
	if r.err == nil || !strings.Contains(r.stderr, "Dockerfile:16") || !strings.Contains(r.stderr, "--secret id=key") || strings.Contains(r.output(), "[uses 2/") {
		t.Errorf("a build without the required secret key: %v\n%s\nwant a refusal naming Dockerfile:16 and --secret id=key before any step", r.err, r.output())
	}
	logs += r.output()
	writeFile(t, filepath.Join(out, "logs.txt"), logs)

	values := []string{token, envTok}
	for _, l := range strings.Split(key, "\n") {
		if strings.HasPrefix(l, "key-line") {
			values = append(values, l)
		}
	}
	for _, root := range []string{store, out, e.tmp} {
		scanForSecrets(t, root, values)
	}
}

// scanForSecrets fails t for every file under root holding one of values, as is, in
// base64 (JSON's form of bytes), or inside gzip or zstd compression.
func scanForSecrets(t *testing.T, root string, values []string) {
	t.Helper()
	var needles [][]byte
	for _, v := range values {
		needles = append(needles, []byte(v), []byte(base64.StdEncoding.EncodeToString([]byte(v))))
	}
	zr, _ := zstd.NewReader(nil)
	defer zr.Close()
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		files++
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		forms := [][]byte{data}
		switch {
		case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
			if gz, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
				if plain, err := io.ReadAll(gz); err == nil {
					forms = append(forms, plain)
				} else {
					t.Errorf("%s: gzip: %v", p, err)
				}
			}
		case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			plain, err := zr.DecodeAll(data, nil)
			if err != nil {
				t.Errorf("%s: zstd: %v", p, err)
			}
			forms = append(forms, plain)
		}
		for _, f := range forms {
			for _, n := range needles {
				if bytes.Contains(f, n) {
					t.Errorf("%s holds a secret's value (%.20s...)", p, n)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("scanning %s: %v", root, err)
	}
	t.Logf("scanned %d files under %s", files, root)
}

// testSSH builds testdata/e2e/secrets-ssh with --ssh default (an agent the test serves, as
// ssh-agent would) and --ssh deploy=KEYFILE; a static client in the image lists and signs
// through each socket, and its attempt to remove the keys is refused.
func (e *e2eEnv) testSSH(t *testing.T) {
	dir := t.TempDir()
	ctxDir := e.context(t, "secrets-ssh", nil)
	// The context holds the client's source; the image gets the static binary.
	if err := os.RemoveAll(filepath.Join(ctxDir, "agentcheck")); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(ctxDir, "agentcheck"), "./testdata/e2e/secrets-ssh/agentcheck")
	build.Dir = filepath.Join(e2eRoot, "..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building agentcheck: %v\n%s", err, b)
	}
	// The user's agent.
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	ring := agent.NewKeyring()
	if err := ring.Add(agent.AddedKey{PrivateKey: userKey, Comment: "user-key"}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
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
	// A key file for the second id.
	_, deployKey, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(deployKey, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_deploy")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "image.tar")
	r := e.run(nil, []string{"SSH_AUTH_SOCK=" + sock}, "build", "--root", filepath.Join(dir, "store"), "--progress", "plain",
		"--build-arg", "BASE="+e.base("busybox:latest"), "--ssh", "default", "--ssh", "deploy="+keyFile,
		"-o", "type=oci,dest="+archive, ctxDir)
	if r.err != nil {
		t.Fatalf("build: %v\n%s", r.err, r.output())
	}
	want := "user-key signs\nremove refused\n/run/buildkit/ssh_agent.0\n" + keyFile + " signs\nremove refused\n1000 660\nno socket\nnothing left\n"
	if got := runImage(t, archive); got != want {
		t.Errorf("the image printed:\n%s\nwant:\n%s", got, want)
	}
	if keys, _ := ring.List(); len(keys) != 1 {
		t.Errorf("the user's agent holds %d keys after the build, want 1", len(keys))
	}
	// A missing agent is refused before any work.
	r = e.run(nil, []string{"SSH_AUTH_SOCK="}, "build", "--root", filepath.Join(dir, "store"), "--ssh", "default", ctxDir)
	if r.err == nil || !strings.Contains(r.stderr, "SSH_AUTH_SOCK is not set") {
		t.Errorf("--ssh default without an agent: %v\n%s", r.err, r.output())
	}
}
