package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	ggcrlayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// fixture is a store with two layers written from small trees, and the
// steps of a pretend build that made them.
type fixture struct {
	st    *store.Store
	steps []Step
	ctx   context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, ctx: context.Background()}
	for i, content := range []string{"one", "two"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := st.WriteLayer(f.ctx, dir, layer.WriteOptions{Source: layer.FromDir})
		if err != nil {
			t.Fatal(err)
		}
		f.steps = append(f.steps, Step{
			Key: fmt.Sprintf("key-%d", i), Layer: l, InTarget: i == 1,
			History: v1.History{CreatedBy: "RUN step " + content},
			Explain: &Explain{Key: fmt.Sprintf("key-%d", i), Stage: "s", Step: i + 2, Command: "RUN step",
				Inputs: map[string]string{"build arg V": content}},
		})
	}
	// A metadata step: no layer.
	f.steps = append(f.steps, Step{Key: "key-meta", InTarget: true, History: v1.History{CreatedBy: "LABEL a=b", EmptyLayer: true}})
	return f
}

// registryServer is go-containerregistry's in-process registry, counting
// blob downloads.
func registryServer(t *testing.T) (host string, gets func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			mu.Lock()
			got = append(got, r.URL.Path)
			mu.Unlock()
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func mustSpec(t *testing.T, to bool, v string) Spec {
	t.Helper()
	var s Spec
	var err error
	if to {
		s, err = ParseTo(v)
	} else {
		s, err = ParseFrom(v)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func freshBlobs(t *testing.T) *registry.Blobs {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return registry.NewBlobs(context.Background(), st, registry.Config{}, nil)
}

var linux = v1.Platform{OS: "linux", Architecture: "amd64"}

// TestRoundTrip exports a build's cache (max and min) to a registry and
// to a layout directory and imports it into an empty store: every
// exported entry, with its history, its layer read on demand only.
func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	host, gets := registryServer(t)
	dir := filepath.Join(t.TempDir(), "layout")
	for _, c := range []struct {
		to, from string
		want     []string
	}{
		{"type=registry,ref=" + host + "/c:max,mode=max", host + "/c:max", []string{"key-0", "key-1", "key-meta"}},
		{"type=registry,ref=" + host + "/c:min", "type=registry,ref=" + host + "/c:min", []string{"key-1", "key-meta"}},
		{"type=local,dest=" + dir + ",mode=max", "type=local,src=" + dir, []string{"key-0", "key-1", "key-meta"}},
	} {
		t.Run(c.to, func(t *testing.T) {
			if err := Export(f.ctx, mustSpec(t, true, c.to), f.steps, nil, registry.NewBlobs(f.ctx, f.st, registry.Config{}, nil), nil); err != nil {
				t.Fatal(err)
			}
			before := len(gets())
			blobs := freshBlobs(t)
			imp, warnings, err := Import(f.ctx, mustSpec(t, false, c.from), blobs, linux)
			if err != nil || len(warnings) > 0 {
				t.Fatalf("import: %v %v", err, warnings)
			}
			var keys []string
			for k := range imp.entries {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, c.want) {
				t.Fatalf("imported %v, want %v", keys, c.want)
			}
			// Metadata only: the config, no layer.
			if n := len(gets()) - before; n > 1 {
				t.Errorf("the import downloaded %d blobs: %v", n, gets()[before:])
			}
			e, _ := imp.Get(f.ctx, "key-1")
			if e.History.CreatedBy != "RUN step two" || e.Layer == nil {
				t.Fatalf("entry key-1 = %+v", e)
			}
			if ok, _ := blobs.Store().HasBlob(e.Layer.Descriptor().Digest); ok {
				t.Fatal("the layer is local before anything read it")
			}
			rc, err := e.Layer.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, rc)
			rc.Close()
			if ok, _ := blobs.Store().HasBlob(e.Layer.Descriptor().Digest); !ok {
				t.Fatal("reading the layer did not keep it in the store")
			}
			if meta, _ := imp.Get(f.ctx, "key-meta"); meta == nil || meta.Layer != nil || !meta.History.EmptyLayer {
				t.Errorf("metadata entry = %+v", meta)
			}
		})
	}
}

// TestImportFaults: what a cache holds that cannot be trusted is left out
// with a warning naming the cache; a cache that cannot be read at all is an
// error (the build goes on without it).
func TestImportFaults(t *testing.T) {
	f := newFixture(t)
	host, _ := registryServer(t)
	ref := host + "/c:faults"
	if err := Export(f.ctx, mustSpec(t, true, "type=registry,mode=max,ref="+ref), f.steps, nil, registry.NewBlobs(f.ctx, f.st, registry.Config{}, nil), nil); err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref, name.Insecure)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m ociManifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	img, _ := desc.Image()
	rawCfg, _ := img.RawConfigFile()
	var cfg Config
	json.Unmarshal(rawCfg, &cfg)

	// push writes a changed manifest (and config) under tag.
	push := func(t *testing.T, tag string, m ociManifest, cfg Config) string {
		t.Helper()
		cb, _ := json.Marshal(cfg)
		cd, _ := descriptorOf(cb, ConfigMediaType)
		m.Config = cd
		mb, _ := json.Marshal(m)
		repo := r.Context()
		// The config blob, then the manifest, by hand.
		if err := remote.WriteLayer(repo, static.NewLayer(cb, ConfigMediaType)); err != nil {
			t.Fatal(err)
		}
		put, _ := name.ParseReference(host+"/c:"+tag, name.Insecure)
		req, _ := http.NewRequest(http.MethodPut, "http://"+host+"/v2/"+repo.RepositoryStr()+"/manifests/"+put.Identifier(), strings.NewReader(string(mb)))
		req.Header.Set("Content-Type", string(m.MediaType))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("putting manifest: %v %v", err, resp)
		}
		return host + "/c:" + tag
	}
	layerOf := func(key string) int {
		for _, r := range cfg.Entries {
			if r.Key == key {
				return r.Layer
			}
		}
		t.Fatalf("no record %s", key)
		return -1
	}

	cases := []struct {
		name     string
		ref      func(t *testing.T) string
		wantErr  string
		missing  []string // keys left out
		warnings []string
	}{
		{name: "no such ref", ref: func(*testing.T) string { return host + "/nothing:here" }, wantErr: "not found"},
		{name: "an image without records", ref: func(t *testing.T) string {
			if err := remote.Write(mustRef(t, host+"/plain:1"), empty.Image); err != nil {
				t.Fatal(err)
			}
			return host + "/plain:1"
		}, wantErr: "neither a strata cache nor an image with inline cache records"},
		{name: "wrong size", ref: func(t *testing.T) string {
			m2 := m
			m2.Layers = slices.Clone(m.Layers)
			m2.Layers[layerOf("key-0")].Size++
			return push(t, "size", m2, cfg)
		}, missing: []string{"key-0"}, warnings: []string{"bytes, the cache says"}},
		{name: "missing blob", ref: func(t *testing.T) string {
			m2 := m
			m2.Layers = slices.Clone(m.Layers)
			m2.Layers[layerOf("key-0")].Digest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
			return push(t, "missing", m2, cfg)
		}, missing: []string{"key-0"}, warnings: []string{"is missing"}},
		{name: "two diffIDs for one blob", ref: func(t *testing.T) string {
			c2 := cfg
			c2.Entries = slices.Clone(cfg.Entries)
			for i := range c2.Entries {
				if c2.Entries[i].Key == "key-0" {
					// key-0 now names key-1's blob with its own diffID.
					c2.Entries[i].Layer = layerOf("key-1")
				}
			}
			return push(t, "diffids", m, c2)
		}, missing: []string{"key-0", "key-1"}, warnings: []string{"two diffIDs"}},
		{name: "layer index out of range", ref: func(t *testing.T) string {
			c2 := cfg
			c2.Entries = slices.Clone(cfg.Entries)
			for i := range c2.Entries {
				if c2.Entries[i].Key == "key-1" {
					c2.Entries[i].Layer = 99
				}
			}
			return push(t, "range", m, c2)
		}, missing: []string{"key-1"}, warnings: []string{"out of range"}},
		{name: "a negative layer index", ref: func(t *testing.T) string {
			c2 := cfg
			c2.Entries = slices.Clone(cfg.Entries)
			for i := range c2.Entries {
				if c2.Entries[i].Key == "key-1" {
					// Not -1 ("no layer"): the step would hit without its files.
					c2.Entries[i].Layer = -5
				}
			}
			return push(t, "negative", m, c2)
		}, missing: []string{"key-1"}, warnings: []string{"out of range"}},
		{name: "many bad entries, one line", ref: func(t *testing.T) string {
			c2 := cfg
			c2.Entries = slices.Clone(cfg.Entries)
			for i := range 500 {
				c2.Entries = append(c2.Entries, Record{Key: fmt.Sprintf("junk-%d", i), Layer: 1000 + i})
			}
			return push(t, "many", m, c2)
		}, warnings: []string{"ignoring 500 entries", "and 499 other reasons"}},
		{name: "another format version", ref: func(t *testing.T) string {
			c2 := cfg
			c2.Version = 2
			return push(t, "version", m, c2)
		}, wantErr: "format version 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			imp, warnings, err := Import(f.ctx, mustSpec(t, false, c.ref(t)), freshBlobs(t), linux)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range c.missing {
				if e, _ := imp.Get(f.ctx, k); e != nil {
					t.Errorf("entry %s was kept", k)
				}
			}
			if e, _ := imp.Get(f.ctx, "key-meta"); e == nil {
				t.Error("the metadata entry, which needs no blob, was dropped")
			}
			if len(warnings) > 1 {
				t.Errorf("%d warning lines for one cache: %q", len(warnings), warnings)
			}
			joined := strings.Join(warnings, "\n")
			for _, w := range c.warnings {
				if !strings.Contains(joined, w) || !strings.Contains(joined, "cache "+host) {
					t.Errorf("warnings %q lack %q and the cache's name", joined, w)
				}
			}
		})
	}
}

// TestLayoutExportIsAtomic: an export that dies before its index is
// written leaves the previous cache as it was; a later export replaces it
// and removes the blobs nothing uses.
func TestLayoutExportIsAtomic(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(t.TempDir(), "layout")
	blobs := registry.NewBlobs(f.ctx, f.st, registry.Config{}, nil)
	if err := Export(f.ctx, mustSpec(t, true, "type=local,dest="+dir), f.steps[1:], nil, blobs, nil); err != nil {
		t.Fatal(err)
	}
	index, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	// A dead export: its blobs written, a temporary file left, no index.
	a, err := newArtifact(f.ctx, mustSpec(t, true, "type=local,mode=max,dest="+dir), f.steps, nil, blobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range a.sources() {
		if err := layoutDir(dir).writeBlob(f.ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "blobs", "sha256", ".tmp-dead"), []byte("half"), 0o644)
	if got, _ := os.ReadFile(filepath.Join(dir, "index.json")); string(got) != string(index) {
		t.Fatal("index.json changed")
	}
	imp, warnings, err := Import(f.ctx, mustSpec(t, false, "type=local,src="+dir), freshBlobs(t), linux)
	if err != nil || len(warnings) > 0 || imp.Len() != 2 {
		t.Fatalf("import after a dead export: %v %v, %d entries", err, warnings, imp.Len())
	}
	// The next export of a smaller cache collects what is left over.
	if err := Export(f.ctx, mustSpec(t, true, "type=local,dest="+dir), f.steps[1:], nil, blobs, nil); err != nil {
		t.Fatal(err)
	}
	des, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".tmp") {
			t.Errorf("temporary file %s left", de.Name())
		}
	}
	// manifest, config, one layer, explain records.
	if len(des) != 4 {
		t.Errorf("%d blobs after the export, want 4", len(des))
	}
}

func TestParseSpecs(t *testing.T) {
	for _, c := range []struct {
		to   bool
		in   string
		want Spec
		err  string
	}{
		{in: "reg.io/app:cache", want: Spec{Type: "registry", Ref: "reg.io/app:cache", Mode: "min", Tag: "latest", IgnoreError: true}},
		{to: true, in: "type=registry,ref=reg.io/c,mode=max,cache-mounts=true,image-manifest=true", want: Spec{Type: "registry", Ref: "reg.io/c", Mode: "max", Tag: "latest", CacheMounts: true, IgnoreError: true}},
		{to: true, in: "type=local,dest=/tmp/c,ignore-error=false", want: Spec{Type: "local", Dir: "/tmp/c", Mode: "min", Tag: "latest"}},
		{in: "type=local,src=/tmp/c", want: Spec{Type: "local", Dir: "/tmp/c", Mode: "min", Tag: "latest", IgnoreError: true}},
		{to: true, in: "type=inline", want: Spec{Type: "inline", Mode: "min", Tag: "latest", IgnoreError: true}},
		{in: "type=inline", err: "name the image"},
		{to: true, in: "type=gha", err: "type=gha is not supported"},
		{to: true, in: "type=registry,ref=x,mode=all", err: "mode=all: want min or max"},
		{to: true, in: "type=registry", err: "needs ref="},
		{in: "type=local,dest=/x", err: `unknown key "dest"`},
		{to: true, in: "type=registry,ref=x,compression-level=3", err: "not supported"},
		{in: "ref=x", err: "needs type="},
	} {
		var got Spec
		var err error
		if c.to {
			got, err = ParseTo(c.in)
		} else {
			got, err = ParseFrom(c.in)
		}
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		got.raw = ""
		if err != nil || got != c.want {
			t.Errorf("%q = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestDiff(t *testing.T) {
	base := func() *Explain {
		return &Explain{Stage: "s", Step: 3, Command: "COPY . /app", Parent: "p", Base: "busybox@sha256:1",
			Inputs: map[string]string{"build arg V": "1", "destination": "/app/"},
			Files: []File{
				{Path: "a.go", Kind: "file", Mode: "0644", Content: "sha256:1"},
				{Path: "b.go", Kind: "file", Mode: "0644", Content: "sha256:2"},
				{Path: "l", Kind: "symlink", Mode: "0777", Content: "a.go"},
			}}
	}
	cur := base()
	cur.Inputs["build arg V"] = "2"
	cur.Files[0].Content = "sha256:9"
	cur.Files[1].Mode = "0755"
	cur.Files[2].Content = "b.go"
	cur.Files = append(cur.Files[:2], cur.Files[2], File{Path: "c.go", Kind: "file", Mode: "0644"})
	got := Diff(base(), cur)
	want := []string{
		`build arg V: "1" -> "2"`,
		"a.go: content differs",
		"b.go: mode 0644 -> 0755",
		"c.go: added",
		`l: link target "a.go" -> "b.go"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Diff =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	other := base()
	other.Parent, other.Base = "q", "busybox@sha256:2"
	if got := Diff(other, base()); len(got) != 1 || got[0] != "the base changed: busybox@sha256:2 -> busybox@sha256:1" {
		t.Errorf("Diff of another base = %q", got)
	}
	if got := Diff(nil, base()); got[0] != "no entry for this step in the cache" {
		t.Errorf("Diff of nothing = %q", got)
	}
	// The closest entry is one on the same parent, then the one with the
	// fewest differences.
	far, near := base(), base()
	far.Parent = "elsewhere"
	near.Inputs["build arg V"] = "3"
	if c := Closest(base(), []*Explain{far, near}); c != near {
		t.Errorf("Closest picked %+v", c)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLayerContentIsChecked: an entry whose layer is another blob, or its
// blob with another diffID, passes the import (nothing is downloaded) but
// fails the first read, and keeps failing for the build.
func TestLayerContentIsChecked(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(t.TempDir(), "layout")
	// key-0 names key-1's blob with key-0's diffID.
	steps := slices.Clone(f.steps)
	d0, _ := steps[0].Layer.DiffID()
	steps[0].Layer = layer.New(steps[1].Layer.Descriptor(), d0, steps[1].Layer.Compressed)
	steps[1].Key = "key-1-alone"
	steps = steps[:1]
	blobs := registry.NewBlobs(f.ctx, f.st, registry.Config{}, nil)
	if err := Export(f.ctx, mustSpec(t, true, "type=local,mode=max,dest="+dir), steps, nil, blobs, nil); err != nil {
		t.Fatal(err)
	}
	imp, _, err := Import(f.ctx, mustSpec(t, false, "type=local,src="+dir), freshBlobs(t), linux)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := imp.Get(f.ctx, "key-0")
	if e == nil {
		t.Fatal("no entry")
	}
	for range 2 {
		if _, err := e.Layer.Compressed(); err == nil || !strings.Contains(err.Error(), "diffID") {
			t.Fatalf("reading a layer whose content is not its diffID's: %v", err)
		}
	}
}

// TestHostileLayoutDirectory: a cache directory restored from elsewhere
// cannot make strata read a device or a FIFO, write through a symlink, or
// delete what is not a cache's.
func TestHostileLayoutDirectory(t *testing.T) {
	f := newFixture(t)
	blobs := registry.NewBlobs(f.ctx, f.st, registry.Config{}, nil)
	t.Run("index.json is a device or a FIFO", func(t *testing.T) {
		for _, target := range []string{"/dev/zero", "fifo"} {
			dir := t.TempDir()
			if target == "fifo" {
				if err := unix.Mkfifo(filepath.Join(dir, "index.json"), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Symlink(target, filepath.Join(dir, "index.json")); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, _, err := Import(f.ctx, mustSpec(t, false, "type=local,src="+dir), freshBlobs(t), linux)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("%s as index.json imported", target)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("importing with %s as index.json did not return", target)
			}
		}
	})
	t.Run("blobs/sha256 is a symlink", func(t *testing.T) {
		dir, victim := t.TempDir(), t.TempDir()
		os.WriteFile(filepath.Join(victim, "precious"), []byte("x"), 0o644)
		os.Mkdir(filepath.Join(dir, "blobs"), 0o755)
		os.Symlink(victim, filepath.Join(dir, "blobs", "sha256"))
		err := Export(f.ctx, mustSpec(t, true, "type=local,dest="+dir), f.steps, nil, blobs, nil)
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("export through a symlinked blobs/sha256: %v", err)
		}
		if des, _ := os.ReadDir(victim); len(des) != 1 {
			t.Errorf("the symlink's target now holds %d files", len(des))
		}
	})
	t.Run("a layout shared with an image index", func(t *testing.T) {
		dir := t.TempDir()
		lp, err := ggcrlayout.Write(dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		img, _ := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("not a tar, a blob"), "application/vnd.oci.image.layer.v1.tar"))
		if err := lp.AppendIndex(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
		if err := Export(f.ctx, mustSpec(t, true, "type=local,dest="+dir), f.steps, nil, blobs, nil); err != nil {
			t.Fatal(err)
		}
		for _, de := range before {
			if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", de.Name())); err != nil {
				t.Errorf("the export removed %s, a blob of the other image", de.Name())
			}
		}
	})
}
