package builder

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
)

// buildPlatforms builds src for each platform, as strata build --platform a,b.
func (tb *testBuild) buildPlatforms(src string, plats []string, mod ...func(*Options)) ([]*Result, string, error) {
	tb.t.Helper()
	var out bytes.Buffer
	var all []Options
	for _, p := range plats {
		plat, err := dockerfile.ParsePlatform(p)
		if err != nil {
			tb.t.Fatal(err)
		}
		g, err := dockerfile.Parse([]byte(src), dockerfile.Options{Platform: plat, BuildPlatform: specs.Platform{OS: "linux", Architecture: "amd64"}})
		if err != nil {
			tb.t.Fatal(err)
		}
		o := Options{Store: tb.store, Graph: g, ContextDir: tb.dir, Runner: tb.runner, Progress: textSink(&out), Epoch: tb.epoch}
		for _, m := range mod {
			m(&o)
		}
		all = append(all, o)
	}
	res, err := BuildPlatforms(context.Background(), all)
	return res, out.String(), err
}

// A FROM --platform=$BUILDPLATFORM stage is the same in every platform's
// build: it runs once, even with --no-cache, and both images get its
// output; everything else is per platform.
func TestBuildPlatformsSharesBuildPlatformStages(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"a.txt": "a"})
	runner := &fakeRunner{}
	tb.runner = runner
	src := `FROM --platform=$BUILDPLATFORM scratch AS build
RUN write /out/tool built once
ARG TARGETARCH
RUN write /out/arch-$TARGETARCH for $TARGETARCH

FROM scratch
ARG TARGETPLATFORM TARGETARCH TARGETVARIANT BUILDPLATFORM
ENV T=$TARGETPLATFORM A=$TARGETARCH V=$TARGETVARIANT B=$BUILDPLATFORM
COPY --from=build /out /out
COPY a.txt /a
`
	res, out, err := tb.buildPlatforms(src, []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}, func(o *Options) { o.NoCache = true })
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// One run of the shared step, one per platform of the TARGETARCH one.
	if n := runner.count(); n != 4 {
		t.Errorf("%d RUN steps ran, want 4 (the shared one once, the per-arch one thrice)\n%s", n, out)
	}
	want := []struct{ arch, variant, env string }{
		{"amd64", "", "T=linux/amd64 A=amd64 V= B=linux/amd64"},
		{"arm64", "", "T=linux/arm64 A=arm64 V= B=linux/amd64"},
		{"arm", "v7", "T=linux/arm/v7 A=arm V=v7 B=linux/amd64"},
	}
	for i, w := range want {
		cfg := configOf(t, res[i].Image)
		if cfg.Architecture != w.arch || cfg.Variant != w.variant || cfg.OS != "linux" {
			t.Errorf("image %d is %s/%s/%s, want linux/%s/%s", i, cfg.OS, cfg.Architecture, cfg.Variant, w.arch, w.variant)
		}
		var env []string
		for _, e := range cfg.Config.Env {
			if k, _, _ := strings.Cut(e, "="); k == "T" || k == "A" || k == "V" || k == "B" {
				env = append(env, e)
			}
		}
		if got := strings.Join(env, " "); got != w.env {
			t.Errorf("image %d env %q, want %q", i, got, w.env)
		}
		if s, err := readImageFile(t, res[i], "out/tool"); err != nil || s != "built once" {
			t.Errorf("image %d /out/tool = %q, %v", i, s, err)
		}
		// The fake runner does not expand: the file is named as written.
		if _, err := readImageFile(t, res[i], "out/arch-$TARGETARCH"); err != nil {
			t.Errorf("image %d: %v", i, err)
		}
		if !slices.ContainsFunc(runner.runs, func(s executor.Spec) bool { return slices.Contains(s.Env, "TARGETARCH="+w.arch) }) {
			t.Errorf("no RUN step ran with TARGETARCH=%s", w.arch)
		}
	}
	for _, label := range []string{"[linux/amd64 build 2/4] RUN write /out/tool built once", "[linux/arm64 stage-1 ", "[linux/arm/v7 stage-1 "} {
		if !strings.Contains(out, label) {
			t.Errorf("progress lacks %q:\n%s", label, out)
		}
	}
	// Warm: every step of every platform from the cache, the same images.
	warm, out, err := tb.buildPlatforms(src, []string{"linux/amd64", "linux/arm64", "linux/arm/v7"})
	if err != nil {
		t.Fatalf("warm build: %v\n%s", err, out)
	}
	if n := runner.count(); n != 4 {
		t.Errorf("the warm build ran %d RUN steps\n%s", n-4, out)
	}
	for i := range warm {
		if warm[i].Descriptor.Digest != res[i].Descriptor.Digest {
			t.Errorf("platform %d: warm %s, cold %s", i, warm[i].Descriptor.Digest, res[i].Descriptor.Digest)
		}
	}
	// The index lists each image under its config's platform.
	ir, err := StoreIndex(context.Background(), tb.store, res, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ir.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, d := range im.Manifests {
		got = append(got, platformOf(*d.Platform))
		if d.Digest != res[i].Descriptor.Digest {
			t.Errorf("index entry %d is %s, want the image %s", i, d.Digest, res[i].Descriptor.Digest)
		}
	}
	if !slices.Equal(got, []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}) {
		t.Errorf("index platforms %v", got)
	}
	if ok, err := tb.store.HasBlob(ir.Descriptor.Digest); err != nil || !ok {
		t.Errorf("the index blob is not in the store: %v", err)
	}
}

// A base that has no image for the platform fails, naming what it has:
// never the host's image labelled as another platform's.
func TestBuildPlatformBaseWithoutThePlatform(t *testing.T) {
	host, _ := countingRegistry(t)
	single := host + "/single:1"
	r, err := name.ParseReference(single, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, fixedImage(t, "amd64 only", "amd64")); err != nil {
		t.Fatal(err)
	}
	multi := host + "/multi:1"
	pushIndex(t, multi, fixedImage(t, "a", "amd64"), fixedImage(t, "b", "s390x"))
	tb := newTestBuild(t, nil)
	for _, c := range []struct{ ref, want string }{
		{single, "no image for linux/arm64: it has linux/amd64"},
		{multi, "no image for linux/arm64: it has linux/amd64, linux/s390x"},
	} {
		_, out, err := tb.buildPlatforms("FROM "+c.ref+"\nENV X=1\n", []string{"linux/arm64"})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.ref) {
			t.Errorf("FROM %s for linux/arm64: %v, want an error naming it and %q\n%s", c.ref, err, c.want, out)
		}
	}
	// The platform it has still builds.
	if _, out, err := tb.buildPlatforms("FROM "+multi+"\nENV X=1\n", []string{"linux/s390x"}); err != nil {
		t.Errorf("FROM %s for linux/s390x: %v\n%s", multi, err, out)
	}
}

// A stage FROM another runs as its parent's platform, found by the parent's
// Dockerfile index: the graph holds only the stages the target needs, so an
// index is not a position in it (a lookup by position looped forever).
func TestRunPlatformInheritsFromParentStage(t *testing.T) {
	src := "FROM --platform=linux/s390x scratch AS unused\nFROM --platform=$BUILDPLATFORM scratch AS tools\nFROM tools AS mid\nFROM mid\nENV X=1\n"
	g, err := dockerfile.Parse([]byte(src), dockerfile.Options{
		Platform:      specs.Platform{OS: "linux", Architecture: "arm64"},
		BuildPlatform: specs.Platform{OS: "linux", Architecture: "amd64"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &build{opts: Options{Graph: g}}
	done := make(chan string, 1)
	go func() { done <- b.runPlatform(g.Target) }()
	select {
	case got := <-done:
		if got != "linux/amd64" {
			t.Errorf("the target stage runs as %s, want its ancestor's linux/amd64", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runPlatform did not return")
	}
}
