package builder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/layer"
)

// TestOCIArchiveKernelCopy: an OCI archive written to a file, whose layer
// blobs are copied inside the kernel, has the bytes of the same archive
// written through a buffer, for blobs of sizes on and off a 512-byte
// boundary, a blob listed twice, and an empty one.
func TestOCIArchiveKernelCopy(t *testing.T) {
	dir := t.TempDir()
	var layers []v1.Layer
	for i, size := range []int{1000, 512, 0, 70000, 100, 1000} {
		content := bytes.Repeat([]byte{byte('a' + i%4)}, size)
		if i == 5 {
			content = bytes.Repeat([]byte{'a'}, size) // the first blob again
		}
		sum := sha256.Sum256(content)
		h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		path := filepath.Join(dir, h.Hex)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		desc := v1.Descriptor{MediaType: types.OCILayer, Size: int64(size), Digest: h}
		layers = append(layers, layer.New(desc, h, func() (io.ReadCloser, error) { return os.Open(path) }))
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)

	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})
	for name, write := range map[string]func(io.Writer) error{
		"image": func(w io.Writer) error { return writeOCIArchive(w, img, []string{"example.com/x:1"}, nil) },
		// A multi-platform archive copies its layers the same way.
		"index": func(w io.Writer) error { return writeOCIIndexArchive(w, idx, []string{"example.com/x:1"}, nil) },
	} {
		var buffered bytes.Buffer
		if err := write(&buffered); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, name+".tar"))
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		direct, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(direct, buffered.Bytes()) {
			t.Errorf("%s: the archive written to a file (%d bytes) differs from the buffered one (%d bytes)", name, len(direct), buffered.Len())
		}
	}
}
