package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/binfmt"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// An image built FROM a build-platform stage is the target's image: its
// config and its index entry name the target platform, as BuildKit
// labels the image of an explicit --platform, never the build host's.
func TestBuildPlatformsLabelTheTarget(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"a.txt": "a"})
	src := `FROM --platform=$BUILDPLATFORM scratch AS build
COPY a.txt /a

FROM build
ENV X=1
`
	plats := []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}
	res, out, err := tb.buildPlatforms(src, plats)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
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
		cfg := configOf(t, res[i].Image)
		if p := configPlatform(*cfg); p != plats[i] {
			t.Errorf("image %d's config is %s, want %s", i, p, plats[i])
		}
	}
	if !slices.Equal(got, plats) {
		t.Errorf("index platforms %v, want %v", got, plats)
	}
}

// stampRunner numbers its "stamp" runs into /stamp and copies the
// lowers' /stamp to /copy for "copystamp": a step after a rerun step
// shows which of its results it was built on.
type stampRunner struct {
	mu sync.Mutex
	n  int
}

func (r *stampRunner) Run(_ context.Context, spec executor.Spec) (executor.Result, error) {
	res := executor.Result{UpperDir: spec.UpperDir}
	if err := os.MkdirAll(spec.UpperDir, 0o755); err != nil {
		return res, err
	}
	switch cmd := spec.Args[len(spec.Args)-1]; cmd {
	case "stamp":
		r.mu.Lock()
		r.n++
		n := r.n
		r.mu.Unlock()
		return res, os.WriteFile(filepath.Join(spec.UpperDir, "stamp"), []byte(strconv.Itoa(n)), 0o644)
	case "copystamp":
		for _, l := range spec.Lowers {
			if b, err := os.ReadFile(filepath.Join(l, "stamp")); err == nil {
				return res, os.WriteFile(filepath.Join(spec.UpperDir, "copy"), b, 0o644)
			}
		}
		return res, fmt.Errorf("copystamp: no /stamp below")
	default:
		return res, fmt.Errorf("unknown command %q", cmd)
	}
}

// --no-cache-filter reruns a build-platform stage once for every
// platform, and what is built on it is built on the new result: never a
// cache entry made over the result it replaced.
func TestBuildPlatformsNoCacheFilterShared(t *testing.T) {
	tb := newTestBuild(t, nil)
	tb.runner = &stampRunner{}
	src := `FROM --platform=$BUILDPLATFORM scratch AS gen
RUN stamp

FROM gen
RUN copystamp
`
	plats := []string{"linux/amd64", "linux/arm64"}
	if _, out, err := tb.buildPlatforms(src, plats); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	res, out, err := tb.buildPlatforms(src, plats, func(o *Options) { o.NoCacheStages = []string{"gen"} })
	if err != nil {
		t.Fatalf("build --no-cache-filter gen: %v\n%s", err, out)
	}
	for i, r := range res {
		stamp, err1 := readImageFile(t, r, "stamp")
		cp, err2 := readImageFile(t, r, "copy")
		if err1 != nil || err2 != nil || stamp != "2" || cp != stamp {
			t.Errorf("%s: /stamp %q (%v), /copy %q (%v): want both the rerun's 2\n%s", plats[i], stamp, err1, cp, err2, out)
		}
	}
}

// pushRawIndex pushes an index listing each image under the platform
// given, whatever its config says: a registry that lies.
func pushRawIndex(t *testing.T, ref string, imgs []v1.Image, plats []string) {
	t.Helper()
	var adds []mutate.IndexAddendum
	for i, img := range imgs {
		p, err := v1.ParsePlatform(plats[i])
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
}

// An index entry whose image's config names another platform is refused
// in one line naming the base and both platforms: the amd64 image behind
// an arm64 descriptor is never run (emulated) or shipped as arm64's.
// An index naming a platform twice lists it once in the error.
func TestBuildPlatformLyingIndex(t *testing.T) {
	host, _ := countingRegistry(t)
	liar := host + "/liar:1"
	pushRawIndex(t, liar, []v1.Image{fixedImage(t, "a", "amd64"), fixedImage(t, "b", "amd64")}, []string{"linux/amd64", "linux/arm64"})
	twice := host + "/twice:1"
	pushRawIndex(t, twice, []v1.Image{fixedImage(t, "a", "amd64"), fixedImage(t, "b", "amd64")}, []string{"linux/amd64", "linux/amd64"})
	tb := newTestBuild(t, nil)
	for _, c := range []struct{ ref, plat, want string }{
		{liar, "linux/arm64", "its linux/arm64 entry is a linux/amd64 image"},
		{twice, "linux/arm64", "no image for linux/arm64: it has linux/amd64"},
	} {
		_, out, err := tb.buildPlatforms("FROM "+c.ref+"\nENV X=1\n", []string{c.plat})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.ref) || strings.Contains(err.Error(), "\n") {
			t.Errorf("FROM %s for %s: %v, want one line naming it and %q\n%s", c.ref, c.plat, err, c.want, out)
		}
		if err != nil && strings.Contains(err.Error(), "linux/amd64, linux/amd64") {
			t.Errorf("FROM %s: %v names a platform twice", c.ref, err)
		}
	}
	// The honest entry of the lying index still builds.
	if _, out, err := tb.buildPlatforms("FROM "+liar+"\nENV X=1\n", []string{"linux/amd64"}); err != nil {
		t.Errorf("FROM %s for linux/amd64: %v\n%s", liar, err, out)
	}
}

// A store tag naming an index without the platform asked for does not
// hide the registry's image of that name, as a tag the store lacks does
// not: the registry is asked first every build. Offline, the error says
// what both lack.
func TestBuildPlatformStoreIndexLacksPlatform(t *testing.T) {
	host, _ := countingRegistry(t)
	ref := host + "/app:1"
	pushIndex(t, ref, fixedImage(t, "a", "amd64"), fixedImage(t, "b", "arm64"))
	tb := newTestBuild(t, nil)
	// The store's app:1 is a strata build for amd64 and s390x.
	res, out, err := tb.buildPlatforms("FROM scratch\nENV LOCAL=1\n", []string{"linux/amd64", "linux/s390x"})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ir, err := StoreIndex(context.Background(), tb.store, res, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.store.Tag(StoreName(ref), ir.Descriptor); err != nil {
		t.Fatal(err)
	}
	got, out, err := tb.buildPlatforms("FROM "+ref+"\nENV X=1\n", []string{"linux/arm64"})
	if err != nil {
		t.Fatalf("FROM %s for linux/arm64 (the registry has it, the store's index not): %v\n%s", ref, err, out)
	}
	if s, err := readImageFile(t, got[0], "etc/os-release"); err != nil || s != "b" {
		t.Errorf("FROM %s for linux/arm64 got /etc/os-release %q (%v), want the registry's arm64 image's \"b\"", ref, s, err)
	}
	// Offline (no registry at 127.0.0.1:1): the store's index serves the
	// platforms it has and names them for one it lacks.
	gone := "127.0.0.1:1/app:1"
	if err := tb.store.Tag(StoreName(gone), ir.Descriptor); err != nil {
		t.Fatal(err)
	}
	_, out, err = tb.buildPlatforms("FROM "+gone+"\nENV X=1\n", []string{"linux/ppc64le"})
	if err == nil || !strings.Contains(err.Error(), "no image for linux/ppc64le: it has linux/amd64, linux/s390x") || strings.Contains(err.Error(), "\n") {
		t.Errorf("FROM %s for linux/ppc64le, offline: %v, want one line naming what the store has\n%s", gone, err, out)
	}
	if _, out, err = tb.buildPlatforms("FROM "+gone+"\nENV X=1\n", []string{"linux/s390x"}); err != nil {
		t.Errorf("FROM %s for linux/s390x, offline, from the store's index: %v\n%s", gone, err, out)
	}
}

// archRunner fails the RUN of one architecture and holds the others'
// until their context ends: a failing platform must stop its siblings.
type archRunner struct {
	fail    string
	started chan struct{}
	once    sync.Once
}

func (r *archRunner) Run(ctx context.Context, spec executor.Spec) (executor.Result, error) {
	res := executor.Result{UpperDir: spec.UpperDir}
	if slices.Contains(spec.Env, "TARGETARCH="+r.fail) {
		<-r.started // fail once a sibling is running
		res.ExitCode = 3
		return res, nil
	}
	r.once.Do(func() { close(r.started) })
	<-ctx.Done()
	return res, ctx.Err()
}

// One platform's failing RUN ends the build promptly with its error (not
// a sibling's interruption), and leaves no temporary tree behind.
func TestBuildPlatformsFailureStopsSiblings(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("the two steps run at once only with two CPU slots")
	}
	tb := newTestBuild(t, nil)
	tb.runner = &archRunner{fail: "arm64", started: make(chan struct{})}
	src := "FROM scratch\nARG TARGETARCH\nRUN work\n"
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		_, out, err = tb.buildPlatforms(src, []string{"linux/amd64", "linux/arm64"})
		done <- err
	}()
	select {
	case err := <-done:
		var exit *ExitError
		if !errors.As(err, &exit) || exit.Code != 3 || !strings.Contains(err.Error(), "exit code 3") {
			t.Errorf("build: %v, want the arm64 step's exit code 3\n%s", err, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the build did not end after a platform failed")
	}
	tmp, err := os.ReadDir(filepath.Join(tb.store.Root(), "build-tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tmp {
		t.Errorf("build-tmp still holds %s", e.Name())
	}
}

// An oci-layout:// context holding one image is that image's platform's
// alone, as a pulled lone manifest is: not run, or shipped, as another's.
func TestBuildPlatformLayoutContextOtherPlatform(t *testing.T) {
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(fixedImage(t, "amd64", "amd64"), layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	k, nc, err := ParseBuildContext("base=oci-layout://" + dir + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	tb := newTestBuild(t, nil)
	ctxs := func(o *Options) { o.Contexts = map[string]NamedContext{k: nc} }
	_, out, err := tb.buildPlatforms("FROM base\nENV X=1\n", []string{"linux/amd64", "linux/arm64"}, ctxs)
	if err == nil || !strings.Contains(err.Error(), "no image for linux/arm64: it has linux/amd64") || !strings.Contains(err.Error(), dir) {
		t.Errorf("FROM an amd64 layout for linux/arm64: %v, want an error naming the layout and what it has\n%s", err, out)
	}
	if _, out, err := tb.buildPlatforms("FROM base\nENV X=1\n", []string{"linux/amd64"}, ctxs); err != nil {
		t.Errorf("FROM an amd64 layout for linux/amd64: %v\n%s", err, out)
	}
}

// binfmt_misc switched off, or the one handler for the platform, is not
// a missing emulator: the fix is switching it on, not installing QEMU.
func TestCheckEmulationSwitchedOff(t *testing.T) {
	sandbox := executor.New(executor.Options{})
	for _, tc := range []struct {
		name, status, entry, want string
	}{
		{"binfmt_misc off", "disabled\n", "enabled\n",
			"Dockerfile:5: RUN for linux/s390x needs an emulator: binfmt_misc is switched off; switch it on with echo 1 > %s/status or see strata doctor"},
		{"handler off", "enabled\n", "disabled\n",
			"Dockerfile:5: RUN for linux/s390x needs an emulator: the binfmt_misc handler qemu-s390x is switched off; switch it on with echo 1 > %s/qemu-s390x or see strata doctor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			binfmtFixture(t, true, "POF")
			entry := strings.Replace(strings.Replace(s390xEntry, "%s", "POF", 1), "enabled\n", tc.entry, 1)
			for name, body := range map[string]string{"status": tc.status, "qemu-s390x": entry} {
				if err := os.WriteFile(filepath.Join(binfmt.Root, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := emulationBuild(t, foreignRunDockerfile, sandbox).checkEmulation()
			if want := fmt.Sprintf(tc.want, binfmt.Root); err == nil || err.Error() != want {
				t.Errorf("checkEmulation:\n got %v\nwant %s", err, want)
			}
		})
	}
}

// A hostile index of many platforms gives an error of one short line.
func TestBuildPlatformHugeIndex(t *testing.T) {
	host, _ := countingRegistry(t)
	ref := host + "/huge:1"
	img := fixedImage(t, "a", "amd64")
	var imgs []v1.Image
	var plats []string
	for i := range 200 {
		imgs = append(imgs, img)
		plats = append(plats, fmt.Sprintf("linux/arch%03d", i))
	}
	pushRawIndex(t, ref, imgs, plats)
	tb := newTestBuild(t, nil)
	_, out, err := tb.buildPlatforms("FROM "+ref+"\nENV X=1\n", []string{"linux/arm64"})
	if err == nil || !strings.Contains(err.Error(), "no image for linux/arm64: it has linux/arch000, linux/arch001") ||
		!strings.Contains(err.Error(), "and 192 more") || len(err.Error()) > 400 {
		t.Errorf("FROM an index of 200 platforms for linux/arm64: %v (%d bytes), want one short line naming the first few\n%s", err, len(fmt.Sprint(err)), out)
	}
}

// One --platform given is labelled as several are: the image built FROM
// a build-platform stage is the target's. Without --platform (the host's
// target, implicit) the base's platform stays, as in BuildKit.
func TestBuildExplicitPlatformLabel(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"a.txt": "a"})
	src := "FROM --platform=$BUILDPLATFORM scratch AS build\nCOPY a.txt /a\n\nFROM build\nENV X=1\n"
	for _, tc := range []struct {
		explicit bool
		want     string
	}{{true, "linux/arm64"}, {false, "linux/amd64"}} {
		res, out, err := tb.buildPlatforms(src, []string{"linux/arm64"}, func(o *Options) { o.ExplicitPlatform = tc.explicit })
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		if got := configPlatform(*configOf(t, res[0].Image)); got != tc.want {
			t.Errorf("ExplicitPlatform %v: the image is %s, want %s", tc.explicit, got, tc.want)
		}
	}
}

// A shared step that fails runs once: the siblings waiting for it take
// its failure rather than running it again while the build stops.
func TestBuildPlatformsSharedFailureRunsOnce(t *testing.T) {
	tb := newTestBuild(t, nil)
	runner := &fakeRunner{}
	tb.runner = runner
	src := "FROM --platform=$BUILDPLATFORM scratch AS b\nRUN fail 1\nFROM b\n"
	_, out, err := tb.buildPlatforms(src, []string{"linux/amd64", "linux/arm64", "linux/s390x"})
	var exit *ExitError
	if !errors.As(err, &exit) || !strings.Contains(err.Error(), "Dockerfile:2") {
		t.Errorf("build: %v, want the RUN's exit code\n%s", err, out)
	}
	if n := runner.count(); n != 1 {
		t.Errorf("the failing shared step ran %d times, want once\n%s", n, out)
	}
}

// putJSON stores v's JSON as a blob and describes it.
func putJSON(t *testing.T, st *store.Store, mt types.MediaType, v any) v1.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	h, n, err := st.PutBlob(context.Background(), bytes.NewReader(b), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: n}
}

// An OCI archive of a stored index that names one nested index over and
// over (loaded from a hostile archive) is written in time linear in its
// distinct blobs, as strata save writes it.
func TestSaveIndexBomb(t *testing.T) {
	tb := newTestBuild(t, nil)
	st := tb.store
	var imgs []v1.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		cfg := putJSON(t, st, types.OCIConfigJSON, v1.ConfigFile{OS: "linux", Architecture: arch, RootFS: v1.RootFS{Type: "layers"}})
		m := putJSON(t, st, types.OCIManifestSchema1, v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: []v1.Descriptor{}})
		m.Platform = &v1.Platform{OS: "linux", Architecture: arch}
		imgs = append(imgs, m)
	}
	inner := putJSON(t, st, types.OCIImageIndex, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: imgs})
	for range 5 {
		var ms []v1.Descriptor
		for range 60 {
			ms = append(ms, inner)
		}
		inner = putJSON(t, st, types.OCIImageIndex, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ms})
	}
	top := putJSON(t, st, types.OCIImageIndex, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: append(imgs, inner)})
	if err := st.Tag("example.com/bomb:1", top); err != nil {
		t.Fatal(err)
	}
	idx, _, err := OpenIndex(context.Background(), st, "example.com/bomb:1", registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var n countingWriter
	go func() { done <- writeOCIIndexArchive(&n, idx, []string{"example.com/bomb:1"}, nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if n > 1<<20 {
			t.Errorf("the archive is %d bytes: blobs written more than once", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("writing the OCI archive of an index bomb still running after 20s")
	}
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// The images of a multi-platform build FROM a registry's index can be
// read after BuildPlatforms returns: a base layer no step needed is
// downloaded then, with the caller's context, not the build's own.
func TestBuildPlatformsLazyBaseAfterBuild(t *testing.T) {
	host, _ := countingRegistry(t)
	ref := host + "/lazy:1"
	pushIndex(t, ref, fixedImage(t, "amd64", "amd64"), fixedImage(t, "arm64", "arm64"))
	tb := newTestBuild(t, nil)
	res, out, err := tb.buildPlatforms("FROM "+ref+"\nENV X=1\n", []string{"linux/amd64", "linux/arm64"})
	if err != nil {
		t.Fatalf("FROM %s: %v\n%s", ref, err, out)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		if s, err := readImageFile(t, res[i], "etc/os-release"); err != nil || s != arch {
			t.Errorf("linux/%s got /etc/os-release %q (%v), want %q", arch, s, err, arch)
		}
	}
}

// An index whose entries name no platform (some tools write them so) is
// read as containerd reads it: each entry is the platform its config
// names. The image for the platform is found; one the configs lack is
// refused naming those they have.
func TestBuildPlatformIndexWithoutPlatforms(t *testing.T) {
	host, _ := countingRegistry(t)
	ref := host + "/bare:1"
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		adds = append(adds, mutate.IndexAddendum{Add: fixedImage(t, arch, arch)})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil {
			t.Fatalf("the fixture's entries name a platform: %v", d.Platform)
		}
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	tb := newTestBuild(t, nil)
	res, out, err := tb.buildPlatforms("FROM "+ref+"\nENV X=1\n", []string{"linux/amd64", "linux/arm64"})
	if err != nil {
		t.Fatalf("FROM %s: %v\n%s", ref, err, out)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		if s, err := readImageFile(t, res[i], "etc/os-release"); err != nil || s != arch {
			t.Errorf("linux/%s got /etc/os-release %q (%v), want %q", arch, s, err, arch)
		}
	}
	_, out, err = tb.buildPlatforms("FROM "+ref+"\nENV X=1\n", []string{"linux/s390x"})
	if err == nil || !strings.Contains(err.Error(), "no image for linux/s390x: it has linux/amd64, linux/arm64") {
		t.Errorf("FROM %s for linux/s390x: %v, want the platforms its configs name\n%s", ref, err, out)
	}
}

// A stored index whose entries name no platform (loaded from such an
// archive) serves FROM as a registry's does: each entry is the platform
// its config names.
func TestBuildPlatformStoredIndexWithoutPlatforms(t *testing.T) {
	tb := newTestBuild(t, nil)
	st := tb.store
	// Two images built here, then listed in an index without platforms.
	res, out, err := tb.buildPlatforms("FROM scratch\nARG TARGETARCH\nENV ARCH=$TARGETARCH\n", []string{"linux/amd64", "linux/arm64"})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var ms []v1.Descriptor
	for _, r := range res {
		d := r.Descriptor
		d.Platform = nil
		ms = append(ms, d)
	}
	top := putJSON(t, st, types.OCIImageIndex, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ms})
	ref := "127.0.0.1:1/bare:1" // no registry answers: the store's image is used
	if err := st.Tag(StoreName(ref), top); err != nil {
		t.Fatal(err)
	}
	got, out, err := tb.buildPlatforms("FROM "+ref+"\nENV X=1\n", []string{"linux/arm64"})
	if err != nil {
		t.Fatalf("FROM %s for linux/arm64: %v\n%s", ref, err, out)
	}
	if cfg := configOf(t, got[0].Image); !slices.Contains(cfg.Config.Env, "ARCH=arm64") {
		t.Errorf("FROM %s for linux/arm64 got the image of env %v, want the arm64 one", ref, cfg.Config.Env)
	}
	_, out, err = tb.buildPlatforms("FROM "+ref+"\nENV X=1\n", []string{"linux/s390x"})
	if err == nil || !strings.Contains(err.Error(), "no image for linux/s390x: it has linux/amd64, linux/arm64") {
		t.Errorf("FROM %s for linux/s390x: %v, want the platforms its configs name\n%s", ref, err, out)
	}
}

// An ADD URL is downloaded once for every platform of a build: the
// build-platform stage that adds it runs once, and every image holds the
// same bytes even when the server answers each request differently.
func TestBuildPlatformsDownloadOnce(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "answer %d\n", gets.Add(1))
	}))
	t.Cleanup(srv.Close)
	tb := newTestBuild(t, nil)
	src := "FROM --platform=$BUILDPLATFORM scratch AS fetch\nADD " + srv.URL + "/latest.txt /latest.txt\n\nFROM scratch\nCOPY --from=fetch /latest.txt /latest.txt\nADD " + srv.URL + "/latest.txt /again.txt\n"
	res, out, err := tb.buildPlatforms(src, []string{"linux/amd64", "linux/arm64", "linux/s390x"})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("the URL was downloaded %d times, want once\n%s", n, out)
	}
	for i, r := range res {
		for _, f := range []string{"latest.txt", "again.txt"} {
			if s, err := readImageFile(t, r, f); err != nil || s != "answer 1\n" {
				t.Errorf("image %d /%s = %q (%v), want the one download's \"answer 1\\n\"", i, f, s, err)
			}
		}
	}
}

// A base is resolved once per platform it is pulled for, for every
// platform's build: a build-platform stage's base is the same image in
// each, even when its tag moves while the build runs, and its steps run
// once.
func TestBuildPlatformsResolveBaseOnce(t *testing.T) {
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	var tagGets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The tag moves once it has been read: 1 is v1 the first time, v2 after.
		if strings.HasSuffix(r.URL.Path, "/manifests/1") && r.Method == http.MethodGet && tagGets.Add(1) > 1 {
			r.URL.Path = strings.TrimSuffix(r.URL.Path, "1") + "2"
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	pushIndex(t, host+"/moving:1", fixedImage(t, "v1", "amd64"), fixedImage(t, "v1", "arm64"))
	pushIndex(t, host+"/moving:2", fixedImage(t, "v2", "amd64"), fixedImage(t, "v2", "arm64"))
	tagGets.Store(0)
	tb := newTestBuild(t, nil)
	runner := &fakeRunner{}
	tb.runner = runner
	src := "FROM --platform=$BUILDPLATFORM " + host + "/moving:1 AS tool\nRUN write /tool built\n\nFROM scratch\nCOPY --from=tool /etc/os-release /base-release\n"
	res, out, err := tb.buildPlatforms(src, []string{"linux/amd64", "linux/arm64", "linux/s390x"})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for i, r := range res {
		if s, err := readImageFile(t, r, "base-release"); err != nil || s != "v1" {
			t.Errorf("image %d /base-release = %q (%v), want the build's one resolution, v1", i, s, err)
		}
	}
	if n := runner.count(); n != 1 {
		t.Errorf("the build-platform stage's RUN ran %d times, want once\n%s", n, out)
	}
}

// An ADD of a git branch is resolved once for every platform: the images
// of one index hold one commit even when the branch moves between the
// platforms' steps.
func TestBuildPlatformsGitResolvedOnce(t *testing.T) {
	repo := newGitRepo(t, map[string]string{"version": "v1\n"})
	srvRoot := filepath.Join(filepath.Dir(repo.work), "srv")
	// A second served copy where main has moved on to v2; the first ls-remote
	// (info/refs) sees v1, every later request the moved copy.
	repo.commit(map[string]string{"version": "v2\n"})
	moved := filepath.Join(filepath.Dir(repo.work), "moved")
	repo.git(repo.work, "clone", "-q", "--bare", repo.work, filepath.Join(moved, "repo.git"))
	repo.git(filepath.Join(moved, "repo.git"), "update-server-info")
	var refsGets atomic.Int32
	v1 := http.FileServer(http.Dir(srvRoot))
	v2 := http.FileServer(http.Dir(moved))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/info/refs") && refsGets.Add(1) == 1 {
			v1.ServeHTTP(w, r)
			return
		}
		v2.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tb := newTestBuild(t, nil)
	src := "FROM scratch\nADD " + srv.URL + "/repo.git#main /src\n"
	res, out, err := tb.buildPlatforms(src, []string{"linux/amd64", "linux/arm64", "linux/s390x"})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for i, r := range res {
		if s, err := readImageFile(t, r, "src/version"); err != nil || s != "v1\n" {
			t.Errorf("image %d /src/version = %q (%v), want the one resolution's v1", i, s, err)
		}
	}
}

// A stage a --build-context replaces is not built: its RUN steps need no
// emulator, and the build is not refused for one.
func TestCheckEmulationReplacedStage(t *testing.T) {
	binfmtFixture(t, true, "")
	src := "FROM scratch AS tools\nRUN make tools\nFROM --platform=$BUILDPLATFORM scratch\nCOPY --from=tools /out /out\n"
	b := emulationBuild(t, src, executor.New(executor.Options{}))
	if err := b.checkEmulation(); err == nil {
		t.Fatal("the tools stage's RUN for linux/s390x: no error without an emulator")
	}
	b.opts.Contexts = map[string]NamedContext{"tools": {Dir: t.TempDir()}}
	if err := b.checkEmulation(); err != nil {
		t.Errorf("with --build-context tools=DIR the stage is not built: %v", err)
	}
}
