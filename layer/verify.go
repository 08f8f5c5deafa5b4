package layer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// VerifyContent reads a layer blob from r to its end and checks what a
// manifest and a config say of it but its digest does not prove: that it
// is compressed as its media type mt says, and that its uncompressed tar
// stream hashes to diffID. A layer that comes from a registry is checked
// this way when it is downloaded, so a cache or an image that names
// another blob, or the right blob with another diffID, is caught the first
// time its bytes are read.
func VerifyContent(r io.Reader, mt types.MediaType, diffID v1.Hash) error {
	// Whatever happens, r is read to its end: it may be a tee of a download.
	defer io.Copy(io.Discard, r)
	want, err := CompressionOf(mt)
	if err != nil {
		return err
	}
	dec, format, err := Decompress(r)
	if err != nil {
		return err
	}
	defer dec.Close()
	if err := checkFormat(mt, want, format); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, dec); err != nil {
		return fmt.Errorf("decompressing: %w", err)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	return CheckDiffID(got, diffID)
}

// ContentError is a layer blob whose content is not what its descriptor
// and its image's config say (its compression, its diffID), though it may
// well be the blob its digest names: the claim about it is wrong, so no
// retry of the same claim can succeed.
type ContentError struct{ msg string }

func (e *ContentError) Error() string { return e.msg }

// CheckDiffID is a ContentError unless the uncompressed stream's hash got
// is the diffID want.
func CheckDiffID(got, want v1.Hash) error {
	if got != want {
		return &ContentError{fmt.Sprintf("its content has diffID %s, not %s", got, want)}
	}
	return nil
}

// checkFormat is a ContentError unless format, detected from a blob's
// bytes, is the compression want its media type mt names.
func checkFormat(mt types.MediaType, want Compression, format Format) error {
	if got := compressionOfFormat(format); got != want {
		return &ContentError{fmt.Sprintf("its media type %s says %s, its content is %s", mt, want, format)}
	}
	return nil
}

func compressionOfFormat(f Format) Compression {
	switch f {
	case FormatGzip:
		return Gzip
	case FormatZstd:
		return Zstd
	case FormatPlain:
		return None
	}
	return Compression(f)
}
