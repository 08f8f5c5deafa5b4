package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// cmdTimeout stops a hung external command so the suite reports it instead of waiting for
// go test's global timeout; it bounds nothing a passing run comes near.
const cmdTimeout = 5 * time.Minute

// result is what one strata invocation did.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) output() string { return r.stdout + r.stderr }

// run invokes the strata binary with args; stdin may be nil. SOURCE_DATE_EPOCH is removed from
// the environment so that only the tests that set it (through extraEnv) see it.
func (e *e2eEnv) run(stdin io.Reader, extraEnv []string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.strata, args...)
	// TMPDIR under the test's own directory: whatever strata makes there is the test's to check.
	cmd.Env = append(append(cleanEnv(), "TMPDIR="+e.tmp), extraEnv...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") && !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	return env
}

// mustBuild runs `strata build` and fails the test with its whole output when it fails.
func (e *e2eEnv) mustBuild(t *testing.T, args ...string) result {
	t.Helper()
	r := e.run(nil, nil, append([]string{"build", "--progress", "plain"}, args...)...)
	if r.err != nil {
		t.Fatalf("strata build %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r
}

// readDigest reads an --iidfile and checks it holds a sha256 digest.
func readDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading --iidfile: %v", err)
	}
	d := strings.TrimSpace(string(b))
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(d) {
		t.Fatalf("--iidfile holds %q, want sha256:<64 hex>", d)
	}
	return d
}

// metadataDigest reads containerimage.digest from a --metadata-file.
func metadataDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading --metadata-file: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("--metadata-file is not JSON: %v\n%s", err, b)
	}
	d, _ := m["containerimage.digest"].(string)
	return d
}

// extractTar unpacks an OCI archive we produced into dir. Names are checked to stay inside
// dir all the same: the archive is the output under test.
func extractTar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", archive, err)
		}
		if err := extractEntry(tr, h, dir); err != nil {
			return err
		}
	}
}

func extractEntry(r io.Reader, h *tar.Header, dir string) error {
	name := filepath.Clean(h.Name)
	if !filepath.IsLocal(name) {
		return fmt.Errorf("archive entry %q escapes the archive", h.Name)
	}
	p := filepath.Join(dir, name)
	switch h.Typeflag {
	case tar.TypeDir:
		return os.MkdirAll(p, 0o755)
	case tar.TypeReg:
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		out, err := os.Create(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, r)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	default:
		return fmt.Errorf("archive entry %q has type %q; an OCI archive holds files and dirs only", h.Name, h.Typeflag)
	}
}

// ociArchiveImage opens the single image of an OCI archive, checks it with validate.Image and
// returns it with its manifest digest.
func ociArchiveImage(t *testing.T, archive string) (v1.Image, string) {
	t.Helper()
	dir := t.TempDir()
	if err := extractTar(archive, dir); err != nil {
		t.Fatalf("extracting OCI archive: %v", err)
	}
	return layoutImage(t, dir)
}

// layoutImage opens the single image of an OCI layout directory and validates it.
func layoutImage(t *testing.T, dir string) (v1.Image, string) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("opening OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatalf("reading index.json: %v", err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("opening image: %v", err)
	}
	validateImage(t, img)
	return img, im.Manifests[0].Digest.String()
}

// validateImage runs validate.Image. Its layer check reads every blob as gzip, so images with
// zstd or uncompressed layers get its fast mode plus checkBlobs, which hashes them as they are.
func validateImage(t *testing.T, img v1.Image) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatalf("reading manifest: %v", err)
	}
	var opts []validate.Option
	if slices.ContainsFunc(m.Layers, func(d v1.Descriptor) bool { return !strings.HasSuffix(string(d.MediaType), "gzip") }) {
		opts = append(opts, validate.Fast)
		checkBlobs(t, img)
	}
	if err := validate.Image(img, opts...); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
}

// checkBlobs checks each layer's blob hashes to its digest and, decompressed, to its diffID.
func checkBlobs(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		digest, _ := l.Digest()
		diffID, _ := l.DiffID()
		if got := hashOf(t, l.Compressed); got != digest.String() {
			t.Errorf("layer %d: blob hashes to %s, manifest says %s", i, got, digest)
		}
		if got := hashOf(t, l.Uncompressed); got != diffID.String() {
			t.Errorf("layer %d: content hashes to %s, config diff_ids say %s", i, got, diffID)
		}
	}
}

func hashOf(t *testing.T, open func() (io.ReadCloser, error)) string {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

// tool runs an external checker (skopeo, umoci, runc) and returns its stdout.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// skopeoDigest inspects ref with skopeo and returns the digest of its raw manifest.
func skopeoDigest(t *testing.T, ref string) string {
	t.Helper()
	tool(t, "skopeo", "--insecure-policy", "inspect", "--tls-verify=false", ref)
	raw := tool(t, "skopeo", "--insecure-policy", "inspect", "--raw", "--tls-verify=false", ref)
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(raw)))
}

// skopeoInspectArchive checks an archive with skopeo (docker-archive: has no --tls-verify).
func skopeoInspectArchive(t *testing.T, ref string) {
	t.Helper()
	tool(t, "skopeo", "--insecure-policy", "inspect", ref)
}

// pullBack copies ref from the registry into a fresh OCI layout with skopeo and returns the
// digest of the manifest skopeo stored.
func pullBack(t *testing.T, ref string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pulled")
	tool(t, "skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+":e2e")
	_, digest := layoutImage(t, dir)
	return digest
}

// runImage unpacks the image of an OCI archive with umoci and runs its entrypoint and cmd with
// runc, returning what it printed on stdout.
func runImage(t *testing.T, archive string) string {
	t.Helper()
	dir := t.TempDir()
	lay := filepath.Join(dir, "layout")
	tool(t, "skopeo", "--insecure-policy", "copy", "--quiet", "oci-archive:"+archive, "oci:"+lay+":e2e")
	bundle := filepath.Join(dir, "bundle")
	tool(t, "umoci", "unpack", "--image", lay+":e2e", bundle)
	if err := noTerminal(filepath.Join(bundle, "config.json")); err != nil {
		t.Fatal(err)
	}
	// runc names the container's cgroup after its id, shared by every --root: the id must be
	// unique across parallel subtests (t.TempDir's base name is not).
	id := fmt.Sprintf("strata-e2e-%x", sha256.Sum256([]byte(t.Name()+dir)))[:27]
	return tool(t, "runc", "--root", filepath.Join(dir, "runc"), "run", "--bundle", bundle, id)
}

// noTerminal turns off the terminal umoci asks for: the test captures stdout through a pipe.
func noTerminal(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("parsing %s: %w", path, err)
	}
	proc, ok := cfg["process"].(map[string]any)
	if !ok {
		return fmt.Errorf("%s has no process", path)
	}
	proc["terminal"] = false
	if b, err = json.Marshal(cfg); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// layerEntries lists the names of every entry of every layer of img, layer by layer.
func layerEntries(t *testing.T, img v1.Image) [][]string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	all := make([][]string, len(layers))
	for i := range layers {
		forEachEntry(t, img, i, func(h *tar.Header) {
			all[i] = append(all[i], strings.TrimPrefix(h.Name, "./"))
		})
	}
	return all
}

// forEachEntry calls fn with each tar header of layer i of img.
func forEachEntry(t *testing.T, img v1.Image, i int, fn func(*tar.Header)) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[i].Uncompressed()
	if err != nil {
		t.Fatalf("layer %d: %v", i, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		fn(h)
	}
}

// configOf returns the config file of img.
func configOf(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}
