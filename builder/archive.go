package builder

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/strata-build/strata/layer"
)

// isArchive reports whether ADD extracts the local file r: a tar, plain or
// compressed, recognised from its content as Docker does.
func isArchive(r io.Reader) bool {
	rc, format, err := layer.Decompress(r)
	if format == layer.FormatXz {
		return true
	}
	if err != nil {
		return false
	}
	defer rc.Close()
	_, err = tar.NewReader(rc).Next()
	return err == nil
}

// checkArchive refuses an ADDed archive holding entries no image layer
// can carry as files: names starting with .wh. would become whiteouts,
// and a character device 0:0 is overlayfs's whiteout. BuildKit's ADD
// (go-archive's Untar) writes them as plain files that image readers then
// take for deletions; strata names the entry instead, before anything is
// written.
func checkArchive(r io.Reader, name string) error {
	rc, _, err := layer.Decompress(r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if strings.HasPrefix(path.Base(h.Name), ".wh.") {
			return fmt.Errorf("%s: entry %s: a file named .wh.* would be a whiteout in the image", name, h.Name)
		}
		if h.Typeflag == tar.TypeChar && h.Devmajor == 0 && h.Devminor == 0 {
			return fmt.Errorf("%s: entry %s: a character device 0:0 would be a whiteout in the image", name, h.Name)
		}
	}
}

// hidePrefix shows an error without the build's temporary directory, so
// a path reads as the image's path; the error stays unwrappable.
type hidePrefix struct {
	err    error
	prefix string
}

func (e hidePrefix) Error() string { return strings.ReplaceAll(e.err.Error(), e.prefix, "") }

func (e hidePrefix) Unwrap() error { return e.err }
