package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
)

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// fetch downloads an ADD URL into dir and checks --checksum. It returns
// the file and the server's Last-Modified time (the Unix epoch when the
// server sends none, so the layer does not depend on when it was built).
func (d downloader) fetch(ctx context.Context, rawURL, checksum string) (string, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", time.Time{}, fmt.Errorf("ADD %s: %s", rawURL, resp.Status)
	}
	f, err := os.CreateTemp(d.dir, "download-")
	if err != nil {
		return "", time.Time{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		return "", time.Time{}, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	if err := checkChecksum(checksum, h.Sum(nil)); err != nil {
		return "", time.Time{}, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	mtime := time.Unix(0, 0)
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		mtime = lm
	}
	return f.Name(), mtime, nil
}

// downloader fetches ADD URLs into a temporary directory.
type downloader struct {
	client *http.Client
	dir    string
}

func checkChecksum(want string, got []byte) error {
	if want == "" {
		return nil
	}
	algo, hexSum, ok := strings.Cut(want, ":")
	if !ok || algo != "sha256" {
		return fmt.Errorf("unsupported checksum %q: want sha256:<hex>", want)
	}
	if hexSum != hex.EncodeToString(got) {
		return fmt.Errorf("checksum mismatch: want %s, got sha256:%x", want, got)
	}
	return nil
}

// urlBase is the file name an ADDed URL gets in a destination directory.
func urlBase(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "download"
	}
	if b := path.Base(u.Path); b != "/" && b != "." {
		return b
	}
	return "download"
}
