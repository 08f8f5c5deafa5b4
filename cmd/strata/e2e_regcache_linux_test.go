package main

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rcEnv is the shared-cache suite's own registry (its access log is the suite's alone) with a
// busybox base, and the case's context.
type rcEnv struct {
	*e2eEnv
	reg  *registryProc
	base string // BASE=<reg>/busybox:latest
	ctx  string
}

// testRegistryCache is the CI story: machine A builds and exports its cache; machines B, C,
// ... start with empty stores, import it and must not run the slow RUN, give the same digest,
// and download only what an output needs.
func (e *e2eEnv) testRegistryCache(t *testing.T) {
	rc := &rcEnv{e2eEnv: e, reg: startRegistryWith(t, filepath.Join(t.TempDir(), "registry"), "")}
	seedBusybox(t, rc.reg.addr+"/busybox:latest", e.busybox, nil, nil)
	rc.base = "BASE=" + rc.reg.addr + "/busybox:latest"
	rc.ctx = e.context(t, "regcache", nil)
	r := rc.reg.addr
	layout := filepath.Join(t.TempDir(), "cache-dir")

	// Machine A: a cold build exporting three caches at once, pushing the image.
	a := rc.build(t, nil, "--cache-to", "type=registry,ref="+r+"/cache:max,mode=max",
		"--cache-to", "type=registry,ref="+r+"/cache:min",
		"--cache-to", "type=local,dest="+layout+",mode=max",
		"-t", r+"/app:1", "--push")
	rcCached(t, "machine A", a, false, false, false, false)
	layers := rc.layerDigests(t, r+"/app:1", r+"/cache:max")

	t.Run("fresh machine pushing to the same registry", func(t *testing.T) {
		mark := len(rc.reg.log.String())
		b := rc.build(t, nil, "--cache-from", r+"/cache:max", "-t", r+"/app:2", "--push")
		sameDigest(t, "machine B", b, a)
		rcCached(t, "machine B", b, true, true, true, true)
		if got := blobGets(rc.reg.log.String()[mark:], layers); len(got) > 0 {
			t.Errorf("a fully cached build that pushes downloaded layers: %v", got)
		}
		if strings.Contains(b.output, "downloading") {
			t.Errorf("progress shows a download:\n%s", b.output)
		}
		if got := pullBack(t, r+"/app:2"); got != a.digest {
			t.Errorf("skopeo reads %s at app:2, the build said %s", got, a.digest)
		}
	})
	t.Run("fresh machine writing an archive", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "image.tar")
		c := rc.build(t, nil, "--cache-from", "type=registry,ref="+r+"/cache:max", "-o", "type=oci,dest="+out)
		sameDigest(t, "machine C", c, a)
		rcCached(t, "machine C", c, true, true, true, true)
		if got := runImage(t, out); got != "v=1\nthe app\n" {
			t.Errorf("the image printed %q", got)
		}
	})
	t.Run("cache directory", func(t *testing.T) {
		d := rc.build(t, nil, "--cache-from", "type=local,src="+layout, "-t", "local-import")
		sameDigest(t, "from the cache directory", d, a)
		rcCached(t, "from the cache directory", d, true, true, true, true)
	})
	t.Run("mode=min", func(t *testing.T) {
		m := rc.build(t, nil, "--cache-from", r+"/cache:min", "-t", "min-import")
		// The build stage is not exported: its RUN runs again, and the final stage, whose
		// COPY --from is keyed by the build stage's steps, not by their output, hits.
		rcCached(t, "mode=min", m, false, false, true, true)
		sameDigest(t, "mode=min", m, a)
	})
	t.Run("inline", func(t *testing.T) {
		i1 := rc.build(t, nil, "--cache-to", "type=inline", "-t", r+"/inline:1", "--push")
		i2 := rc.build(t, nil, "--cache-from", r+"/inline:1", "--cache-to", "type=inline", "-t", r+"/inline:2", "--push")
		sameDigest(t, "inline", i2, i1)
		rcCached(t, "inline", i2, false, false, true, true)
	})
	t.Run("cache mounts", rc.testCacheMounts)
	t.Run("faults", func(t *testing.T) { rc.testFaults(t, a) })
	t.Run("basic auth", rc.testAuth)
}

// build runs one build in an empty store of its own, with the case's context and base.
func (rc *rcEnv) build(t *testing.T, env []string, args ...string) cacheBuild {
	t.Helper()
	dir := t.TempDir()
	iid := filepath.Join(dir, "iid")
	full := append([]string{"build", "--progress", "plain", "--root", filepath.Join(dir, "store"),
		"--build-arg", rc.base, "--iidfile", iid}, args...)
	res := rc.run(nil, env, append(full, rc.ctx)...)
	if res.err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(full, " "), res.err, res.output())
	}
	return cacheBuild{digest: readDigest(t, iid), output: res.output(), steps: parseSteps(res.output())}
}

// layerDigests are the layer blobs of the image and the cache manifest refs name.
func (rc *rcEnv) layerDigests(t *testing.T, refs ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, ref := range refs {
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(r)
		if err != nil {
			t.Fatal(err)
		}
		var m v1.Manifest
		if err := json.Unmarshal(desc.Manifest, &m); err != nil {
			t.Fatal(err)
		}
		for _, l := range m.Layers {
			out[l.Digest.String()] = true
		}
	}
	return out
}

var blobGet = regexp.MustCompile(`"GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]{64})`)

// blobGets are the downloads of the given blobs an access log shows.
func blobGets(log string, blobs map[string]bool) []string {
	var out []string
	for _, m := range blobGet.FindAllStringSubmatch(log, -1) {
		if blobs[m[1]] {
			out = append(out, m[1])
		}
	}
	return out
}

// seedBusybox pushes the mkrootfs busybox as ref with go-containerregistry, with the files
// given added in a second layer when extra is set.
func seedBusybox(t *testing.T, ref, file string, extra map[string]string, auth authn.Authenticator) {
	t.Helper()
	img, err := baseImage(file, true, []string{"/bin/sh"})
	if err != nil {
		t.Fatal(err)
	}
	if extra != nil {
		l := tarLayer(t, extra)
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{}
	if auth != nil {
		opts = append(opts, remote.WithAuth(auth))
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatal(err)
	}
}

// testCacheMounts: a cache mount exported with cache-mounts=true starts a fresh machine's
// mount with its content.
func (rc *rcEnv) testCacheMounts(t *testing.T) {
	r := rc.reg.addr
	ctxDir := rc.context(t, "regcache-mounts", nil)
	build := func(cm string, args ...string) v1.Image {
		dir := t.TempDir()
		out := filepath.Join(dir, "image.tar")
		rc.mustBuild(t, append(append([]string{"--root", filepath.Join(dir, "store"), "--build-arg", rc.base,
			"--build-arg", "CM=" + cm, "-o", "type=oci,dest=" + out}, args...), ctxDir)...)
		img, _ := ociArchiveImage(t, out)
		return img
	}
	build("1", "--cache-to", "type=registry,ref="+r+"/mounts:1,mode=max,cache-mounts=true")
	img := build("2", "--cache-from", r+"/mounts:1")
	if got := imageFile(t, img, "seen"); got != "1\n2\n" {
		t.Errorf("the second machine's cache mount held %q, want the first's line and its own", got)
	}
	// Without cache-mounts=true nothing of the mount is exported.
	build("1", "--cache-to", "type=registry,ref="+r+"/mounts:2,mode=max")
	if got := imageFile(t, build("2", "--cache-from", r+"/mounts:2"), "seen"); got != "2\n" {
		t.Errorf("a mount not exported reached the next machine: %q", got)
	}
}

// testFaults: a cache that is missing, damaged or unreachable never fails the build nor is
// used wrongly; it is named in one warning line, and a later export repairs it.
func (rc *rcEnv) testFaults(t *testing.T, a cacheBuild) {
	r := rc.reg.addr
	warning := func(t *testing.T, b cacheBuild, want ...string) {
		t.Helper()
		for _, l := range strings.Split(b.output, "\n") {
			if strings.HasPrefix(l, "strata: warning: ") && containsAll(l, want) {
				return
			}
		}
		t.Errorf("no warning line with %q:\n%s", want, b.output)
	}
	t.Run("no such ref", func(t *testing.T) {
		b := rc.build(t, nil, "--cache-from", r+"/cache:nope", "-t", "x")
		warning(t, b, r+"/cache:nope", "not found", "building without it")
		rcCached(t, "no such ref", b, false, false, false, false)
	})
	t.Run("blob deleted, then repaired", func(t *testing.T) {
		rc.build(t, nil, "--cache-from", r+"/cache:max", "--cache-to", "type=registry,ref="+r+"/damaged:1,mode=max", "-t", "x")
		runLayer := rc.entryLayer(t, r+"/damaged:1", "mkdir /out")
		deleteBlob(t, r, "damaged", runLayer)
		b := rc.build(t, nil, "--cache-from", r+"/damaged:1", "--cache-to", "type=registry,ref="+r+"/damaged:1,mode=max", "-t", "x")
		warning(t, b, "cache "+r+"/damaged:1", "ignoring 1 entries", runLayer, "missing")
		if b.cached(t, "RUN mkdir /out") {
			t.Error("the step whose layer is gone was taken from the cache")
		}
		c := rc.build(t, nil, "--cache-from", r+"/damaged:1", "-t", "x")
		rcCached(t, "after the repairing export", c, true, true, true, true)
		sameDigest(t, "after the repairing export", c, b)
	})
	t.Run("wrong layer size in the manifest", func(t *testing.T) {
		ref := r + "/cache:badsize"
		rc.putChangedManifest(t, r+"/cache:max", ref, func(m map[string]any) {
			l := m["layers"].([]any)[0].(map[string]any)
			l["size"] = l["size"].(float64) + 1
		})
		b := rc.build(t, nil, "--cache-from", ref, "-t", "x")
		warning(t, b, "cache "+ref, "ignoring", "bytes, the cache says")
		if b.digest == a.digest && !strings.Contains(b.output, "CACHED") {
			t.Error("nothing was cached, yet the digest is machine A's")
		}
	})
	t.Run("registry down", func(t *testing.T) {
		down := startRegistryWith(t, filepath.Join(t.TempDir(), "down"), "")
		down.stop()
		out := filepath.Join(t.TempDir(), "image.tar")
		b := rc.build(t, nil, "--cache-from", down.addr+"/cache:1", "--cache-to", "type=registry,ref="+down.addr+"/cache:1",
			"-o", "type=oci,dest="+out)
		warning(t, b, "cache "+down.addr+"/cache:1 not used")
		warning(t, b, "exporting cache to "+down.addr+"/cache:1")
		if _, err := os.Stat(out); err != nil {
			t.Errorf("the image was not written: %v", err)
		}
		res := rc.run(nil, nil, "build", "--progress", "plain", "--root", filepath.Join(t.TempDir(), "s"), "--build-arg", rc.base,
			"--cache-to", "type=registry,ref="+down.addr+"/cache:1,ignore-error=false", rc.ctx)
		if res.err == nil || !strings.Contains(res.stderr, "exporting cache to "+down.addr+"/cache:1") {
			t.Errorf("ignore-error=false: %v\n%s", res.err, res.output())
		}
	})
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// entryLayer is the layer digest the cache at ref records for the step whose history
// contains createdBy.
func (rc *rcEnv) entryLayer(t *testing.T, ref, createdBy string) string {
	t.Helper()
	r, _ := name.ParseReference(ref, name.Insecure)
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Entries []struct {
			Layer   int        `json:"layer"`
			History v1.History `json:"history"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, e := range cfg.Entries {
		if e.Layer >= 0 && strings.Contains(e.History.CreatedBy, createdBy) {
			return m.Layers[e.Layer].Digest.String()
		}
	}
	t.Fatalf("no entry of %s made by %q", ref, createdBy)
	return ""
}

func deleteBlob(t *testing.T, registry, repo, digest string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+registry+"/v2/"+repo+"/blobs/"+digest, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting %s from %s: %v %v", digest, repo, err, resp)
	}
	resp.Body.Close()
}

// putChangedManifest copies the manifest at from to to, changed by edit.
func (rc *rcEnv) putChangedManifest(t *testing.T, from, to string, edit func(map[string]any)) {
	t.Helper()
	r, _ := name.ParseReference(from, name.Insecure)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	dst, _ := name.ParseReference(to, name.Insecure)
	req, _ := http.NewRequest(http.MethodPut, "http://"+rc.reg.addr+"/v2/"+dst.Context().RepositoryStr()+"/manifests/"+dst.Identifier(), strings.NewReader(string(b)))
	req.Header.Set("Content-Type", m["mediaType"].(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		body := ""
		if resp != nil {
			bb, _ := io.ReadAll(resp.Body)
			body = string(bb)
		}
		t.Fatalf("putting %s: %v %s", to, err, body)
	}
	resp.Body.Close()
}

// testAuth: a registry with basic auth, credentials from docker's config.json; without them
// the cache is refused in one line and the build goes on cold.
func (rc *rcEnv) testAuth(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command("htpasswd", "-nbB", "ci", "s3cret").Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	writeFile(t, filepath.Join(dir, "htpasswd"), string(out))
	reg := startRegistryWith(t, filepath.Join(dir, "registry"), fmt.Sprintf("auth:\n  htpasswd:\n    realm: strata-test\n    path: %s\n", filepath.Join(dir, "htpasswd")))
	conf := filepath.Join(dir, "docker")
	if err := os.Mkdir(conf, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(conf, "config.json"), fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.addr, base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))))
	creds := []string{"DOCKER_CONFIG=" + conf}
	ref := reg.addr + "/private/cache:1"
	a := rc.build(t, creds, "--cache-to", "type=registry,ref="+ref+",mode=max", "-t", reg.addr+"/private/app:1", "--push")
	b := rc.build(t, creds, "--cache-from", ref, "-t", reg.addr+"/private/app:2", "--push")
	sameDigest(t, "with credentials", b, a)
	rcCached(t, "with credentials", b, true, true, true, true)
	c := rc.build(t, []string{"DOCKER_CONFIG=" + t.TempDir()}, "--cache-from", ref, "-t", "x")
	rcCached(t, "without credentials", c, false, false, false, false)
	found := false
	for _, l := range strings.Split(c.output, "\n") {
		if strings.HasPrefix(l, "strata: warning: cache "+ref+" not used") && strings.Contains(l, "not authorized") {
			found = true
		}
	}
	if !found {
		t.Errorf("no one-line warning naming %s as not authorized:\n%s", ref, c.output)
	}
}

// testExplainCache checks --explain-cache's lines against testdata/e2e/explain/golden.txt
// for a file edit, a build-arg change and a base image change.
func (e *e2eEnv) testExplainCache(t *testing.T) {
	reg := startRegistryWith(t, filepath.Join(t.TempDir(), "registry"), "")
	seedBusybox(t, reg.addr+"/busybox:latest", e.busybox, nil, nil)
	seedBusybox(t, reg.addr+"/busybox:other", e.busybox, map[string]string{"etc/motd": "another base\n"}, nil)
	ctxDir := e.context(t, "explain", nil)
	store := filepath.Join(t.TempDir(), "store")
	build := func(args ...string) string {
		args = append([]string{"--root", store, "--explain-cache"}, args...)
		out := e.mustBuild(t, append(args, ctxDir)...).output()
		var lines []string
		head := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if m := stepHeader.FindStringSubmatch(l); m != nil {
				head[m[1]] = strings.TrimPrefix(l, "#"+m[1]+" ")
			}
			if num, reason, ok := strings.Cut(l, " cache miss: "); ok {
				lines = append(lines, head[strings.TrimPrefix(num, "#")]+": "+reason)
			}
		}
		return strings.Join(lines, "\n")
	}
	latest := "BASE=" + reg.addr + "/busybox:latest"
	build("--build-arg", latest)
	writeFile(t, filepath.Join(ctxDir, "src", "main.go"), "package main // edited\n")
	got := "# a file edited\n" + build("--build-arg", latest)
	got += "\n# a build arg changed\n" + build("--build-arg", latest, "--build-arg", "V=2")
	got += "\n# the base image changed\n" + build("--build-arg", "BASE="+reg.addr+"/busybox:other", "--build-arg", "V=2")
	got = regexp.MustCompile(`sha256:[0-9a-f]{64}`).ReplaceAllString(strings.ReplaceAll(got, reg.addr, "REGISTRY"), "sha256:DIGEST") + "\n"
	golden := filepath.Join(e2eRoot, "explain", "golden.txt")
	if os.Getenv("STRATA_UPDATE_GOLDEN") != "" {
		writeFile(t, golden, got)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("--explain-cache said:\n%s\nwant (%s):\n%s", got, golden, want)
	}
}

// imageFile is the content of the file at p (no leading /) in the image's flattened tree.
func imageFile(t *testing.T, img v1.Image, p string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("no %s in the image", p)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == p {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

// rcSteps are the regcache case's steps, by a part of their instruction.
var rcSteps = []string{"RUN mkdir /out", "COPY app.txt", "COPY --from=build", "RUN echo"}

// rcCached checks which of rcSteps were cache hits.
func rcCached(t *testing.T, what string, b cacheBuild, want ...bool) {
	t.Helper()
	for i, sub := range rcSteps {
		if got := b.cached(t, sub); got != want[i] {
			t.Errorf("%s: step %q CACHED=%v, want %v:\n%s", what, sub, got, want[i], b.output)
		}
	}
}

// tarLayer is a layer of the given files (path: content), made by go-containerregistry.
func tarLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(files[p])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, files[p])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}
