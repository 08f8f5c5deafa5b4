package builder

import (
	"archive/tar"
	"os"

	"github.com/strata-build/strata/layer"
)

// isArchive reports whether ADD extracts the local file at host: a tar,
// plain or compressed, recognised from its content as Docker does.
func isArchive(host string) bool {
	f, err := os.Open(host)
	if err != nil {
		return false
	}
	defer f.Close()
	rc, format, err := layer.Decompress(f)
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
