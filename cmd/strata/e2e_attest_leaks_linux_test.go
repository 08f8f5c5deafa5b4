package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/crypto/ssh"
)

// testAttestationLeaks builds, from a git context whose URL holds a token, a Dockerfile that
// ADDs a URL holding another (through a build arg), uses a --secret and an --ssh key, with
// a token in a build arg, once with mode=min and once with mode=max, and reads every
// statement of the result as a client would: no credential, secret or key is in any, in
// either mode; mode=min holds no build arg's value, mode=max holds them (as BuildKit, the
// README warns); the git context and the ADD URL are recorded, credentials removed.
func (e *e2eEnv) testAttestationLeaks(t *testing.T) {
	dir := t.TempDir()
	gitTok, addTok, argTok := "gittok-"+randHex(t, 8), "addtok-"+randHex(t, 8), "argtok-"+randHex(t, 8)
	secTok := "sectok-" + randHex(t, 8)
	// A server that wants the tokens, as a private forge and a private download would.
	srvDir, work := filepath.Join(dir, "srv"), filepath.Join(dir, "work")
	for _, d := range []string{srvDir, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(srvDir, "file.txt"), "downloaded\n")
	writeFile(t, filepath.Join(work, "Dockerfile"), "ARG BASE\nFROM $BASE\nARG URL\nARG PIN\nADD $URL /downloaded\n"+
		"RUN --mount=type=secret,id=s --mount=type=ssh,id=deploy test -n \"$PIN\"\n")
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com", "GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z")
	bare := filepath.Join(srvDir, "repo.git")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", work}, {"-C", work, "add", "-A"}, {"-C", work, "commit", "-q", "-m", "e2e"},
		{"clone", "-q", "--bare", work, bare}, {"-C", bare, "update-server-info"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, err := exec.Command("git", "-C", work, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	commit := strings.TrimSpace(string(head))
	files := http.FileServer(http.Dir(srvDir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		if !(u == "oauth2" && p == gitTok && strings.HasPrefix(r.URL.Path, "/repo.git/")) && !(u == addTok && r.URL.Path == "/file.txt") {
			w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
			http.Error(w, "credentials wanted", http.StatusUnauthorized)
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	gitURL := "http://oauth2:" + gitTok + "@" + host + "/repo.git#main"
	addURL := "http://" + addTok + "@" + host + "/file.txt"
	secretFile := filepath.Join(dir, "secret")
	writeFile(t, secretFile, secTok)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(blk)
	keyFile := filepath.Join(dir, "id_deploy")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	never := []string{gitTok, secTok, string(key.Seed()), string(keyPEM)}
	for _, l := range strings.Split(string(keyPEM), "\n") {
		if len(l) > 40 {
			never = append(never, l)
		}
	}
	for _, mode := range []string{"min", "max"} {
		archive := filepath.Join(dir, mode+".tar")
		r := e.run(nil, []string{"SOURCE_DATE_EPOCH=1700000000"}, "build", "--root", filepath.Join(dir, "store"), "--progress", "plain",
			"--attest", "type=provenance,mode="+mode+",builder-id=https://ci.example.com/org/run/7", "--sbom=true", "--build-arg", "BASE="+e.base("busybox:latest"), "--build-arg", "URL="+addURL,
			"--build-arg", "PIN="+argTok, "--secret", "id=s,src="+secretFile, "--ssh", "deploy="+keyFile,
			"-o", "type=oci,dest="+archive, gitURL)
		if r.err != nil {
			t.Fatalf("mode=%s build: %v\n%s", mode, r.err, r.output())
		}
		all := archiveStatements(t, archive, 2)
		for _, v := range never {
			if bytes.Contains(all, []byte(v)) || bytes.Contains(all, []byte(base64.StdEncoding.EncodeToString([]byte(v)))) {
				t.Errorf("mode=%s: a statement holds a credential, secret or key (%.12s...)", mode, v)
			}
		}
		// The build args: BuildKit's rule, their values in mode=max only.
		if got := bytes.Contains(all, []byte(argTok)); got != (mode == "max") {
			t.Errorf("mode=%s: a build arg's value in the statements: %v", mode, got)
		}
		// SOURCE_DATE_EPOCH is no claim the build is reproducible (BuildKit takes reproducible=true).
		if bytes.Contains(all, []byte("buildkit_reproducible")) {
			t.Errorf("mode=%s: the provenance claims a reproducible build nobody claimed", mode)
		}
		if mode == "min" && bytes.Contains(all, []byte(addTok)) {
			t.Errorf("mode=min: the ADD URL's token (a build arg's value) is in the statements")
		}
		// The context's commit pins it: the materials are complete.
		for _, want := range []string{`"uri":"http://xxxxx@` + host + `/repo.git#main","digest":{"sha1":"` + commit + `"}`,
			`"uri":"http://xxxxx@` + host + `/file.txt"`, `"resolvedDependencies":true`, `"builder":{"id":"https://ci.example.com/org/run/7"}`} {
			if !bytes.Contains(all, []byte(want)) {
				t.Errorf("mode=%s: the statements do not record %s:\n%s", mode, want, all)
			}
		}
	}
	// A local --build-context beside the pinned git context: listed among the locals, and
	// the materials no longer complete.
	extra := filepath.Join(dir, "extra")
	if err := os.MkdirAll(extra, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "named.tar")
	r := e.run(nil, []string{"SOURCE_DATE_EPOCH=1700000000"}, "build", "--root", filepath.Join(dir, "store"), "--progress", "plain",
		"--provenance=mode=min", "--build-arg", "BASE="+e.base("busybox:latest"), "--build-arg", "URL="+addURL,
		"--build-arg", "PIN="+argTok, "--secret", "id=s,src="+secretFile, "--ssh", "deploy="+keyFile,
		"--build-context", "extra="+extra, "-o", "type=oci,dest="+archive+",name=reg.example.com/leaks:1", gitURL)
	if r.err != nil {
		t.Fatalf("build with a named context: %v\n%s", r.err, r.output())
	}
	all := archiveStatements(t, archive, 1)
	// The output's name= names the statements' subject, as BuildKit's exporter name does.
	for _, want := range []string{`"locals":[{"name":"extra"}]`, `"resolvedDependencies":false`, `"subject":[{"name":"pkg:docker/reg.example.com/leaks@1?platform=`} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("a build with a local named context: the provenance lacks %s:\n%s", want, all)
		}
	}
}

// archiveStatements reads an OCI archive's index as a client does and returns every
// statement attached to its images, marshalled, checking each image has n.
func archiveStatements(t *testing.T, archive string, n int) []byte {
	t.Helper()
	lay := archive + "-layout"
	tool(t, "skopeo", "--insecure-policy", "copy", "--all", "--preserve-digests", "--quiet", "oci-archive:"+archive, "oci:"+lay+":e2e")
	top, err := layout.ImageIndexFromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil || len(tm.Manifests) != 1 {
		t.Fatalf("the layout's index: %v %+v", err, tm)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, a := range readAttested(t, idx) {
		if len(a.statements) != n {
			t.Errorf("%s %s: %d statements, want %d", archive, a.platform, len(a.statements), n)
		}
		for _, st := range a.statements {
			b, _ := json.Marshal(st)
			all = append(all, b...)
		}
	}
	if len(all) == 0 {
		t.Fatalf("%s: no statement in the image", archive)
	}
	return all
}
