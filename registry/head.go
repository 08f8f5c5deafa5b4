package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrBlobUnknown is a blob the registry does not hold.
var ErrBlobUnknown = errors.New("blob unknown to the registry")

// BlobChecker asks one repository whether it holds blobs, without
// downloading them: one HEAD request each, on one authenticated client.
type BlobChecker struct {
	repo   name.Repository
	client *http.Client
	ctx    context.Context
}

// NewBlobChecker authenticates to repo for pulling.
func (c Config) NewBlobChecker(ctx context.Context, repo name.Repository) (*BlobChecker, error) {
	kc := c.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo, err)
	}
	base := c.transport()
	// Retries network flakes and 5xx/429 as go-containerregistry's own
	// requests do.
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, transport.NewRetry(base), []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	return &BlobChecker{repo: repo, client: &http.Client{Transport: rt}, ctx: ctx}, nil
}

// Size is the size of blob h in the repository, or ErrBlobUnknown.
func (b *BlobChecker) Size(h v1.Hash) (int64, error) {
	u := url.URL{Scheme: b.repo.Scheme(), Host: b.repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/blobs/%s", b.repo.RepositoryStr(), h)}
	req, err := http.NewRequestWithContext(b.ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, fmt.Errorf("%s: %w", h, ErrBlobUnknown)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return 0, err
	}
	return resp.ContentLength, nil
}
