package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testPlatforms builds testdata/e2e/platforms for linux/amd64 and linux/arm64 from a
// two-platform base: one OCI index, an image per platform whose RUN saw its own machine
// (x86_64, aarch64 through QEMU), the cross-compile stage run natively for each target.
// skopeo reads the index and each platform's image, umoci unpacks them, runc runs them (the
// arm64 one through the same emulator), and the push to the registry keeps it all.
func (e *e2eEnv) testPlatforms(t *testing.T) {
	if e.multiBase == "" {
		t.Skip(e.multiSkip)
	}
	dir := t.TempDir()
	store, archive := filepath.Join(dir, "store"), filepath.Join(dir, "multi.tar")
	iid := filepath.Join(dir, "iid")
	ctxDir := e.context(t, "platforms", nil)
	ref := e.registry + "/e2e/platforms:1"
	r := e.mustBuild(t, "--root", store, "--platform", "linux/amd64,linux/arm64", "--build-arg", "BASE="+e.multiBase,
		"-t", ref, "-o", "type=oci,dest="+archive, "--push", "--iidfile", iid, ctxDir)
	for _, label := range []string{"[linux/amd64 build ", "[linux/arm64 stage-1 ", "[linux/amd64 stage-1 "} {
		if !strings.Contains(r.stderr, label) {
			t.Errorf("progress lacks a %q step:\n%s", label, r.stderr)
		}
	}
	// The index, as skopeo reads it: two images with their platforms.
	raw := tool(t, "skopeo", "--insecure-policy", "inspect", "--raw", "oci-archive:"+archive)
	var idx struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest   string `json:"digest"`
			Platform struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(raw), &idx); err != nil {
		t.Fatalf("skopeo inspect --raw: %v\n%s", err, raw)
	}
	var plats []string
	for _, m := range idx.Manifests {
		plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	if idx.MediaType != "application/vnd.oci.image.index.v1+json" || !slices.Equal(plats, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("the archive holds %s of %v, want an OCI index of linux/amd64, linux/arm64:\n%s", idx.MediaType, plats, raw)
	}
	if got, pushed := readDigest(t, iid), skopeoDigest(t, "docker://"+ref); got != pushed {
		t.Errorf("--iidfile %s, but the registry's index is %s", got, pushed)
	}
	want := map[string][]string{
		"amd64": {"built on x86_64 (linux/amd64 linux amd64) for linux/amd64 (linux amd64 [])", "x86_64"},
		"arm64": {"built on x86_64 (linux/amd64 linux amd64) for linux/arm64 (linux arm64 [])", "aarch64"},
	}
	for _, arch := range []string{"amd64", "arm64"} {
		// skopeo picks the platform's image out of the index, from the archive and from the registry.
		inspect := tool(t, "skopeo", "--insecure-policy", "--override-arch", arch, "inspect", "oci-archive:"+archive)
		if !strings.Contains(inspect, `"Architecture": "`+arch+`"`) {
			t.Errorf("skopeo --override-arch %s inspect: %s", arch, inspect)
		}
		tool(t, "skopeo", "--insecure-policy", "--override-arch", arch, "inspect", "--tls-verify=false", "docker://"+ref)
		lay := filepath.Join(dir, "layout-"+arch)
		tool(t, "skopeo", "--insecure-policy", "--override-arch", arch, "copy", "--quiet", "oci-archive:"+archive, "oci:"+lay+":e2e")
		bundle := filepath.Join(dir, "bundle-"+arch)
		tool(t, "umoci", "unpack", "--image", lay+":e2e", bundle)
		for i, f := range []string{"built", "arch"} {
			b, err := os.ReadFile(filepath.Join(bundle, "rootfs", f))
			if err != nil || strings.TrimSpace(string(b)) != want[arch][i] {
				t.Errorf("%s image /%s = %q (%v), want %q", arch, f, b, err, want[arch][i])
			}
		}
	}
	// A warm rebuild: everything cached, the same index.
	iid2 := filepath.Join(dir, "iid2")
	r = e.mustBuild(t, "--root", store, "--platform", "linux/amd64,linux/arm64", "--build-arg", "BASE="+e.multiBase, "--iidfile", iid2, ctxDir)
	if readDigest(t, iid2) != readDigest(t, iid) {
		t.Errorf("warm build gave %s, cold %s", readDigest(t, iid2), readDigest(t, iid))
	}
	if strings.Contains(r.stderr, "RUN uname") && !strings.Contains(r.stderr, "CACHED") {
		t.Errorf("warm build ran steps again:\n%s", r.stderr)
	}

	// A base with no arm64 image: the build fails before any step, naming the base and what it has.
	bad := e.context(t, "platforms-base", nil)
	res := e.run(nil, nil, "build", "--root", store, "--platform", "linux/arm64", "--build-arg", "BASE="+e.base("busybox:latest"), bad)
	if res.err == nil || !strings.Contains(res.stderr, "no image for linux/arm64: it has linux/amd64") || !strings.Contains(res.stderr, "busybox:latest") {
		t.Errorf("building an amd64-only base for linux/arm64: %v\n%s", res.err, res.output())
	}
	// type=docker cannot hold two platforms: refused before any work.
	res = e.run(nil, nil, "build", "--root", store, "--platform", "linux/amd64,linux/arm64", "--build-arg", "BASE="+e.multiBase,
		"-o", "type=docker,dest="+filepath.Join(dir, "d.tar"), ctxDir)
	if res.err == nil || !strings.Contains(res.stderr, "a docker archive holds one platform") || strings.Contains(res.stderr, "#1 ") {
		t.Errorf("type=docker with two platforms: %v\n%s", res.err, res.output())
	}
}
