package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/store"
)

// blobServer answers /v2/ and serves one blob of repo r as serve says.
func blobServer(t *testing.T, serve func(w http.ResponseWriter)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		serve(w)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

func gzipped(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func newBlobs(t *testing.T) *Blobs {
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return NewBlobs(context.Background(), st, Config{}, nil)
}

// TestDownloadThatStalls: a registry that stops sending mid-blob is given
// up after idleTimeout, not waited on for ever.
func TestDownloadThatStalls(t *testing.T) {
	old := idleTimeout
	idleTimeout = 300 * time.Millisecond
	defer func() { idleTimeout = old }()
	blob := gzipped(t, []byte("content"))
	release := make(chan struct{})
	defer close(release)
	host := blobServer(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "1000")
		w.Write(blob[:5])
		w.(http.Flusher).Flush()
		<-release
	})
	repo, _ := name.NewRepository(host+"/r", name.Insecure)
	l, err := newBlobs(t).Layer(v1.Descriptor{MediaType: types.OCILayer, Digest: sha(blob), Size: int64(len(blob))}, sha([]byte("content")), repo)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Compressed()
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no data from") {
			t.Errorf("a stalled download gave %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled download was waited on")
	}
}

// TestDownloadIsVerified: the right blob under the wrong diffID, or with a
// media type that is not its compression, fails on download, every time.
func TestDownloadIsVerified(t *testing.T) {
	blob := gzipped(t, []byte("content"))
	host := blobServer(t, func(w http.ResponseWriter) { w.Write(blob) })
	repo, _ := name.NewRepository(host+"/r", name.Insecure)
	for _, c := range []struct {
		mt     types.MediaType
		diffID v1.Hash
		want   string
	}{
		{types.OCILayer, sha([]byte("other content")), "diffID"},
		{types.OCIUncompressedLayer, sha(blob), "its content is gzip"},
		{types.OCILayer, sha([]byte("content")), ""},
	} {
		bl := newBlobs(t)
		l, err := bl.Layer(v1.Descriptor{MediaType: c.mt, Digest: sha(blob), Size: int64(len(blob))}, c.diffID, repo)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			rc, err := l.Compressed()
			if c.want == "" {
				if err != nil {
					t.Fatalf("a good layer: %v", err)
				}
				rc.Close()
				continue
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s as %s: %v, want %q", c.diffID, c.mt, err, c.want)
			}
		}
	}
}
