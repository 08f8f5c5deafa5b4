package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testOutputs builds the scratch-busybox case into every local output type and compression.
func (e *e2eEnv) testOutputs(t *testing.T, store string) {
	c := e2eCase{name: "scratch-busybox", needs: []string{"busybox.tar.gz"}}
	ctxDir := e.context(t, c.name, c.needs)
	args := e.caseArgs(c, store)
	build := func(t *testing.T, flags ...string) string {
		iid := filepath.Join(t.TempDir(), "iid")
		e.mustBuild(t, append(append(args, "--iidfile", iid), append(flags, ctxDir)...)...)
		return readDigest(t, iid)
	}
	t.Run("oci-layout", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		digest := build(t, "-o", "type=oci-layout,dest="+dir)
		if _, got := layoutImage(t, dir); got != digest {
			t.Errorf("layout holds %s, --iidfile says %s", got, digest)
		}
	})
	t.Run("local", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "rootfs")
		build(t, "-o", "type=local,dest="+dir)
		checkRootfsFile(t, os.DirFS(dir))
	})
	t.Run("tar", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "rootfs.tar")
		build(t, "-o", "type=tar,dest="+file)
		checkTarHas(t, file, "ran", "ran in busybox\n")
	})
	for _, comp := range []struct{ name, mediaType string }{
		{"zstd", string(types.OCILayerZStd)}, {"none", string(types.OCIUncompressedLayer)}, {"gzip", string(types.OCILayer)},
	} {
		t.Run("compression "+comp.name, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), "image.tar")
			build(t, "--compression", comp.name, "-o", "type=oci,dest="+archive)
			img, _ := ociArchiveImage(t, archive)
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			// The base layer came from ADD in this build, so every layer is the new kind.
			for i, l := range m.Layers {
				if string(l.MediaType) != comp.mediaType {
					t.Errorf("layer %d has media type %s, want %s", i, l.MediaType, comp.mediaType)
				}
			}
			skopeoDigest(t, "oci-archive:"+archive)
		})
	}
}

// checkRootfsFile checks a flattened rootfs has the busybox tree and the file the RUN wrote.
func checkRootfsFile(t *testing.T, fsys fs.FS) {
	t.Helper()
	b, err := fs.ReadFile(fsys, "ran")
	if err != nil || string(b) != "ran in busybox\n" {
		t.Errorf("rootfs /ran = %q, %v; want \"ran in busybox\\n\"", b, err)
	}
	if _, err := fs.Stat(fsys, "bin/busybox"); err != nil {
		t.Errorf("rootfs lacks bin/busybox: %v", err)
	}
}

// checkTarHas checks the tarball at file has an entry name (with or without ./) holding content.
func checkTarHas(t *testing.T, file, name, content string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s has no entry %s", file, name)
		}
		if err != nil {
			t.Fatalf("reading %s: %v", file, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, _ := io.ReadAll(tr)
			if string(b) != content {
				t.Errorf("%s in %s holds %q, want %q", name, file, b, content)
			}
			return
		}
	}
}

// testStdin builds from a Dockerfile on stdin and from a context tarball on stdin.
func (e *e2eEnv) testStdin(t *testing.T, store string) {
	base := "BASE=" + e.base("busybox:latest")
	stdinBuild := func(t *testing.T, stdin io.Reader) string {
		archive := filepath.Join(t.TempDir(), "image.tar")
		r := e.run(stdin, nil, "build", "--progress", "plain", "--root", store, "--build-arg", base,
			"-o", "type=oci,dest="+archive, "-")
		if r.err != nil {
			t.Fatalf("strata build -: %v\n%s", r.err, r.output())
		}
		ociArchiveImage(t, archive)
		return runImage(t, archive)
	}
	t.Run("Dockerfile", func(t *testing.T) {
		df := "ARG BASE\nFROM $BASE\nRUN echo 'from a Dockerfile on stdin' > /s\nCMD [\"cat\", \"/s\"]\n"
		if got := stdinBuild(t, strings.NewReader(df)); got != "from a Dockerfile on stdin\n" {
			t.Errorf("image printed %q", got)
		}
	})
	t.Run("context tarball", func(t *testing.T) {
		ctxDir := e.context(t, "copy-symlink-dir", nil)
		if got := stdinBuild(t, bytes.NewReader(tarDir(t, ctxDir))); got != "copy through a symlink\ncopy through a symlink\nlinks kept\n" {
			t.Errorf("image printed %q", got)
		}
	})
}

// tarDir archives the regular files of dir (a build context) for stdin.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testStoreCommands tags an image in a store (-t, no output) and uses images, save, push and
// prune on it.
func (e *e2eEnv) testStoreCommands(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	ctxDir := e.context(t, "scratch-busybox", []string{"busybox.tar.gz"})
	iid := filepath.Join(t.TempDir(), "iid")
	e.mustBuild(t, "--root", store, "-t", "e2e/local:1", "--iidfile", iid, ctxDir)
	digest := readDigest(t, iid)
	cli := func(args ...string) string {
		t.Helper()
		r := e.run(nil, nil, append(args[:1:1], append([]string{"--root", store}, args[1:]...)...)...)
		if r.err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), r.err, r.output())
		}
		return r.stdout
	}
	if out := cli("images"); !strings.Contains(out, "e2e/local") {
		t.Errorf("strata images does not list e2e/local:\n%s", out)
	}
	out := t.TempDir()
	cli("save", "e2e/local:1", "-o", filepath.Join(out, "oci.tar"), "--format", "oci")
	if got := skopeoDigest(t, "oci-archive:"+filepath.Join(out, "oci.tar")); got != digest {
		t.Errorf("strata save --format oci wrote %s, the build made %s", got, digest)
	}
	if got := runImage(t, filepath.Join(out, "oci.tar")); got != "ran in busybox\n" {
		t.Errorf("saved image printed %q", got)
	}
	cli("save", "e2e/local:1", "-o", filepath.Join(out, "docker.tar"), "--format", "docker")
	skopeoInspectArchive(t, "docker-archive:"+filepath.Join(out, "docker.tar"))
	ref := e.registry + "/e2e/pushed-by-name:1"
	cli("push", "e2e/local:1", ref)
	if got := skopeoDigest(t, "docker://"+ref); got != digest {
		t.Errorf("strata push sent %s, the build made %s", got, digest)
	}
	cli("prune")
	if out := cli("images"); !strings.Contains(out, "e2e/local") {
		t.Errorf("strata prune removed a tagged image:\n%s", out)
	}
	e.mustBuild(t, "--root", store, "-t", "e2e/local:1", "--iidfile", iid, ctxDir)
	digest = readDigest(t, iid) // a new created time without SOURCE_DATE_EPOCH
	t.Run("save to stdout, load", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "store")
		saved := e.run(nil, nil, "save", "--root", store, "e2e/local:1", "-o", "-")
		if saved.err != nil || saved.stderr != "" {
			t.Fatalf("save -o -: %v\n%s", saved.err, saved.stderr)
		}
		r := e.run(strings.NewReader(saved.stdout), nil, "load", "--root", other)
		if r.err != nil || r.stdout != "Loaded image: e2e/local:1\n" {
			t.Fatalf("load: %v\n%s", r.err, r.output())
		}
		if got := cliIn(t, e, other, "images", "--format", "{{.Digest}}"); got != digest+"\n" {
			t.Errorf("loaded %q, saved %s", got, digest)
		}
		bad := e.run(strings.NewReader("not an archive"), nil, "load", "--root", other)
		if bad.err == nil || strings.Count(bad.stderr, "\n") != 1 || !strings.Contains(bad.stderr, "load: stdin: ") {
			t.Errorf("load of garbage: %v, stderr %q", bad.err, bad.stderr)
		}
	})
	t.Run("tag, inspect, rmi", func(t *testing.T) {
		cli("tag", "e2e/local:1", "e2e/other:2")
		if got := cli("inspect", "-f", "{{.Id}} {{(index .History 0).Layer}}", "e2e/other:2"); !strings.HasPrefix(got, digest+" sha256:") {
			t.Errorf("inspect: %q, want %s and its first layer", got, digest)
		}
		if got := cli("rmi", "e2e/other:2"); got != "Untagged: e2e/other:2\n" {
			t.Errorf("rmi printed %q", got)
		}
		if r := e.run(nil, nil, "inspect", "--root", store, "e2e/other:2"); r.err == nil || !strings.Contains(r.stderr, "no such image: e2e/other:2") {
			t.Errorf("inspect after rmi: %v %q", r.err, r.stderr)
		}
	})
	t.Run("prune --keep-storage", func(t *testing.T) {
		if got := cli("prune", "--keep-storage", "10GB"); !strings.HasPrefix(got, "removed 0 blobs, 0 snapshots, 0 cache entries, 0 cache mounts\n") {
			t.Errorf("prune --keep-storage 10GB removed what fits: %q", got)
		}
		if got := cli("prune", "--keep-storage", "1"); strings.HasPrefix(got, "removed 0 blobs, 0 snapshots, 0 cache entries") {
			t.Errorf("prune --keep-storage 1 kept everything: %q", got)
		}
		if got := cli("images", "-q"); got != shortID(digest)+"\n" {
			t.Errorf("prune removed a tagged image: %q", got)
		}
	})
	t.Run("build -o type=docker,dest=- to skopeo", func(t *testing.T) {
		r := e.run(nil, nil, "build", "--root", store, "--progress", "plain", "-t", "e2e/piped:1", "-o", "type=docker,dest=-", ctxDir)
		if r.err != nil || !strings.Contains(r.stderr, "exporting to docker image format") || strings.HasSuffix(r.stdout, digest+"\n") {
			t.Fatalf("build -o type=docker,dest=-: %v\nstderr:\n%s", r.err, r.stderr)
		}
		archive := filepath.Join(t.TempDir(), "piped.tar")
		if err := os.WriteFile(archive, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		skopeoInspectArchive(t, "docker-archive:"+archive)
		if _, err := exec.LookPath("docker"); err == nil && exec.Command("docker", "info").Run() == nil {
			load := exec.Command("docker", "load", "-i", archive)
			if out, err := load.CombinedOutput(); err != nil || !strings.Contains(string(out), "e2e/piped:1") {
				t.Errorf("docker load: %v\n%s", err, out)
			}
			exec.Command("docker", "rmi", "e2e/piped:1").Run()
		}
	})
}

// cliIn runs a strata store command on the store at root and returns its stdout.
func cliIn(t *testing.T, e *e2eEnv, root string, args ...string) string {
	t.Helper()
	r := e.run(nil, nil, append(args[:1:1], append([]string{"--root", root}, args[1:]...)...)...)
	if r.err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), r.err, r.output())
	}
	return r.stdout
}
