package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testPlatformLabels builds a cross-compiling Dockerfile whose final stage is FROM its
// $BUILDPLATFORM stage: each image is its target's, in the index as skopeo reads it, in one
// directory per platform, and for one --platform alone. Then a store tag naming an index
// without linux/arm64 does not hide the registry's arm64 image of that name.
func (e *e2eEnv) testPlatformLabels(t *testing.T) {
	if e.multiBase == "" {
		t.Skip(e.multiSkip)
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	ctxDir := filepath.Join(dir, "context")
	if err := os.Mkdir(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), "ARG BASE\nFROM --platform=$BUILDPLATFORM $BASE AS build\nARG TARGETARCH\nRUN echo $TARGETARCH > /target\n\nFROM build\n")
	archive := filepath.Join(dir, "multi.tar")
	e.mustBuild(t, "--root", store, "--platform", "linux/amd64,linux/arm64", "--build-arg", "BASE="+e.multiBase, "-o", "type=oci,dest="+archive, ctxDir)
	var idx struct {
		Manifests []struct {
			Platform struct{ OS, Architecture string }
		}
	}
	raw := tool(t, "skopeo", "--insecure-policy", "inspect", "--raw", "oci-archive:"+archive)
	if err := json.Unmarshal([]byte(raw), &idx); err != nil {
		t.Fatalf("skopeo inspect --raw: %v\n%s", err, raw)
	}
	var plats []string
	for _, m := range idx.Manifests {
		plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	if !slices.Equal(plats, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("the index lists %v, want linux/amd64, linux/arm64:\n%s", plats, raw)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		inspect := tool(t, "skopeo", "--insecure-policy", "--override-arch", arch, "inspect", "oci-archive:"+archive)
		if !strings.Contains(inspect, `"Architecture": "`+arch+`"`) {
			t.Errorf("skopeo --override-arch %s inspect: %s", arch, inspect)
		}
	}
	local := filepath.Join(dir, "local")
	e.mustBuild(t, "--root", store, "--platform", "linux/amd64,linux/arm64", "--build-arg", "BASE="+e.multiBase, "-o", "type=local,dest="+local, ctxDir)
	for _, arch := range []string{"amd64", "arm64"} {
		if b, err := os.ReadFile(filepath.Join(local, "linux_"+arch, "target")); err != nil || strings.TrimSpace(string(b)) != arch {
			t.Errorf("type=local linux_%s/target = %q (%v), want %s", arch, b, err, arch)
		}
	}
	one := filepath.Join(dir, "one.tar")
	e.mustBuild(t, "--root", store, "--platform", "linux/arm64", "--build-arg", "BASE="+e.multiBase, "-o", "type=oci,dest="+one, ctxDir)
	if inspect := tool(t, "skopeo", "--insecure-policy", "inspect", "oci-archive:"+one); !strings.Contains(inspect, `"Architecture": "arm64"`) {
		t.Errorf("--platform linux/arm64 alone: skopeo inspect: %s", inspect)
	}

	// The store's e.multiBase: a strata build for linux/amd64 and linux/s390x only.
	tagged := filepath.Join(dir, "tagged")
	if err := os.Mkdir(tagged, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tagged, "Dockerfile"), "FROM scratch\nENV LOCAL=1\n")
	e.mustBuild(t, "--root", store, "--platform", "linux/amd64,linux/s390x", "-t", e.multiBase, tagged)
	child := filepath.Join(dir, "child")
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(child, "Dockerfile"), "FROM "+e.multiBase+"\nRUN uname -m > /arch\n")
	out := filepath.Join(dir, "child-out")
	e.mustBuild(t, "--root", store, "--platform", "linux/arm64", "-o", "type=local,dest="+out, child)
	if b, err := os.ReadFile(filepath.Join(out, "arch")); err != nil || strings.TrimSpace(string(b)) != "aarch64" {
		t.Errorf("FROM %s for linux/arm64, the store's index lacking it: /arch = %q (%v), want the registry's arm64 image's aarch64", e.multiBase, b, err)
	}
}

// testPlatformsRootless builds testdata/e2e/platforms for linux/amd64 and linux/arm64 as a
// user without root: the arm64 RUN goes through binfmt_misc's emulator inside the user's
// namespaces too, each platform's directory says its machine, and the index is the one a
// root build gives.
func (e *e2eEnv) testPlatformsRootless(t *testing.T) {
	if e.multiBase == "" {
		t.Skip(e.multiSkip)
	}
	ids, _ := e.rootlessUsers(t)
	src := e.context(t, "platforms", nil)
	args := []string{"--platform", "linux/amd64,linux/arm64", "--build-arg", "BASE=" + e.multiBase}
	rootIID := filepath.Join(t.TempDir(), "iid")
	if r := e.run(nil, []string{"SOURCE_DATE_EPOCH=" + epoch}, append([]string{"build", "--root", filepath.Join(t.TempDir(), "store"), "--iidfile", rootIID}, append(args, src)...)...); r.err != nil {
		t.Fatalf("strata build as root: %v\n%s", r.err, r.output())
	}
	out := ids.tempDir(t, "out")
	local, iid := filepath.Join(out, "local"), filepath.Join(out, "iid")
	r := ids.build(append(args, "-o", "type=local,dest="+local, "--iidfile", iid, ids.giveContext(t, src))...)
	if r.err != nil {
		t.Fatalf("strata build as %s: %v\nstdout:\n%s\nstderr:\n%s", ids.name, r.err, r.stdout, r.stderr)
	}
	for arch, machine := range map[string]string{"amd64": "x86_64", "arm64": "aarch64"} {
		if b, err := os.ReadFile(filepath.Join(local, "linux_"+arch, "arch")); err != nil || strings.TrimSpace(string(b)) != machine {
			t.Errorf("rootless linux_%s/arch = %q (%v), want %s", arch, b, err, machine)
		}
	}
	if got, want := readDigest(t, iid), readDigest(t, rootIID); got != want {
		t.Errorf("the rootless build's index is %s, root's %s", got, want)
	}
}
