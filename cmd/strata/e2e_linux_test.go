package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-build/strata/internal/filecopy"
)

// e2eRoot holds one directory per end-to-end case: a Dockerfile and its build context.
const e2eRoot = "../../testdata/e2e"

// epoch is the SOURCE_DATE_EPOCH of the case builds: with it, the rebuilds that push the image
// and write it as a Docker archive must give the very image the first build gave.
const epoch = "1700000000"

// TestE2E builds real Dockerfiles with the strata binary and checks the images with other
// tools: go-containerregistry, skopeo, umoci, runc, and Debian's docker-registry. One test
// owns the setup (binaries, registry, base images) so that it is made once and torn down
// after every subtest, parallel ones included, has finished.
func TestE2E(t *testing.T) {
	needTools(t)
	start := time.Now()
	e := setupEnv(t)
	t.Logf("setup (go build, mkrootfs, registry, seeding) took %v", time.Since(start).Round(time.Millisecond))
	t.Run("harness", e.testHarness)
	// Bad input first and alone: it compares the mounts and strata processes before and after
	// each build, which the parallel builds below would disturb.
	t.Run("bad-input", e.testBadInput)
	t.Run("images", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), "store")
		for _, c := range e2eCases() {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				e.checkCase(t, c, store)
			})
		}
		t.Run("onbuild", func(t *testing.T) {
			t.Parallel()
			e.testOnBuild(t, store)
		})
		t.Run("outputs", func(t *testing.T) {
			t.Parallel()
			e.testOutputs(t, store)
		})
		t.Run("stdin", func(t *testing.T) {
			t.Parallel()
			e.testStdin(t, store)
		})
		t.Run("store-commands", func(t *testing.T) {
			t.Parallel()
			e.testStoreCommands(t)
		})
		t.Run("reproducible", func(t *testing.T) {
			t.Parallel()
			e.testReproducible(t)
		})
		t.Run("repro-anywhere", func(t *testing.T) { t.Parallel(); e.testReproAnywhere(t) })
		t.Run("cache", func(t *testing.T) {
			t.Parallel()
			e.testCache(t)
		})
		t.Run("pull-once", func(t *testing.T) {
			t.Parallel()
			e.testPullOnce(t)
		})
		t.Run("store-private", func(t *testing.T) {
			t.Parallel()
			e.testStorePrivate(t)
		})
		t.Run("umask", func(t *testing.T) {
			t.Parallel()
			e.testUmask(t)
		})
		t.Run("prune-during-build", func(t *testing.T) {
			t.Parallel()
			e.testPruneDuringBuild(t)
		})
		t.Run("outputs-on-the-host", func(t *testing.T) {
			t.Parallel()
			e.testOutputsOnTheHost(t)
		})
		t.Run("check-repro", func(t *testing.T) {
			t.Parallel()
			e.testCheckRepro(t)
		})
		t.Run("registry-cache", func(t *testing.T) {
			t.Parallel()
			e.testRegistryCache(t)
		})
		t.Run("explain-cache", func(t *testing.T) {
			t.Parallel()
			e.testExplainCache(t)
		})
		t.Run("unprivileged-container", func(t *testing.T) {
			t.Parallel()
			e.testUnprivilegedContainer(t)
		})
		t.Run("secrets", func(t *testing.T) {
			t.Parallel()
			e.testSecrets(t)
		})
		t.Run("attestations", func(t *testing.T) {
			t.Parallel()
			e.testAttestations(t)
		})
		t.Run("platforms", func(t *testing.T) {
			t.Parallel()
			e.testPlatforms(t)
		})
		t.Run("platform-labels", func(t *testing.T) {
			t.Parallel()
			e.testPlatformLabels(t)
		})
		t.Run("platforms-rootless", func(t *testing.T) {
			t.Parallel()
			e.testPlatformsRootless(t)
		})
		t.Run("ssh", func(t *testing.T) {
			t.Parallel()
			e.testSSH(t)
		})
		t.Run("rootless", func(t *testing.T) {
			t.Parallel()
			e.testRootless(t)
		})
	})
	t.Logf("end-to-end suite took %v", time.Since(start).Round(time.Millisecond))
}

// context copies testdata/e2e/<dir> to a fresh directory and adds the files the case needs.
func (e *e2eEnv) context(t *testing.T, dir string, needs []string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "context")
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(e2eRoot, dir))); err != nil {
		t.Fatalf("copying context %s: %v", dir, err)
	}
	if err := normaliseModes(dst); err != nil {
		t.Fatal(err)
	}
	// A Dockerfile may name the test's registry where it cannot take a build arg.
	df := filepath.Join(dst, "Dockerfile")
	if b, err := os.ReadFile(df); err == nil && bytes.Contains(b, []byte("REGISTRY_ADDRESS")) {
		writeFile(t, df, strings.ReplaceAll(string(b), "REGISTRY_ADDRESS", e.registry))
	}
	for _, n := range needs {
		p := filepath.Join(dst, n)
		_ = os.Remove(p) // a rootfs.tar.gz left by build-hello.sh is replaced
		if err := e.addNeed(t, n, p); err != nil {
			t.Fatalf("adding %s to the context: %v", n, err)
		}
	}
	return dst
}

// normaliseModes sets 0755 on directories and executables and 0644 on other files, so that
// what COPY preserves does not depend on the umask the tests run under.
func normaliseModes(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() || fi.Mode()&0o100 != 0 {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
}

func (e *e2eEnv) addNeed(t *testing.T, n, dst string) error {
	switch n {
	case "busybox.tar.gz", "rootfs.tar.gz":
		return filecopy.Content(e.busybox, dst, 0o644)
	case "files.tar":
		return os.WriteFile(dst, filesTar(t), 0o644)
	case "devices.tar.gz":
		return os.WriteFile(dst, gzipped(devicesTar(t)), 0o644)
	case "files.tar.gz":
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(filesTar(t)); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		return os.WriteFile(dst, buf.Bytes(), 0o644)
	}
	src, ok := e.shared[n]
	if !ok {
		t.Skipf("%s is not in %s (see its PROVENANCE.md)", sharedFiles[n], sharedRootfs)
	}
	return filecopy.Content(src, dst, 0o644)
}

// devicesTar is an archive of what only root can make on disk: character and block device
// nodes owned by other users, and a fifo.
func devicesTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/null2", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "dev/ttyX", Typeflag: tar.TypeChar, Mode: 0o620, Uid: 0, Gid: 5, Devmajor: 4, Devminor: 7},
		{Name: "dev/loopX", Typeflag: tar.TypeBlock, Mode: 0o660, Uid: 0, Gid: 6, Devmajor: 7, Devminor: 9},
		{Name: "dev/fifo", Typeflag: tar.TypeFifo, Mode: 0o644, Uid: 1000, Gid: 1000},
	}
	for _, h := range hdrs {
		h.ModTime, h.Format = time.Unix(1600000000, 0), tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// filesTar is a small archive for ADD: a directory, a file, a hard link and a symlink to it.
func filesTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1600000000, 0)
	content := "hello from a tar\n"
	hdrs := []*tar.Header{
		{Name: "pkg/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "pkg/hello.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))},
		{Name: "pkg/hardlink.txt", Typeflag: tar.TypeLink, Linkname: "pkg/hello.txt"},
		{Name: "pkg/link.txt", Typeflag: tar.TypeSymlink, Linkname: "hello.txt", Mode: 0o777},
	}
	for _, h := range hdrs {
		h.ModTime, h.Format = mtime, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, content)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// caseArgs are the build flags every build of c uses.
func (e *e2eEnv) caseArgs(c e2eCase, store string) []string {
	args := []string{"--root", store, "--source-date-epoch", epoch}
	if c.base != "" {
		args = append(args, "--build-arg", "BASE="+e.base(c.base))
	}
	if c.url {
		args = append(args, "--build-arg", "URL="+e.fileURL)
	}
	return append(args, c.args...)
}

// checkCase builds c as an OCI archive and checks it every way the suite knows; it returns the
// registry reference it pushed the image to.
func (e *e2eEnv) checkCase(t *testing.T, c e2eCase, store string) string {
	t.Helper()
	dir := c.dir
	if dir == "" {
		dir = c.name
	}
	ctxDir := e.context(t, dir, c.needs)
	out := t.TempDir()
	ref := e.registry + "/e2e/" + c.name + ":latest"
	archive := filepath.Join(out, "image.tar")
	args := e.caseArgs(c, store)
	e.mustBuild(t, append(args, "-t", ref, "-o", "type=oci,dest="+archive,
		"--iidfile", filepath.Join(out, "iid"), "--metadata-file", filepath.Join(out, "meta.json"), ctxDir)...)
	digest := readDigest(t, filepath.Join(out, "iid"))
	if md := metadataDigest(t, filepath.Join(out, "meta.json")); md != digest {
		t.Errorf("--metadata-file containerimage.digest = %q, --iidfile = %s", md, digest)
	}
	img, archived := ociArchiveImage(t, archive)
	if archived != digest {
		t.Errorf("OCI archive holds manifest %s, --iidfile says %s", archived, digest)
	}
	checkHistory(t, img)
	if c.check != nil {
		c.check(t, img)
	}
	if got := skopeoDigest(t, "oci-archive:"+archive); got != digest {
		t.Errorf("skopeo reads manifest %s from the OCI archive, want %s", got, digest)
	}
	if got := runImage(t, archive); got != c.want {
		t.Errorf("running the image printed:\n%s\nwant:\n%s", got, c.want)
	}
	e.checkPush(t, args, ref, ctxDir, digest)
	e.checkDockerArchive(t, args, ref, ctxDir)
	return ref
}

// checkPush builds again with --push and checks the registry serves the same manifest, both to
// skopeo inspect and to a skopeo copy back into an OCI layout.
func (e *e2eEnv) checkPush(t *testing.T, args []string, ref, ctxDir, digest string) {
	t.Helper()
	iid := filepath.Join(t.TempDir(), "iid")
	e.mustBuild(t, append(args, "-t", ref, "--push", "--iidfile", iid, ctxDir)...)
	if got := readDigest(t, iid); got != digest {
		t.Errorf("the --push build made %s, the first build %s", got, digest)
	}
	if got := skopeoDigest(t, "docker://"+ref); got != digest {
		t.Errorf("registry serves manifest %s for %s, want %s", got, ref, digest)
	}
	if got := pullBack(t, ref); got != digest {
		t.Errorf("skopeo copy of %s gave manifest %s, want %s", ref, got, digest)
	}
}

// checkDockerArchive builds again as a `docker load` archive and has skopeo read it.
func (e *e2eEnv) checkDockerArchive(t *testing.T, args []string, ref, ctxDir string) {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "docker.tar")
	e.mustBuild(t, append(args, "-t", ref, "-o", "type=docker,dest="+archive, ctxDir)...)
	skopeoInspectArchive(t, "docker-archive:"+archive)
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatalf("reading the docker archive: %v", err)
	}
	validateImage(t, img)
}

// testOnBuild pushes an image with ONBUILD triggers and builds on it: the triggers run in the
// child's build, and the child does not pass them on.
func (e *e2eEnv) testOnBuild(t *testing.T, store string) {
	parent := e2eCase{name: "onbuild-parent", base: "busybox:latest", want: "parent\n", check: func(t *testing.T, img v1.Image) {
		if n := len(configOf(t, img).Config.OnBuild); n != 2 {
			t.Errorf("parent config has %d ONBUILD triggers, want 2", n)
		}
	}}
	ref := e.checkCase(t, parent, store)
	child := e2eCase{name: "onbuild-child", base: strings.TrimPrefix(ref, e.registry+"/"),
		want: "onbuild trigger ran\nchild context file\n", check: func(t *testing.T, img v1.Image) {
			if n := len(configOf(t, img).Config.OnBuild); n != 0 {
				t.Errorf("child config has %d ONBUILD triggers, want none", n)
			}
		}}
	e.checkCase(t, child, store)
}
