package builder

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/progress"
)

var s390x = specs.Platform{OS: "linux", Architecture: "s390x"}

// messages are the build's own lines (progress.Message) in r.
func messages(r *recorder) string {
	var lines []string
	for _, e := range r.all() {
		if m, ok := e.(progress.Message); ok {
			lines = append(lines, m.Text)
		}
	}
	return strings.Join(lines, "\n")
}

func pushImage(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func TestNoCacheFilterRerunsOnlyNamedStage(t *testing.T) {
	tb := newTestBuild(t, nil)
	runner := tb.runner.(*fakeRunner)
	src := "FROM scratch AS a\nRUN write /a one\nFROM scratch AS b\nRUN write /b two\nFROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n"
	first, _ := tb.mustBuild(src)
	if runner.count() != 2 {
		t.Fatalf("first build ran %d steps, want 2", runner.count())
	}
	_, out := tb.mustBuild(src, func(o *Options) { o.NoCacheStages = []string{"A"} })
	if runner.count() != 3 {
		t.Errorf("--no-cache-filter A ran %d steps in all, want stage a's RUN again only (3)", runner.count())
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "[a 2/2]") {
			id := strings.Fields(line)[0]
			if strings.Contains(out, id+" CACHED") {
				t.Errorf("stage a's RUN was cached:\n%s", out)
			}
		}
		if strings.Contains(line, "[b 2/2]") {
			id := strings.Fields(line)[0]
			if !strings.Contains(out, id+" CACHED") {
				t.Errorf("stage b's RUN missed:\n%s", out)
			}
		}
	}
	// The rerun's results are kept apart: a build without the filter gets
	// the first build's image back, not a mix.
	third, _ := tb.mustBuild(src)
	if runner.count() != 3 || third.Descriptor.Digest != first.Descriptor.Digest {
		t.Errorf("build after the filter: %d runs, digest %s; want 3 and %s", runner.count(), third.Descriptor.Digest, first.Descriptor.Digest)
	}
}

func TestBaseResolutionRegistryFirst(t *testing.T) {
	host, _ := countingRegistry(t)
	ref := host + "/base:1"
	pushImage(t, ref, fixedImage(t, "ID=first\n", runtime.GOARCH))
	tb := newTestBuild(t, baseFiles)
	// A local image tagged with the registry's name does not shadow it.
	local, _ := tb.mustBuild(baseDockerfile)
	if err := Tag(tb.store, local, []string{ref}); err != nil {
		t.Fatal(err)
	}
	src := "FROM " + ref + "\nCOPY one.txt /one\n"
	var rec recorder
	res, _ := tb.mustBuild(src, func(o *Options) { o.Progress = &rec })
	if got, err := readImageFile(t, res, "etc/os-release"); err != nil || got != "ID=first\n" {
		t.Errorf("os-release %q, %v: want the registry's image, not the store's tag", got, err)
	}
	if m := messages(&rec); !strings.Contains(m, ref+": using "+ref+"@sha256:") || !strings.Contains(m, "from the registry") {
		t.Errorf("progress does not say the registry's image was used:\n%s", m)
	}
	// A re-pushed tag is picked up, with --pull as without.
	pushImage(t, ref, fixedImage(t, "ID=second\n", runtime.GOARCH))
	res, _ = tb.mustBuild(src, func(o *Options) { o.Pull = true })
	if got, err := readImageFile(t, res, "etc/os-release"); err != nil || got != "ID=second\n" {
		t.Errorf("after a re-push with --pull: os-release %q, %v", got, err)
	}
	// A name only the store has (the registry cannot resolve it) is the
	// store's, said so; --pull refuses it.
	if err := Tag(tb.store, local, []string{host + "/onlylocal:1"}); err != nil {
		t.Fatal(err)
	}
	rec = recorder{}
	child, _ := tb.mustBuild("FROM "+host+"/onlylocal:1\nCOPY one.txt /one\n", func(o *Options) { o.Progress = &rec })
	if got, err := readImageFile(t, child, "real/keep"); err != nil || got != "kept" {
		t.Errorf("store fallback: %q, %v", got, err)
	}
	if m := messages(&rec); !strings.Contains(m, "from the store (the registry did not resolve it") {
		t.Errorf("progress does not say the store's image was used:\n%s", m)
	}
	_, _, err := tb.build("FROM "+host+"/onlylocal:1\n", func(o *Options) { o.Pull = true })
	if err == nil || !strings.Contains(err.Error(), "pulling "+host+"/onlylocal:1") {
		t.Errorf("--pull with a name only in the store: %v, want the registry's error", err)
	}
}

func TestBuildContextDirectory(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"one.txt": "main"})
	extra := t.TempDir()
	os.WriteFile(filepath.Join(extra, "f"), []byte("v1"), 0o644)
	os.WriteFile(filepath.Join(extra, "secret"), []byte("no"), 0o644)
	os.WriteFile(filepath.Join(extra, ".dockerignore"), []byte("secret\n"), 0o644)
	k, nc, err := ParseBuildContext("src=" + extra)
	if err != nil {
		t.Fatal(err)
	}
	with := func(o *Options) { o.Contexts = map[string]NamedContext{k: nc} }
	// The stage named src is replaced: its failing RUN never runs.
	src := "FROM scratch AS src\nRUN fail 1\nFROM scratch\nCOPY --from=src / /got/\n"
	res, _ := tb.mustBuild(src, with)
	if got, err := readImageFile(t, res, "got/f"); err != nil || got != "v1" {
		t.Errorf("got/f %q, %v", got, err)
	}
	if _, err := readImageFile(t, res, "got/secret"); err == nil {
		t.Errorf("the context's .dockerignore was not applied")
	}
	// Its content is in the key: a changed file is not served from the cache.
	os.WriteFile(filepath.Join(extra, "f"), []byte("v2"), 0o644)
	res, _ = tb.mustBuild(src, with)
	if got, err := readImageFile(t, res, "got/f"); err != nil || got != "v2" {
		t.Errorf("after a change: got/f %q, %v: want v2", got, err)
	}
	// FROM an image name and RUN --mount from= it.
	res, _ = tb.mustBuild("FROM src\nRUN --mount=from=src,target=/m noop\n", with)
	if got, err := readImageFile(t, res, "f"); err != nil || got != "v2" {
		t.Errorf("FROM src: f %q, %v", got, err)
	}
	if binds := tb.runner.(*fakeRunner).binds["/m"]; !strings.Contains(strings.Join(binds, " "), "f") {
		t.Errorf("RUN --mount from=src saw %v", binds)
	}
}

func TestBuildContextImageAndLayout(t *testing.T) {
	host, _ := countingRegistry(t)
	pushImage(t, host+"/other:2", fixedImage(t, "ID=named\n", runtime.GOARCH))
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(fixedImage(t, "ID=layout\n", runtime.GOARCH), layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	tb := newTestBuild(t, nil)
	for _, tc := range []struct{ value, want string }{
		{"docker-image://" + host + "/other:2", "ID=named\n"},
		{"oci-layout://" + dir + ":v1", "ID=layout\n"},
	} {
		k, nc, err := ParseBuildContext("alpine=" + tc.value)
		if err != nil {
			t.Fatal(err)
		}
		// FROM docker.io/library/alpine:latest is looked up as "alpine".
		res, _ := tb.mustBuild("FROM docker.io/library/alpine:latest\nCOPY --from=alpine /etc/os-release /copied\n", func(o *Options) { o.Contexts = map[string]NamedContext{k: nc} })
		for _, f := range []string{"etc/os-release", "copied"} {
			if got, err := readImageFile(t, res, f); err != nil || got != tc.want {
				t.Errorf("%s: %s %q, %v; want %q", tc.value, f, got, err, tc.want)
			}
		}
	}
	for _, bad := range []string{"x", "=dir", "a=/nonexistent", "a=https://github.com/x/y.git", "a=target:foo", "a=oci-layout://" + dir + ":nosuchtag", "a=docker-image://Bad Ref"} {
		if _, _, err := ParseBuildContext(bad); err == nil || !strings.Contains(err.Error(), "--build-context") {
			t.Errorf("ParseBuildContext(%q) = %v, want a --build-context error", bad, err)
		}
	}
}

func TestAnnotations(t *testing.T) {
	for _, bad := range []string{"novalue", "bogus:k=v", "manifest[not a platform]:k=v", ":k=v", "=v"} {
		if _, err := ParseAnnotation(bad); err == nil || !strings.Contains(err.Error(), "--annotation") {
			t.Errorf("ParseAnnotation(%q) = %v, want an --annotation error", bad, err)
		}
	}
	var as []Annotation
	for _, s := range []string{"org.example.m=1", "index:org.example.i=2", "manifest-descriptor:org.example.md=3", "index-descriptor:org.example.id=4", "manifest,index[linux/" + runtime.GOARCH + "]:both=5"} {
		a, err := ParseAnnotation(s)
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a...)
	}
	tb := newTestBuild(t, map[string]string{"one.txt": "1"})
	if _, _, err := tb.build("FROM scratch\nCOPY one.txt /\n", func(o *Options) {
		o.Annotations = []Annotation{{Type: AnnotationManifest, Platform: &s390x, Key: "k"}}
	}); err == nil || !strings.Contains(err.Error(), "makes no image for linux/s390x") {
		t.Errorf("annotation for another platform: %v", err)
	}
	res, _ := tb.mustBuild("FROM scratch\nCOPY one.txt /\n", func(o *Options) { o.Annotations = as })
	m, _ := res.Image.Manifest()
	if m.Annotations["org.example.m"] != "1" || m.Annotations["both"] != "5" || len(m.Annotations) != 2 {
		t.Errorf("manifest annotations %v", m.Annotations)
	}
	dest := filepath.Join(t.TempDir(), "layout")
	if err := Export(context.Background(), res.Image, Output{Type: "oci-layout", Dest: dest, Names: []string{"x:1"}, Annotations: as}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dest, "index.json"))
	var top v1.IndexManifest
	json.Unmarshal(raw, &top)
	if len(top.Manifests) != 1 || top.Manifests[0].Annotations["org.example.id"] != "4" || top.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("index.json %s: want the index's descriptor with the index-descriptor annotation", raw)
	}
	p, _ := layout.FromPath(dest)
	inner, err := p.Bytes(top.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	json.Unmarshal(inner, &idx)
	if idx.Annotations["org.example.i"] != "2" || idx.Annotations["both"] != "5" || len(idx.Manifests) != 1 ||
		idx.Manifests[0].Digest != res.Descriptor.Digest || idx.Manifests[0].Annotations["org.example.md"] != "3" {
		t.Errorf("index %s", inner)
	}
}
