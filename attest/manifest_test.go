package attest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// attested builds an image and its provenance and SBOM statements.
func attested(t *testing.T) (v1.Image, v1.Descriptor, []Statement) {
	t.Helper()
	img := imageOf(t, layerOf(t, entry{name: "lib/apk/db/installed", data: []byte("P:musl\nV:1.2.5-r0\nA:x86_64\n")}))
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	desc, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	subj, err := Subjects([]string{"example.com/app:1"}, "linux/amd64", desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	info := testInfo(t)
	prov, err := Provenance(subj, info)
	if err != nil {
		t.Fatal(err)
	}
	sbom, err := SBOM(context.Background(), subj, img, SBOMOptions{Created: sbomTime})
	if err != nil {
		t.Fatal(err)
	}
	return img, *desc, []Statement{prov, sbom}
}

// TestManifestLayout: the attestation manifest and its index entry as BuildKit writes them.
func TestManifestLayout(t *testing.T) {
	img, desc, sts := attested(t)
	att, adesc, err := Manifest(desc, sts...)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := att.RawManifest()
	var m struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Subject       *v1.Descriptor    `json:"subject"`
		Config        v1.Descriptor     `json:"config"`
		Layers        []v1.Descriptor   `json:"layers"`
		Annotations   map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.oci.image.config.v1+json" || m.ArtifactType != "" || m.Subject != nil {
		t.Errorf("manifest = %s", raw)
	}
	cfg, _ := att.RawConfigFile()
	var c struct {
		Architecture, OS string
		RootFS           struct {
			Type    string    `json:"type"`
			DiffIDs []v1.Hash `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	if c.Architecture != "unknown" || c.OS != "unknown" || c.RootFS.Type != "layers" || len(c.RootFS.DiffIDs) != 2 {
		t.Errorf("config = %s", cfg)
	}
	for i, l := range m.Layers {
		if l.MediaType != MediaTypeInToto || l.Annotations[AnnotationPredicateType] != sts[i].PredicateType || c.RootFS.DiffIDs[i] != l.Digest {
			t.Errorf("layer %d = %+v (diff id %v)", i, l, c.RootFS.DiffIDs[i])
		}
	}
	if adesc.Platform == nil || adesc.Platform.OS != "unknown" || adesc.Platform.Architecture != "unknown" ||
		adesc.Annotations[AnnotationReferenceType] != "attestation-manifest" || adesc.Annotations[AnnotationReferenceDigest] != desc.Digest.String() {
		t.Errorf("index descriptor = %+v", adesc)
	}
	if d, _ := att.Digest(); d != adesc.Digest {
		t.Errorf("descriptor digest %v, manifest %v", adesc.Digest, d)
	}

	// An index as BuildKit lays it out, written as an OCI layout, copied by skopeo (which
	// reads every blob), read back.
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}},
		mutate.IndexAddendum{Add: att, Descriptor: adesc})
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "app"})); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("skopeo"); err == nil {
		dir2 := filepath.Join(t.TempDir(), "copy")
		if out, err := exec.Command("skopeo", "copy", "--all", "oci:"+dir+":app", "oci:"+dir2+":app").CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy --all: %v\n%s", err, out)
		}
		dir = dir2
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, _ := p.ImageIndex()
	outer, _ := top.IndexManifest()
	if len(outer.Manifests) != 1 {
		t.Fatalf("layout index: %+v", outer)
	}
	back, err := top.ImageIndex(outer.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := back.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[0].Digest != desc.Digest || im.Manifests[1].Annotations[AnnotationReferenceDigest] != desc.Digest.String() {
		t.Fatalf("index after the copy: %+v", im.Manifests)
	}
	// skopeo 1.9 rewrites the index itself (it drops the artifactType go-containerregistry
	// puts in descriptors) but must keep every manifest as it is.
	if a := im.Manifests[1]; a.Digest != adesc.Digest || a.Platform == nil || a.Platform.OS != "unknown" || a.Annotations[AnnotationReferenceType] != ReferenceTypeAttestation {
		t.Errorf("attestation entry after the copy: %+v, want %+v", a, adesc)
	}
	ai, err := back.Image(im.Manifests[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Statements(ai)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d statements read back", len(got))
	}
	for i := range got {
		a, _ := json.Marshal(got[i])
		b, _ := json.Marshal(sts[i])
		if string(a) != string(b) {
			t.Errorf("statement %d changed on the way:\n%s\n%s", i, a, b)
		}
		if got[i].Subject[0].Digest["sha256"] != desc.Digest.Hex {
			t.Errorf("statement %d subject %v, image %v", i, got[i].Subject, desc.Digest)
		}
	}

	// Same inputs, same manifest bytes.
	att2, _, _ := Manifest(desc, sts...)
	raw2, _ := att2.RawManifest()
	if string(raw) != string(raw2) {
		t.Error("two attestation manifests of the same statements differ")
	}
	if _, _, err := Manifest(desc); err == nil {
		t.Error("an attestation manifest without statements was made")
	}
	if _, _, err := Manifest(v1.Descriptor{}, sts...); err == nil {
		t.Error("an attestation manifest without a subject was made")
	}
}

// TestReferrer pushes an image and its attestations as a referrer to a registry with the
// referrers API (go-containerregistry's) and to one without it (Debian's docker-registry:
// the tag-schema fallback), and lists the image's referrers as cosign or oras would.
func TestReferrer(t *testing.T) {
	img, desc, sts := attested(t)
	ref, err := Referrer(desc, sts...)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := ref.RawManifest()
	var m struct {
		ArtifactType string         `json:"artifactType"`
		Subject      *v1.Descriptor `json:"subject"`
		Config       v1.Descriptor  `json:"config"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != ArtifactTypeAttestation || m.Subject == nil || m.Subject.Digest != desc.Digest || m.Subject.Size != desc.Size ||
		m.Subject.MediaType != desc.MediaType || m.Config.MediaType != "application/vnd.oci.empty.v1+json" || m.Config.Size != 2 {
		t.Fatalf("referrer manifest = %s", raw)
	}

	hosts := map[string]string{}
	s := httptest.NewServer(registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	hosts["referrers API"] = strings.TrimPrefix(s.URL, "http://")
	if addr := startDockerRegistry(t); addr != "" {
		hosts["tag fallback"] = addr
	}
	for kind, host := range hosts {
		repo, err := name.NewRepository(host+"/app", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(repo.Tag("1"), img); err != nil {
			t.Fatalf("%s: push image: %v", kind, err)
		}
		rd, _ := ref.Digest()
		if err := remote.Write(repo.Digest(rd.String()), ref); err != nil {
			t.Fatalf("%s: push referrer: %v", kind, err)
		}
		list, err := remote.Referrers(repo.Digest(desc.Digest.String()))
		if err != nil {
			t.Fatalf("%s: referrers: %v", kind, err)
		}
		lm, _ := list.IndexManifest()
		// go-containerregistry's test registry lists the config's media type instead of the
		// manifest's artifactType (the spec wants the latter): accept it there only.
		at := lm.Manifests[0].ArtifactType
		if len(lm.Manifests) != 1 || lm.Manifests[0].Digest != rd || (at != ArtifactTypeAttestation && !(kind == "referrers API" && at == "application/vnd.oci.empty.v1+json")) {
			t.Fatalf("%s: referrers of the image: %+v", kind, lm.Manifests)
		}
		pulled, err := remote.Image(repo.Digest(rd.String()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Statements(pulled)
		if err != nil || len(got) != 2 || got[0].PredicateType != sts[0].PredicateType || got[1].PredicateType != PredicateSPDX {
			t.Errorf("%s: statements pulled back: %v %v", kind, len(got), err)
		}
		if kind == "tag fallback" {
			if _, err := remote.Head(repo.Tag(desc.Digest.Algorithm + "-" + desc.Digest.Hex)); err != nil {
				t.Errorf("no fallback tag: %v", err)
			}
		}
	}
}

// startDockerRegistry runs Debian's docker-registry on 127.0.0.1 with its storage in a
// temporary directory; "" when it is not installed.
func startDockerRegistry(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Log("docker-registry not installed: the tag-schema fallback is not exercised")
		return ""
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker-registry: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			t.Fatal("docker-registry exited")
		default:
		}
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
	}
	t.Fatal("docker-registry did not answer within 30s")
	return ""
}
