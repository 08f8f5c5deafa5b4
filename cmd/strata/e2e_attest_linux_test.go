package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/internal/filecopy"
)

// statement is the part of an in-toto statement the test reads.
type statement struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate json.RawMessage `json:"predicate"`
}

// attestedImage is one platform's image of an index and the statements attached to it.
type attestedImage struct {
	platform   string
	digest     v1.Hash
	statements map[string]statement // by predicate type
}

// readAttested reads an index as a client does: the images by platform, and for each the
// attestation manifest whose vnd.docker.reference.digest names it.
func readAttested(t *testing.T, idx v1.ImageIndex) map[string]*attestedImage {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	byDigest := map[string]*attestedImage{}
	out := map[string]*attestedImage{}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS != "unknown" {
			a := &attestedImage{platform: d.Platform.OS + "/" + d.Platform.Architecture, digest: d.Digest, statements: map[string]statement{}}
			out[a.platform], byDigest[d.Digest.String()] = a, a
		}
	}
	for _, d := range im.Manifests {
		if d.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			continue
		}
		if d.Platform == nil || d.Platform.OS != "unknown" || d.Platform.Architecture != "unknown" {
			t.Errorf("attestation manifest %s has platform %v, want unknown/unknown", d.Digest, d.Platform)
		}
		a := byDigest[d.Annotations["vnd.docker.reference.digest"]]
		if a == nil {
			t.Fatalf("attestation manifest %s names %s, no image of the index", d.Digest, d.Annotations["vnd.docker.reference.digest"])
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range ls {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			var st statement
			err = json.NewDecoder(rc).Decode(&st)
			rc.Close()
			if err != nil {
				t.Fatalf("attestation layer %d: %v", i, err)
			}
			if m.Layers[i].MediaType != "application/vnd.in-toto+json" || m.Layers[i].Annotations["in-toto.io/predicate-type"] != st.PredicateType {
				t.Errorf("attestation layer %d: %s annotated %v, statement of %s", i, m.Layers[i].MediaType, m.Layers[i].Annotations, st.PredicateType)
			}
			a.statements[st.PredicateType] = st
		}
	}
	return out
}

// spdxPackages are an SPDX document's packages: name -> version, and the purls.
func spdxPackages(t *testing.T, st statement) (map[string]string, []string) {
	t.Helper()
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name         string `json:"name"`
			Version      string `json:"versionInfo"`
			ExternalRefs []struct {
				Type    string `json:"referenceType"`
				Locator string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(st.Predicate, &doc); err != nil {
		t.Fatalf("SPDX predicate: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" {
		t.Errorf("spdxVersion %q", doc.SPDXVersion)
	}
	pkgs := map[string]string{}
	var purls []string
	for _, p := range doc.Packages {
		pkgs[p.Name] = p.Version
		for _, r := range p.ExternalRefs {
			if r.Type == "purl" {
				purls = append(purls, r.Locator)
			}
		}
	}
	return pkgs, purls
}

// testAttestations builds testdata/e2e/attest with --provenance=mode=max --sbom=true for two
// platforms (one when this machine has no arm64 base), pushes it and writes an OCI archive,
// and reads both as a client would: every image has its attestation manifest, whose
// statements name its digest; the SBOM lists this Debian machine's dpkg packages with the
// versions dpkg-query gives, the Go binary's modules, and Alpine's apk packages; the
// provenance names the base image with its digest and carries the Dockerfile. With
// SOURCE_DATE_EPOCH a rebuild without cache gives the same index; --attest-referrers puts
// the statements where the registry's referrers lookup finds them.
func (e *e2eEnv) testAttestations(t *testing.T) {
	t.Run("leaks", e.testAttestationLeaks)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	ctxDir := e.context(t, "attest", nil)
	status, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Skipf("no dpkg database on this machine: %v", err)
	}
	writeFile(t, filepath.Join(ctxDir, "dpkg-status"), string(status))
	if err := filecopy.Content("/etc/os-release", filepath.Join(ctxDir, "os-release"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := filecopy.Content(filepath.Join(e.work, "bin", "mkrootfs"), filepath.Join(ctxDir, "gobinary"), 0o755); err != nil {
		t.Fatal(err)
	}
	base, plats := e.base("busybox:latest"), "linux/amd64"
	if e.multiBase != "" {
		base, plats = e.multiBase, "linux/amd64,linux/arm64"
	}
	ref := e.registry + "/e2e/attest:1"
	archive, iid := filepath.Join(dir, "debian.tar"), filepath.Join(dir, "iid")
	epoch := []string{"SOURCE_DATE_EPOCH=1700000000"}
	args := []string{"build", "--progress", "plain", "--root", store, "--platform", plats, "--build-arg", "BASE=" + base,
		"--provenance=mode=max", "--sbom=true", "--build-arg", "ATTEST_ARG=visible-in-max", "--target", "debian"}
	r := e.run(nil, epoch, append(args, "-t", ref, "--push", "-o", "type=oci,dest="+archive, "--iidfile", iid, ctxDir)...)
	if r.err != nil {
		t.Fatalf("build: %v\n%s", r.err, r.output())
	}
	// The registry keeps everything: the same index, read back by skopeo and by a client.
	if got, pushed := readDigest(t, iid), skopeoDigest(t, "docker://"+ref); got != pushed {
		t.Errorf("--iidfile %s, the registry's index %s", got, pushed)
	}
	tool(t, "skopeo", "--insecure-policy", "copy", "--all", "--quiet", "--src-tls-verify=false", "docker://"+ref, "oci:"+filepath.Join(dir, "pulled")+":e2e")
	r2, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := remote.Index(r2)
	if err != nil {
		t.Fatalf("reading the pushed index: %v", err)
	}
	images := readAttested(t, pushed)
	wantPlats := strings.Split(plats, ",")
	if len(images) != len(wantPlats) {
		t.Fatalf("the index holds images for %d platforms, want %s", len(images), plats)
	}
	wantDeb := dpkgVersions(t, "dpkg", "bash", "libc6")
	for _, p := range wantPlats {
		a := images[p]
		if a == nil {
			t.Fatalf("no %s image in the index", p)
		}
		prov, ok := a.statements["https://slsa.dev/provenance/v1"]
		if !ok {
			t.Fatalf("%s: no SLSA provenance statement (has %v)", p, keysOf(a.statements))
		}
		for _, st := range a.statements {
			if len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] != a.digest.Hex || !strings.Contains(st.Subject[0].Name, "platform="+strings.ReplaceAll(p, "/", "%2F")) {
				t.Errorf("%s %s: subjects %+v, want the image %s", p, st.PredicateType, st.Subject, a.digest)
			}
		}
		pv := string(prov.Predicate)
		// The base as a material: the image of this platform, by its manifest digest.
		baseDigest := platformDigest(t, base, p)
		df, err := os.ReadFile(filepath.Join(ctxDir, "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		// mode=max's build definition: the base's source step pinned to that digest, as BuildKit's.
		pin := `"identifier":"docker-image://` + base + `@sha256:` + baseDigest + `"`
		for _, want := range []string{`"sha256":"` + baseDigest + `"`, "visible-in-max", base64.StdEncoding.EncodeToString(df), pin} {
			if !strings.Contains(pv, want) {
				t.Errorf("%s provenance lacks %q:\n%s", p, want, pv)
			}
		}
		sbom, ok := a.statements["https://spdx.dev/Document"]
		if !ok {
			t.Fatalf("%s: no SPDX statement", p)
		}
		pkgs, purls := spdxPackages(t, sbom)
		for n, v := range wantDeb {
			if pkgs[n] != v {
				t.Errorf("%s SBOM: %s %q, dpkg-query says %q", p, n, pkgs[n], v)
			}
		}
		if !slicesContainsPrefix(purls, "pkg:golang/github.com/google/go-containerregistry@") {
			t.Errorf("%s SBOM lacks the Go binary's go-containerregistry module: %v", p, purls)
		}
	}
	// The archive holds the same index as the registry.
	lay := filepath.Join(dir, "layout")
	tool(t, "skopeo", "--insecure-policy", "copy", "--all", "--preserve-digests", "--quiet", "oci-archive:"+archive, "oci:"+lay+":e2e")
	if raw := tool(t, "skopeo", "--insecure-policy", "inspect", "--raw", "oci-archive:"+archive); sha256Hex(raw) != strings.TrimPrefix(readDigest(t, iid), "sha256:") {
		t.Errorf("the archive's index is not the pushed one")
	}
	if _, err := layout.ImageIndexFromPath(lay); err != nil {
		t.Errorf("the archive as an OCI layout: %v", err)
	}
	// Byte-stable: a rebuild without cache gives the same index, attestations included.
	iid2 := filepath.Join(dir, "iid2")
	if r := e.run(nil, epoch, append(args, "-t", ref, "--no-cache", "--iidfile", iid2, ctxDir)...); r.err != nil {
		t.Fatalf("rebuild: %v\n%s", r.err, r.output())
	}
	if readDigest(t, iid2) != readDigest(t, iid) {
		t.Errorf("rebuilt without cache: index %s, first %s", readDigest(t, iid2), readDigest(t, iid))
	}
	// And elsewhere: another store, the context at another path, umask 077, TMPDIR
	// elsewhere: the same bytes, attestations included.
	ctx3, iid3 := filepath.Join(dir, "elsewhere", "a-longer-context-name"), filepath.Join(dir, "iid3")
	if err := os.MkdirAll(filepath.Dir(ctx3), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", ctxDir, ctx3).CombinedOutput(); err != nil {
		t.Fatalf("copying the context: %v\n%s", err, out)
	}
	elsewhere := []string{"build", "--progress", "plain", "--root", filepath.Join(dir, "store-elsewhere"), "--platform", plats,
		"--build-arg", "BASE=" + base, "--provenance=mode=max", "--sbom=true", "--build-arg", "ATTEST_ARG=visible-in-max", "--target", "debian",
		"-t", ref, "--iidfile", iid3, ctx3}
	um := exec.Command("/bin/sh", append([]string{"-c", `umask 077; exec "$0" "$@"`, e.strata}, elsewhere...)...)
	um.Env = append(cleanEnv(), "TMPDIR="+t.TempDir(), "SOURCE_DATE_EPOCH=1700000000")
	if out, err := um.CombinedOutput(); err != nil {
		t.Fatalf("build elsewhere: %v\n%s", err, out)
	}
	if readDigest(t, iid3) != readDigest(t, iid) {
		t.Errorf("built in another store, from another path, under umask 077: index %s, first %s", readDigest(t, iid3), readDigest(t, iid))
	}

	// Alpine's package database, and the referrers form.
	aref := e.registry + "/e2e/attest-alpine:1"
	r = e.run(nil, epoch, "build", "--root", store, "--build-arg", "BASE="+e.base("busybox:latest"), "--target", "alpine",
		"--sbom=true", "--attest-referrers", "-t", aref, "--push", ctxDir)
	if r.err != nil {
		t.Fatalf("alpine build: %v\n%s", r.err, r.output())
	}
	ar, err := name.ParseReference(aref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	aidx, err := remote.Index(ar)
	if err != nil {
		t.Fatal(err)
	}
	var img *attestedImage
	for _, a := range readAttested(t, aidx) {
		img = a
	}
	if img == nil {
		t.Fatalf("no image in the alpine index")
	}
	pkgs, purls := spdxPackages(t, img.statements["https://spdx.dev/Document"])
	for _, n := range []string{"apk-tools", "musl", "busybox"} {
		if pkgs[n] == "" {
			t.Errorf("alpine SBOM lacks %s: %v", n, pkgs)
		}
	}
	if !slicesContainsPrefix(purls, "pkg:apk/alpine/musl@") {
		t.Errorf("alpine SBOM purls: %v", purls)
	}
	refs, err := remote.Referrers(ar.Context().Digest(img.digest.String()), remote.WithContext(context.Background()))
	if err != nil {
		t.Fatalf("referrers of %s: %v", img.digest, err)
	}
	rm, err := refs.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Manifests) != 1 || rm.Manifests[0].ArtifactType != "application/vnd.docker.attestation.manifest.v1+json" {
		t.Errorf("referrers of the alpine image: %+v", rm.Manifests)
	}
}

// dpkgVersions asks this machine's dpkg-query for the packages' versions.
func dpkgVersions(t *testing.T, names ...string) map[string]string {
	t.Helper()
	out, err := exec.Command("dpkg-query", append([]string{"-W", "-f", "${Package} ${Version}\n"}, names...)...).Output()
	if err != nil {
		t.Skipf("dpkg-query: %v", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if n, v, ok := strings.Cut(line, " "); ok {
			m[n] = v
		}
	}
	return m
}

// platformDigest is the manifest digest of ref's image for platform, as a client resolves it.
func platformDigest(t *testing.T, ref, platform string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithPlatform(*p))
	if err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.Hex
}

func keysOf(m map[string]statement) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func slicesContainsPrefix(s []string, prefix string) bool {
	for _, v := range s {
		if strings.HasPrefix(v, prefix) {
			return true
		}
	}
	return false
}
