package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/internal/binfmt"
)

// arm64Busybox is where testdata/install-test-deps.sh puts Debian's arm64 busybox-static.
const arm64Busybox = "/var/cache/strata-test/arm64/busybox"

// multiBaseRef is the two-platform busybox seedMultiPlatform pushes.
const multiBaseRef = "busybox-multi:latest"

// seedMultiPlatform pushes busybox-multi:latest, an OCI index of the host's busybox image
// (e.busybox, linux/amd64 on CI) and an arm64 one made by mkrootfs from Debian's arm64
// busybox, each platform in its config and in its index descriptor. It returns the image's
// reference (the cases' BASE), or "" and why this machine cannot make or run it: no arm64
// busybox, or no emulator a RUN step in the sandbox can use.
func (e *e2eEnv) seedMultiPlatform(t *testing.T) (ref, skip string) {
	t.Helper()
	if _, err := os.Stat(arm64Busybox); err != nil {
		return "", fmt.Sprintf("no arm64 busybox at %s: run testdata/install-test-deps.sh (%v)", arm64Busybox, err)
	}
	arm64 := specs.Platform{OS: "linux", Architecture: "arm64"}
	s, err := binfmt.Supports(arm64)
	switch {
	case err != nil:
		return "", fmt.Sprintf("no arm64 emulator: %v; run testdata/install-test-deps.sh", err)
	case !s.OK():
		return "", "no binfmt_misc handler runs arm64 binaries here: install qemu-user-static and run testdata/install-test-deps.sh"
	case s.Handler != nil && !s.Handler.FixBinary():
		return "", fmt.Sprintf("the arm64 binfmt_misc handler %s lacks the F flag: the sandbox cannot reach its interpreter", s.Handler.Name)
	}
	mkrootfs := filepath.Join(e.work, "bin", "mkrootfs")
	if _, err := os.Stat(mkrootfs); err != nil {
		mkrootfs = goBuild(t, e.work, "github.com/strata-build/strata/cmd/mkrootfs")
	}
	tarball := filepath.Join(e.work, "busybox-arm64.tar.gz")
	if out, err := exec.Command(mkrootfs, "-busybox", arm64Busybox, tarball).CombinedOutput(); err != nil {
		t.Fatalf("mkrootfs -busybox %s: %v\n%s", arm64Busybox, err, out)
	}
	host, err := platformImage(e.busybox, v1.Platform{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatalf("seeding %s: %v", multiBaseRef, err)
	}
	arm, err := platformImage(tarball, v1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatalf("seeding %s: %v", multiBaseRef, err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, a := range []struct {
		img  v1.Image
		plat v1.Platform
	}{{host, v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}, {arm, v1.Platform{OS: "linux", Architecture: "arm64"}}} {
		plat := a.plat
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: a.img, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	r, err := name.ParseReference(e.base(multiBaseRef))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(context.Background())); err != nil {
		t.Fatalf("seeding %s: %v", multiBaseRef, err)
	}
	return e.base(multiBaseRef), ""
}

// platformImage is baseImage's OCI image of a rootfs tarball, its config saying p.
func platformImage(file string, p v1.Platform) (v1.Image, error) {
	img, err := baseImage(file, true, []string{"/bin/sh"})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	return mutate.ConfigFile(img, cf)
}

// TestSeedMultiPlatform checks the seed with third-party tools: skopeo picks each platform
// from the index, umoci unpacks the arm64 one, and its busybox runs as aarch64 (through
// binfmt_misc on an amd64 host).
func TestSeedMultiPlatform(t *testing.T) {
	needTools(t)
	work := t.TempDir()
	e := &e2eEnv{work: work, busybox: filepath.Join(work, "busybox.tar.gz")}
	mkrootfs := goBuild(t, work, "github.com/strata-build/strata/cmd/mkrootfs")
	if out, err := exec.Command(mkrootfs, e.busybox).CombinedOutput(); err != nil {
		t.Fatalf("mkrootfs: %v\n%s", err, out)
	}
	e.registry, _ = startRegistry(t, filepath.Join(work, "registry"))
	ref, skip := e.seedMultiPlatform(t)
	if ref == "" {
		t.Skip(skip)
	}
	if ref != e.registry+"/"+multiBaseRef {
		t.Errorf("ref %q", ref)
	}
	raw := seedSkopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+ref)
	if !strings.Contains(raw, `"mediaType":"application/vnd.oci.image.index.v1+json"`) ||
		!strings.Contains(raw, `"platform":{"architecture":"arm64","os":"linux"}`) ||
		!strings.Contains(raw, `"platform":{"architecture":"`+runtime.GOARCH+`","os":"linux"}`) {
		t.Errorf("the index:\n%s", raw)
	}
	for _, arch := range []string{runtime.GOARCH, "arm64"} {
		cfg := seedSkopeo(t, "inspect", "--tls-verify=false", "--config", "--override-os", "linux", "--override-arch", arch, "docker://"+ref)
		if !strings.Contains(cfg, `"architecture": "`+arch+`"`) {
			t.Errorf("%s's config:\n%s", arch, cfg)
		}
	}
	layout := filepath.Join(work, "layout")
	seedSkopeo(t, "copy", "--src-tls-verify=false", "--override-os", "linux", "--override-arch", "arm64", "docker://"+ref, "oci:"+layout+":arm64")
	bundle := filepath.Join(work, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", layout+":arm64", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(bundle, "rootfs/bin/busybox"), "uname", "-m").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "aarch64" {
		t.Errorf("the arm64 image's busybox: %v %q", err, out)
	}
}

// seedSkopeo runs skopeo and returns its output, failing the test on an error.
func seedSkopeo(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
