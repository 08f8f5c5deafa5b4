package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// streamImage is an image of n layers: layer i holds d<i>/ with a file, a
// symlink and a hardlink, a file of size bytes, and (above the first)
// a whiteout of a file of the layer below.
func streamImage(t *testing.T, n, size int) v1.Image {
	t.Helper()
	img := empty.Image
	for i := range n {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		d := fmt.Sprintf("d%d/", i)
		content := []byte(strings.Repeat(fmt.Sprintf("layer %d ", i), 4))
		big := bytes.Repeat([]byte{byte('a' + i)}, size)
		entries := []struct {
			hdr  tar.Header
			data []byte
		}{
			{tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}, nil},
			{tar.Header{Name: d + "f", Mode: 0o640, Uid: 1000 + i, Size: int64(len(content))}, content},
			{tar.Header{Name: d + "big", Mode: 0o644, Size: int64(len(big))}, big},
			{tar.Header{Name: d + "link", Typeflag: tar.TypeSymlink, Linkname: "f"}, nil},
			{tar.Header{Name: d + "hard", Typeflag: tar.TypeLink, Linkname: d + "f"}, nil},
		}
		if i > 0 {
			entries = append(entries, struct {
				hdr  tar.Header
				data []byte
			}{tar.Header{Name: fmt.Sprintf("d%d/.wh.big", i-1), Mode: 0o644}, nil})
		}
		for _, e := range entries {
			e.hdr.ModTime = time.Unix(1700000000, 0)
			if err := tw.WriteHeader(&e.hdr); err != nil {
				t.Fatal(err)
			}
			tw.Write(e.data)
		}
		tw.Close()
		data := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// streamRegistry is ggcr's registry behind serve, which may answer a blob
// GET itself (returning true) instead.
func streamRegistry(t *testing.T, serve func(w http.ResponseWriter, r *http.Request) bool) string {
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if serve != nil && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && serve(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// treeOf describes every entry below dir: type, mode, owner, size, link
// target and content, so two extractions can be compared.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		uid, gid := ownerIDs(fi)
		desc := fmt.Sprintf("%v %d:%d %d", fi.Mode(), uid, gid, fi.Size())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			desc += " " + string(data)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPrefetchStreamsLayers pulls a base of four layers: the first step
// that needs them downloads all four at once (the registry holds each
// request until the four are in flight), each blob once, and every
// snapshot and blob is what the sequential path (download, then extract
// from the stored blob) gives.
func TestPrefetchStreamsLayers(t *testing.T) {
	const n = 4
	img := streamImage(t, n, 256<<10)
	var mu sync.Mutex
	inflight, most, gets := 0, 0, map[string]int{}
	all := make(chan struct{})
	layerBlobs := map[string]bool{}
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		layerBlobs[d.String()] = true
	}
	host := streamRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		digest := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		if !layerBlobs[digest] {
			return false
		}
		mu.Lock()
		gets[digest]++
		inflight++
		if inflight > most {
			if most = inflight; most == n {
				close(all)
			}
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(3 * time.Second): // sequential downloads: give up waiting
		}
		defer func() { mu.Lock(); inflight--; mu.Unlock() }()
		return false
	})
	pushImage(t, host+"/base:1", img)
	tb := newTestBuild(t, baseFiles)
	tb.mustBuild("FROM " + host + "/base:1\nCOPY one.txt /one\n")
	mu.Lock()
	if most != n {
		t.Errorf("at most %d layer downloads at once, want all %d", most, n)
	}
	for d, c := range gets {
		if c != 1 {
			t.Errorf("blob %s downloaded %d times", d, c)
		}
	}
	mu.Unlock()

	seq, err := store.Open(filepath.Join(t.TempDir(), "seq"))
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	repo, _ := name.NewRepository(host+"/base", name.Insecure)
	bl := registry.NewBlobs(context.Background(), seq, registry.Config{}, nil)
	cfg, _ := img.ConfigFile()
	for i, l := range ls {
		desc, _ := partialDescriptor(l)
		diffID := cfg.RootFS.DiffIDs[i]
		if ok, _ := tb.store.HasBlob(desc.Digest); !ok {
			t.Errorf("layer %d: blob %s not stored", i, desc.Digest)
		}
		want, err := bl.Layer(desc, diffID, repo)
		if err != nil {
			t.Fatal(err)
		}
		wantDir, err := seq.Snapshot(context.Background(), want, layer.ExtractOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gotDir, _ := tb.store.SnapshotPath(diffID)
		got, wantTree := treeOf(t, gotDir), treeOf(t, wantDir)
		if fmt.Sprint(got) != fmt.Sprint(wantTree) {
			t.Errorf("layer %d: streamed snapshot\n%v\nsequential\n%v", i, got, wantTree)
		}
	}
}

func partialDescriptor(l v1.Layer) (v1.Descriptor, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := l.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, err
}

// TestLyingRegistry: a base whose layer blob is not the bytes its digest
// names, or whose config gives the layer another diffID, fails the step
// that needs it with an error naming the layer and what is wrong, and
// leaves neither the blob nor a snapshot in the store.
func TestLyingRegistry(t *testing.T) {
	img := streamImage(t, 2, 64<<10)
	other := streamImage(t, 1, 1000)
	ls, _ := img.Layers()
	liar, _ := ls[1].Digest()
	otherLayers, _ := other.Layers()
	otherBlob, _ := otherLayers[0].Compressed()
	otherBytes, _ := io.ReadAll(otherBlob)
	cfg, _ := img.ConfigFile()
	realDiffID := cfg.RootFS.DiffIDs[1]
	wrongCfg := cfg.DeepCopy()
	wrongCfg.RootFS.DiffIDs[1] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	wrongDiffID, err := mutate.ConfigFile(img, wrongCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		img    v1.Image
		serve  func(w http.ResponseWriter, r *http.Request) bool
		want   []string
		diffID v1.Hash
	}{
		{
			name: "bytes that are not the digest's",
			img:  img,
			serve: func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, liar.String()) {
					return false
				}
				w.Write(otherBytes)
				return true
			},
			want:   []string{liar.String(), "sha256"},
			diffID: realDiffID,
		},
		{
			name:   "a diffID that is not the content's",
			img:    wrongDiffID,
			want:   []string{liar.String(), "its content has diffID " + realDiffID.String() + ", not " + wrongCfg.RootFS.DiffIDs[1].String()},
			diffID: wrongCfg.RootFS.DiffIDs[1],
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			host := streamRegistry(t, c.serve)
			pushImage(t, host+"/base:1", c.img)
			tb := newTestBuild(t, baseFiles)
			_, _, err := tb.build("FROM " + host + "/base:1\nCOPY one.txt /one\n")
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("build error %v, want one containing %q", err, w)
				}
			}
			if ok, _ := tb.store.HasBlob(liar); ok {
				t.Errorf("the lying blob %s was stored", liar)
			}
			for _, d := range []v1.Hash{c.diffID, realDiffID} {
				if dir, _ := tb.store.SnapshotPath(d); exists(dir) {
					t.Errorf("a snapshot %s was made of the lying blob", d)
				}
			}
			// The honest layer below is complete.
			if dir, _ := tb.store.SnapshotPath(cfg.RootFS.DiffIDs[0]); !exists(dir) {
				t.Errorf("the honest layer has no snapshot")
			}
		})
	}
}

// TestPrefetchCancelMidStream cancels the build while a layer is half
// downloaded (and half extracted): the prefetch ends at once, nothing of
// the layer is committed nor left in the store's temporary files, and
// the next build with the same store streams the layer in full.
func TestPrefetchCancelMidStream(t *testing.T) {
	img := gzipLayerImage(t)
	ls, _ := img.Layers()
	l0 := ls[0]
	digest, _ := l0.Digest()
	blob, _ := l0.Compressed()
	data, _ := io.ReadAll(blob)
	half := make(chan struct{})
	var stall sync.Once
	var stalling atomic.Bool
	stalling.Store(true)
	host := streamRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, digest.String()) || !stalling.Load() {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		stall.Do(func() { close(half) })
		<-r.Context().Done()
		return true
	})
	pushImage(t, host+"/base:1", img)
	repo, _ := name.NewRepository(host+"/base", name.Insecure)
	cfg, _ := img.ConfigFile()
	desc, _ := partialDescriptor(l0)
	st := newTestBuild(t, nil).store

	ctx, cancel := context.WithCancel(context.Background())
	bl := registry.NewBlobs(context.Background(), st, registry.Config{}, nil)
	l, err := bl.Layer(desc, cfg.RootFS.DiffIDs[0], repo)
	if err != nil {
		t.Fatal(err)
	}
	p := newPrefetcher(ctx, st, layer.ExtractOptions{})
	p.useBlobs(bl)
	p.start([]*layer.Layer{l})
	select {
	case <-half:
	case <-time.After(30 * time.Second):
		t.Fatal("the layer was not requested")
	}
	time.Sleep(100 * time.Millisecond) // let the extraction start
	cancel()
	stopped := make(chan struct{})
	go func() { p.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the prefetch did not end after the cancel")
	}
	if ok, _ := st.HasBlob(digest); ok {
		t.Error("a half-downloaded blob was committed")
	}
	if dir, _ := st.SnapshotPath(cfg.RootFS.DiffIDs[0]); exists(dir) {
		t.Error("a half-extracted snapshot was committed")
	}
	left, _ := filepath.Glob(filepath.Join(st.Root(), "tmp", "*", "*"))
	if len(left) != 0 {
		t.Errorf("the cancelled stream left %q", left)
	}

	stalling.Store(false)
	bl2 := registry.NewBlobs(context.Background(), st, registry.Config{}, nil)
	l2, err := bl2.Layer(desc, cfg.RootFS.DiffIDs[0], repo)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := bl2.Snapshot(context.Background(), l2, layer.ExtractOptions{})
	if err != nil {
		t.Fatalf("the next snapshot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "payload", "0")); err != nil {
		t.Errorf("the streamed snapshot lacks its files: %v", err)
	}
	if ok, _ := st.HasBlob(digest); !ok {
		t.Error("the streamed blob was not committed")
	}
}

// gzipLayerImage is one layer of incompressible files, large enough that
// half of it is well into the extraction.
func gzipLayerImage(t *testing.T) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "payload/", Typeflag: tar.TypeDir, Mode: 0o755})
	seed := uint32(1)
	for i := range 64 {
		data := make([]byte, 64<<10)
		for j := range data {
			seed = seed*1664525 + 1013904223
			data[j] = byte(seed >> 24)
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("payload/%d", i), Mode: 0o644, Size: int64(len(data))})
		tw.Write(data)
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	blob := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestStreamedExtractionError: a layer that is what it claims but cannot
// be extracted (a char device 0:0 in an overlay lower) fails the step with
// the extraction's own error, as when it was extracted from a stored blob,
// and leaves no snapshot.
func TestStreamedExtractionError(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "dev/null0", Typeflag: tar.TypeChar, Mode: 0o644})
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	host := streamRegistry(t, nil)
	pushImage(t, host+"/base:1", img)
	tb := newTestBuild(t, baseFiles)
	_, _, err = tb.build("FROM " + host + "/base:1\nCOPY one.txt /one\n")
	if err == nil || !strings.Contains(err.Error(), "character device 0:0 cannot be stored in an overlay lower directory") {
		t.Errorf("build error %v, want the extraction's", err)
	}
	diffID, _ := l.DiffID()
	if dir, _ := tb.store.SnapshotPath(diffID); exists(dir) {
		t.Error("a snapshot was made of a layer that cannot be extracted")
	}
}
